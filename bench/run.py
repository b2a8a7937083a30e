"""`make bench` / `make bench-quick`: run every benchmark, print one table, write the results.

Only a full run publishes (rewrites docs/benchmarks.md and docs/benchmarks.json); a quick run
writes the same two files under build/bench-quick/ (gitignored); `--out DIR` writes them to DIR.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import Figure
from rules import ENGINE_MODE

# Explicit list: one module per area, each exposing run(*, quick: bool, out: Path) ->
# list[Figure]; `out` is the directory the run's results go to (an area's plot goes beside them).
AREAS: tuple[tuple[str, str], ...] = (
    ("scan", "bench.scan"),
    ("ingest", "bench.ingest"),
    ("pipeline", "bench.pipeline"),
    ("operator", "bench.operator"),
    ("agent", "bench.agent"),
    ("storage", "bench.storage"),
    ("scaling", "bench.scaling"),
    ("fleet-scale", "bench.fleet_scale"),
)

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_MD = REPO_ROOT / "docs" / "benchmarks.md"
RESULTS_JSON = REPO_ROOT / "docs" / "benchmarks.json"
QUICK_DIR = REPO_ROOT / "build" / "bench-quick"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.0f} GiB"
    except (ValueError, OSError):
        pass
    # The processes the benchmarks start (workers, scans) choose the same way (rules._native).
    engine = f"rule engine {ENGINE_MODE}"
    return f"{cpu}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}, {engine}"


def verdict(figure: Figure) -> str:
    if figure.met is None:
        return "—"
    return "met" if figure.met else "**MISSED**"


def number(value: float) -> str:
    """Readable figures: thousands separators for large values, 3 significant digits else."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def floor_cell(figure: Figure) -> str:
    """The floor beside the figure: its value in the figure's unit and what was measured."""
    if figure.floor is None:
        return "—"
    return f"{number(figure.floor)} {figure.unit} ({figure.floor_of})"


def render_table(figures: list[Figure]) -> str:
    lines = [
        "| area | figure | median | spread | runs | floor | target | verdict | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        value = f"{number(f.median)} {f.unit}" if f.measured else "not measured"
        lines.append(
            f"| {f.area} | {f.name} | {value} | ±{f.spread:.0%} | "
            f"{len(f.samples)} | {floor_cell(f)} | {f.target or '—'} | {verdict(f)} | {f.note} |"
        )
    return "\n".join(lines)


def output_paths(*, quick: bool, out: Path | None) -> tuple[Path, Path]:
    """Where a run writes its table and figures: docs/ for a full run only.

    A quick run never rewrites the published docs/benchmarks.*: it writes to build/bench-quick/
    unless `--out` names another directory (which may not be docs/ for a quick run).
    """
    directory = out if out is not None else (QUICK_DIR if quick else RESULTS_MD.parent)
    md, json_path = directory / RESULTS_MD.name, directory / RESULTS_JSON.name
    if quick and md.resolve() == RESULTS_MD.resolve():
        raise ValueError("a quick run does not publish: --out may not be docs/ with --quick")
    return md, json_path


def run_areas(*, quick: bool, only: set[str] | None, out: Path) -> tuple[list[Figure], list[str]]:
    figures: list[Figure] = []
    problems: list[str] = []
    for area, module_name in AREAS:
        if only and area not in only:
            continue
        print(f"== {area} ({module_name})", file=sys.stderr, flush=True)
        started = time.perf_counter()
        cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        try:
            module = importlib.import_module(module_name)
            figures.extend(module.run(quick=quick, out=out))
        except Exception as error:  # a broken benchmark is reported, the others still run
            traceback.print_exc()
            problems.append(f"{area}: {type(error).__name__}: {error}")
        finally:
            # An area may pin itself to one core; the next (and its subprocesses) get them all.
            if cores is not None:
                os.sched_setaffinity(0, cores)
        print(f"   {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return figures, problems


EARLIER = " (earlier run)"


def _earlier(note: str) -> str:
    """A kept figure's note, marked once as measured by an earlier run."""
    while note.endswith(EARLIER):
        note = note[: -len(EARLIER)]
    return (note + EARLIER).strip()


def previous_figures(areas_run: set[str], results_json: Path) -> list[Figure]:
    """Figures of the last run written there for areas this run did not measure (`--only`)."""
    if not results_json.exists():
        return []
    kept = []
    for raw in json.loads(results_json.read_text(encoding="utf-8")).get("figures", []):
        if raw["area"] in areas_run:
            continue
        kept.append(
            Figure(
                area=raw["area"],
                name=raw["name"],
                unit=raw["unit"],
                samples=tuple(raw["samples"]),
                target=raw.get("target", ""),
                met=raw.get("met"),
                note=_earlier(raw.get("note") or ""),
                extra=raw.get("extra") or {},
                floor=raw.get("floor"),
                floor_of=raw.get("floor_of") or "",
            )
        )
    return kept


def publish(
    figures: list[Figure], problems: list[str], *, quick: bool, results_md: Path, results_json: Path
) -> None:
    """Write the table into `results_md` (between the markers) and the figures as JSON."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not quick:
        figures = figures + previous_figures({f.area for f in figures}, results_json)
    block = [
        START,
        f"Latest run: {stamp}, {'quick' if quick else 'full'} mode, on {machine_description()}.",
        "",
        render_table(figures),
    ]
    if problems:
        block += ["", "Benchmarks that failed to run:", *[f"- {p}" for p in problems]]
    block.append(END)
    text = (
        results_md.read_text(encoding="utf-8")
        if results_md.exists()
        else (
            "# Benchmarks\n\n"
            "Reproduce with `make bench` (full) or `make bench-quick` (reduced).\n\n"
        )
    )
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + "\n".join(block) + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## Results\n\n" + "\n".join(block) + "\n"
    results_md.parent.mkdir(parents=True, exist_ok=True)
    results_md.write_text(text, encoding="utf-8")
    results_json.write_text(
        json.dumps(
            {
                "run_at": stamp,
                "quick": quick,
                "machine": machine_description(),
                "figures": [
                    {**asdict(f), "median": f.median if f.measured else None, "spread": f.spread}
                    for f in figures
                ],
                "problems": problems,
            },
            indent=2,
        ),
        encoding="utf-8",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes, under two minutes")
    parser.add_argument("--only", action="append", help="run only this area (repeatable)")
    parser.add_argument(
        "--out",
        type=Path,
        help="write benchmarks.md/.json to this directory "
        "(default: docs/ for a full run, build/bench-quick/ for a quick one)",
    )
    parser.add_argument("--no-publish", action="store_true", help="print the table, write nothing")
    args = parser.parse_args(argv)
    try:
        results_md, results_json = output_paths(quick=args.quick, out=args.out)
    except ValueError as problem:
        parser.error(str(problem))
    figures, problems = run_areas(
        quick=args.quick, only=set(args.only or ()), out=results_md.parent
    )
    print(render_table(figures))
    for problem in problems:
        print(f"FAILED: {problem}")
    if not args.no_publish:
        publish(
            figures,
            problems,
            quick=args.quick,
            results_md=results_md,
            results_json=results_json,
        )
        print(f"written: {results_md}, {results_json}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
