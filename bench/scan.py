"""Scan benchmark: the full rule catalogue over a generated 100,000-object corpus, vs checkov.

The corpus (`bench.corpus`) is normalised the way the agent normalises what it pushes, so the
engine sees what it sees on the server. Rates are objects per CPU second of one process pinned
to one core (CPU time, so other load on the shared machine does not distort them):
- `Engine.scan` (object + cluster rules, configuration, controller dedup) on the parsed corpus,
  and `evaluate_object` on every object (no dedup: the workers' per-object path);
- merely `json.loads`-ing the same objects, and scan time as a multiple of it;
- peak RSS (VmHWM) of a fresh process that parses the corpus, scans it and builds the JSON
  report, with the corpus as one snapshot document and as one document per object, and the
  scan's own allocations (tracemalloc);
- floors measured in the same run: `orjson.loads` of the same objects (what a scan from stored
  bodies cannot beat), and for the offline whole-process scan, interpreter start + libyaml
  (`CSafeLoader`) parse of the same files in one process;
- the offline `k8smon scan` as a whole process (interpreter start included) on 2,000 manifests
  (1,000 Deployments + 1,000 Services in 100 files), beside checkov's whole process on the same
  files when checkov is installed (quick mode never installs it); the project's modules are
  compiled to bytecode first, as installing a package compiles them (checkov's are);
- checkov (installed into a throwaway virtualenv by this script, never a project dependency)
  on an evenly spaced sample of the same corpus, pinned to one core, as a marginal rate
  (objects between two sample sizes / CPU time between them, so its start-up is not counted
  against it), and the speed ratio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson

from agent.normalise import normalise
from bench.corpus import generate
from bench.harness import Figure, repeat
from rules import Engine
from rules.schema import forget_remembered

AREA = "scan"
FULL_OBJECTS = 100_000
QUICK_OBJECTS = 10_000
CHECKOV_VERSION = "3.3.30"
CHECKOV_VENV = Path(
    os.environ.get("K8SMON_CHECKOV_VENV", Path(tempfile.gettempdir()) / "k8smon-checkov-venv")
)
REPO = Path(__file__).resolve().parent.parent
TARGET_RATE = 20_000.0
TARGET_CHECKOV_RATIO = 400.0  # issue 21: the marginal ratio at 100,000 objects, kept at 400x
TARGET_MEMORY_MB = 1024.0
TARGET_WHOLE_PROCESS_RATIO = 30.0
OFFLINE_PER_KIND = 1_000  # Deployments and as many Services
OFFLINE_FILES = 100


def cpu_timed(action: Any) -> float:
    """CPU seconds one call of `action` takes in this process.

    CPU time rather than wall time: the machine is shared, and other processes' load would
    otherwise be counted against whichever side ran while it was busy.
    """
    started = time.process_time()
    action()
    return time.process_time() - started


def _pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})


_MEMORY_PROBE = """
import json, sys
from rules import Engine
path, form = sys.argv[1], sys.argv[2]
with open(path, encoding="utf-8") as handle:
    if form == "snapshot":
        objects = json.load(handle)["objects"]
    else:
        objects = [json.loads(line) for line in handle]
outcome = Engine.from_config(None).scan(objects)
report = outcome.to_report()
status = open("/proc/self/status").read()
print([l.split()[1] for l in status.splitlines() if l.startswith("VmHWM")][0])
"""


def _peak_memory_mb(objects: list[dict[str, Any]], *, form: str) -> float:
    """VmHWM of a fresh process that reads the corpus, scans it and builds the JSON report.

    `form` is `snapshot` (one JSON document holding every object, as the agent pushes a
    cluster's state) or `rows` (one JSON document per object, as the store holds bodies).
    """
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as handle:
        if form == "snapshot":
            json.dump({"objects": objects}, handle)
        else:
            for manifest in objects:
                handle.write(json.dumps(manifest) + "\n")
        path = handle.name
    try:
        done = subprocess.run(
            [sys.executable, "-c", _MEMORY_PROBE, path, form],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(path)
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def _scan_allocations_mb(engine: Engine, objects: list[dict[str, Any]]) -> float:
    """Peak memory the scan itself allocates (tracemalloc), the parsed input excluded."""
    tracemalloc.start()
    try:
        engine.scan(objects)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _checkov_binary() -> Path | None:
    """checkov from the throwaway venv, installing it there on first use (None if impossible)."""
    binary = CHECKOV_VENV / "bin" / "checkov"
    if binary.exists():
        return binary
    try:
        subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)], check=True)
        subprocess.run(
            [
                str(CHECKOV_VENV / "bin" / "pip"),
                "install",
                "--quiet",
                f"checkov=={CHECKOV_VERSION}",
            ],
            check=True,
            timeout=1200,
        )
    except (subprocess.SubprocessError, OSError) as problem:
        print(f"checkov could not be installed: {problem}", file=sys.stderr)
        return None
    return binary if binary.exists() else None


def _write_manifests(objects: list[dict[str, Any]], directory: Path) -> None:
    import yaml  # noqa: PLC0415 - only this comparison writes YAML

    directory.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(objects), 100):
        chunk = objects[start : start + 100]
        (directory / f"objects-{start:06d}.yaml").write_text(
            yaml.safe_dump_all(chunk, sort_keys=False), encoding="utf-8"
        )


def _process_cpu_seconds(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    peaks: list[float] | None = None,
    check: bool = True,
) -> float:
    """CPU seconds (user + system) of one whole child process; its peak RSS (MB) to `peaks`.

    With `check`, a process that exits non-zero is an error (its time would measure nothing).
    """
    process = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )  # inherits this process's pinning to one core
    # wait4 gives this child's own usage: CPU time and peak RSS (KiB on Linux).
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if check and process.returncode != 0:
        raise subprocess.CalledProcessError(process.returncode, argv)
    if peaks is not None:
        peaks.append(usage.ru_maxrss / 1024)
    return usage.ru_utime + usage.ru_stime


def _checkov_seconds(binary: Path, directory: Path, peaks: list[float] | None = None) -> float:
    """CPU seconds of one checkov run; its peak RSS (MB) is appended to `peaks`."""
    env = {
        **os.environ,
        "BC_SKIP_MAPPING": "TRUE",
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
        "LOG_LEVEL": "ERROR",
    }
    argv = [
        str(binary),
        "-d",
        str(directory),
        "--framework",
        "kubernetes",
        "--quiet",
        "--compact",
        "-o",
        "json",
        "--skip-download",
        "--soft-fail",
    ]
    return _process_cpu_seconds(argv, env=env, peaks=peaks, check=False)


def parse_floor_rate(blobs: list[bytes], *, runs: int) -> tuple[float, ...]:
    """Objects per CPU second of `orjson.loads` of the same bodies: the parse floor."""
    return repeat(
        lambda: len(blobs) / cpu_timed(lambda: [orjson.loads(b) for b in blobs]), runs=runs
    )


def offline_corpus(objects: list[dict[str, Any]], directory: Path) -> int:
    """Write the offline-scan corpus: Deployments and Services, as many of each, in 100 files.

    Up to OFFLINE_PER_KIND of each kind from `objects`; returns how many manifests it wrote.
    """
    import yaml  # noqa: PLC0415 - only the offline comparison writes YAML

    per_kind = min(
        OFFLINE_PER_KIND,
        *(sum(1 for o in objects if o.get("kind") == kind) for kind in ("Deployment", "Service")),
    )
    chosen = [o for o in objects if o.get("kind") == "Deployment"][:per_kind] + [
        o for o in objects if o.get("kind") == "Service"
    ][:per_kind]
    directory.mkdir(parents=True, exist_ok=True)
    files = min(OFFLINE_FILES, len(chosen))
    for index in range(files):
        (directory / f"manifests-{index:03d}.yaml").write_text(
            yaml.dump_all(chosen[index::files], Dumper=yaml.CSafeDumper, sort_keys=False),
            encoding="utf-8",
        )
    return len(chosen)


_YAML_FLOOR = """
import sys, yaml
for path in sys.argv[1:]:
    with open(path, "rb") as handle:
        list(yaml.load_all(handle, Loader=yaml.CSafeLoader))
"""


def offline_floor_seconds(directory: Path) -> float:
    """CPU seconds of a process that starts the interpreter and libyaml-parses the files."""
    files = sorted(str(p) for p in directory.glob("*.yaml"))
    return _process_cpu_seconds([sys.executable, "-c", _YAML_FLOOR, *files])


def compile_project_bytecode() -> None:
    """Compile the project's modules to bytecode (`__pycache__`, gitignored), as installing it does.

    pip compiles an installed package's modules (checkov's in its venv, PyYAML's for the
    floor); this editable checkout instead relies on a first run writing `__pycache__`, which
    `PYTHONDONTWRITEBYTECODE` (set on the shared machine) forbids, so every measured run would
    otherwise compile the CLI's sources anew: about 0.12 CPU s of the whole process.
    """
    import compileall  # noqa: PLC0415 - only the whole-process comparison needs it

    for package in sorted(REPO.iterdir()):
        if (package / "__init__.py").is_file() and package.name not in ("tests", "bench"):
            compileall.compile_dir(package, quiet=1)


def offline_scan_seconds(directory: Path) -> float:
    """CPU seconds of the whole `k8smon scan` process on the files, JSON report included."""
    script = Path(sys.executable).parent / "k8smon"  # the console script users run
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]
    return _process_cpu_seconds([*command, "scan", str(directory), "--format", "json"])


def _installed_checkov(*, install: bool) -> Path | None:
    if install:
        return _checkov_binary()
    binary = CHECKOV_VENV / "bin" / "checkov"
    return binary if binary.exists() else None


def whole_process_figures(
    objects: list[dict[str, Any]], *, runs: int, install_checkov: bool
) -> list[Figure]:
    """Offline scan as a whole process beside its floor and beside checkov's whole process."""
    with tempfile.TemporaryDirectory(prefix="k8smon-offline-") as tmp:
        directory = Path(tmp)
        count = offline_corpus(objects, directory)
        compile_project_bytecode()
        binary = _installed_checkov(install=install_checkov)
        # Interleaved (floor, ours, checkov, floor, ours, ...) rather than each side's runs in
        # a row: on the shared machine even CPU time moves with bursts of load (a burst during
        # one side's runs once doubled them), and interleaving spreads a burst over every side.
        floor_runs: list[float] = []
        our_runs: list[float] = []
        their_runs: list[float] = []
        for index in range(runs):
            floor_runs.append(offline_floor_seconds(directory))
            our_runs.append(offline_scan_seconds(directory))
            if binary is not None and index < max(1, runs - 1):
                their_runs.append(_checkov_seconds(binary, directory))
        floor, ours, theirs = tuple(floor_runs), tuple(our_runs), tuple(their_runs)
        corpus = f"{count:,} manifests (Deployments + Services) in {OFFLINE_FILES} files"
        figures = [
            Figure(
                AREA,
                f"offline `k8smon scan`, whole process, {count:,} manifests",
                "CPU s",
                ours,
                note=f"{corpus}; interpreter start, YAML parse, scan, JSON report; 1 core; "
                "bytecode compiled first, as an installed package's is",
                floor=sorted(floor)[len(floor) // 2],
                floor_of="python start + libyaml CSafeLoader parse of the same files",
            )
        ]
        if binary is None:
            figures.append(
                Figure(
                    AREA,
                    f"checkov, whole process, same {count:,} manifests",
                    "CPU s",
                    (),
                    note=f"checkov not installed ({CHECKOV_VENV}); full mode installs it",
                )
            )
            return figures
    ratios = tuple(t / o for t, o in zip(sorted(theirs), sorted(ours), strict=False))
    figures += [
        Figure(
            AREA,
            f"checkov, whole process, same {count:,} manifests",
            "CPU s",
            theirs,
            note=f"checkov {CHECKOV_VERSION}, --framework kubernetes, 1 core",
        ),
        Figure(
            AREA,
            "speed ratio vs checkov, whole process",
            "x",
            ratios,
            target=f">= {TARGET_WHOLE_PROCESS_RATIO:.0f}x",
            met=min(ratios) >= TARGET_WHOLE_PROCESS_RATIO,
            note="checkov CPU s / ours, same files; the marginal ratio is the row below",
        ),
    ]
    return figures


def _checkov_rate(
    objects: list[dict[str, Any]], *, small: int, large: int, runs: int, peaks: list[float]
) -> tuple[tuple[float, ...], str] | None:
    binary = _checkov_binary()
    if binary is None:
        return None
    # An evenly spaced sample keeps the corpus's kind mix (a prefix would be mostly
    # cluster-scoped objects and the first namespaces).
    sample = objects[:: max(1, len(objects) // large)][:large]
    with tempfile.TemporaryDirectory(prefix="k8smon-bench-") as tmp:
        small_dir, large_dir = Path(tmp) / "small", Path(tmp) / "large"
        _write_manifests(sample[:small], small_dir)
        _write_manifests(sample, large_dir)
        rates = []
        for _ in range(runs):
            t_small = _checkov_seconds(binary, small_dir)
            t_large = _checkov_seconds(binary, large_dir, peaks)
            rates.append((large - small) / max(t_large - t_small, 1e-9))
        note = (
            f"checkov {CHECKOV_VERSION}, --framework kubernetes, 1 core; marginal rate "
            f"between {small} and {large} objects of an evenly spaced sample (last run "
            f"{t_small:.1f} / {t_large:.1f} CPU s, i.e. {large / t_large:.0f} objects/s "
            "overall)"
        )
    return tuple(rates), note


def run(*, quick: bool, out: Path) -> list[Figure]:
    """The scan figures (quick: 10,000 objects and no checkov comparison)."""
    _pin_one_core()
    count = QUICK_OBJECTS if quick else FULL_OBJECTS
    runs = 3 if quick else 5
    # What the engine sees on the server: objects as the agent normalises them (volatile
    # metadata and most status dropped, pod status reduced to the running images).
    objects = [normalise(o) for o in generate(count)]
    blobs = [json.dumps(o) for o in objects]
    engine = Engine.from_config(None)

    parse = repeat(lambda: cpu_timed(lambda: [json.loads(b) for b in blobs]), runs=runs)
    floor_rates = parse_floor_rate([b.encode() for b in blobs], runs=runs)
    parse_floor = sorted(floor_rates)[len(floor_rates) // 2]
    parse_floor_of = "orjson.loads of the same objects"
    scan = repeat(lambda: cpu_timed(lambda: engine.scan(objects)), runs=runs)

    def evaluate_all() -> None:
        forget_remembered()  # as Engine.scan does: no run profits from the one before
        for manifest in objects:
            engine.evaluate_object(manifest)

    per_object = repeat(lambda: cpu_timed(evaluate_all), runs=runs)
    scan_rates = tuple(count / t for t in scan)
    scan_ratio = tuple(s / p for s, p in zip(sorted(scan), sorted(parse), strict=True))
    rules_note = f"{len(engine.rules)} rules, {count:,} objects"
    figures = [
        Figure(
            AREA,
            "full scan (object + cluster rules, config, dedup)",
            "objects/s",
            scan_rates,
            target=f">= {TARGET_RATE:,.0f}",
            met=sorted(scan_rates)[len(scan_rates) // 2] >= TARGET_RATE,
            note=rules_note + "; parsed input (the floor: a scan from stored bodies parses them)",
            floor=parse_floor,
            floor_of=parse_floor_of,
        ),
        Figure(
            AREA,
            "evaluate_object on every object (no dedup)",
            "objects/s",
            tuple(count / t for t in per_object),
            note=rules_note,
        ),
        Figure(
            AREA,
            "json.loads of the same objects",
            "objects/s",
            tuple(count / t for t in parse),
            note="one JSON document per object",
            floor=parse_floor,
            floor_of=parse_floor_of,
        ),
        Figure(
            AREA,
            "scan time / json.loads time",
            "x",
            scan_ratio,
            note="how many times parsing the JSON the full scan costs",
        ),
    ]
    memory = repeat(lambda: _peak_memory_mb(objects, form="snapshot"), runs=1 if quick else 2)
    figures.append(
        Figure(
            AREA,
            f"peak RSS: parse {count:,} objects (one snapshot document), scan, JSON report",
            "MB",
            memory,
            target=f"< {TARGET_MEMORY_MB:,.0f} MB" if not quick else "",
            met=max(memory) < TARGET_MEMORY_MB if not quick else None,
            note="fresh process, VmHWM, interpreter and parsed input included",
        )
    )
    if not quick:
        rows = repeat(lambda: _peak_memory_mb(objects, form="rows"), runs=2)
        figures.append(
            Figure(
                AREA,
                "peak RSS: same, one JSON document per object",
                "MB",
                rows,
                note="json.loads per object shares no dict keys: the parsed input is larger",
            )
        )
        figures.append(
            Figure(
                AREA,
                "memory allocated by the scan itself (tracemalloc peak)",
                "MB",
                repeat(lambda: _scan_allocations_mb(engine, objects), runs=2),
                note="views, indexes, results; the parsed input excluded",
            )
        )
    # Whole process, beside checkov's (if installed; full mode installs it) and beside the
    # marginal comparison below.
    figures += whole_process_figures(objects, runs=runs, install_checkov=not quick)
    if quick:
        return figures  # the marginal checkov comparison (minutes) runs in full mode only
    checkov_peaks: list[float] = []
    measured = _checkov_rate(objects, small=500, large=3000, runs=2, peaks=checkov_peaks)
    if measured is None:
        figures.append(Figure(AREA, "checkov", "objects/s", (0.0,), note="not installable"))
        return figures
    checkov_rates, note = measured
    ours = sorted(scan_rates)[len(scan_rates) // 2]
    ratios = tuple(ours / r for r in checkov_rates)
    figures.append(
        Figure(AREA, "checkov on the same corpus", "objects/s", checkov_rates, note=note)
    )
    figures.append(
        Figure(
            AREA,
            "speed ratio vs checkov",
            "x",
            ratios,
            target=f">= {TARGET_CHECKOV_RATIO:.0f}x",
            met=min(ratios) >= TARGET_CHECKOV_RATIO,
            note="median full-scan rate / checkov marginal rate",
        )
    )
    figures.append(
        Figure(
            AREA,
            "checkov peak RSS on its 3,000-object sample",
            "MB",
            tuple(checkov_peaks),
            note="compare: our peak RSS row above is for the whole corpus",
        )
    )
    return figures
