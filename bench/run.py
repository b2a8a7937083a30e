"""`make bench` / `make bench-quick`: run every benchmark, print one table, publish the results."""

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

# Explicit list: one module per area, each exposing run(*, quick: bool) -> list[Figure].
AREAS: tuple[tuple[str, str], ...] = (
    ("scan", "bench.scan"),
    ("ingest", "bench.ingest"),
    ("pipeline", "bench.pipeline"),
    ("operator", "bench.operator"),
    ("agent", "bench.agent"),
    ("storage", "bench.storage"),
    ("scaling", "bench.scaling"),
)

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_MD = REPO_ROOT / "docs" / "benchmarks.md"
RESULTS_JSON = REPO_ROOT / "docs" / "benchmarks.json"
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
    return f"{cpu}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}"


def verdict(figure: Figure) -> str:
    if figure.met is None:
        return "—"
    return "met" if figure.met else "**MISSED**"


def number(value: float) -> str:
    """Readable figures: thousands separators for large values, 3 significant digits else."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def render_table(figures: list[Figure]) -> str:
    lines = [
        "| area | figure | median | spread | runs | target | verdict | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f.area} | {f.name} | {number(f.median)} {f.unit} | ±{f.spread:.0%} | "
            f"{len(f.samples)} | {f.target or '—'} | {verdict(f)} | {f.note} |"
        )
    return "\n".join(lines)


def run_areas(*, quick: bool, only: set[str] | None) -> tuple[list[Figure], list[str]]:
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
            figures.extend(module.run(quick=quick))
        except Exception as error:  # a broken benchmark is reported, the others still run
            traceback.print_exc()
            problems.append(f"{area}: {type(error).__name__}: {error}")
        finally:
            # An area may pin itself to one core; the next (and its subprocesses) get them all.
            if cores is not None:
                os.sched_setaffinity(0, cores)
        print(f"   {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return figures, problems


def previous_figures(areas_run: set[str]) -> list[Figure]:
    """Figures of the last published run for areas this run did not measure (`--only`)."""
    if not RESULTS_JSON.exists():
        return []
    kept = []
    for raw in json.loads(RESULTS_JSON.read_text(encoding="utf-8")).get("figures", []):
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
                note=(raw.get("note") or "") + " (earlier run)",
                extra=raw.get("extra") or {},
            )
        )
    return kept


def publish(figures: list[Figure], problems: list[str], *, quick: bool) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if not quick:
        figures = figures + previous_figures({f.area for f in figures})
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
        RESULTS_MD.read_text(encoding="utf-8")
        if RESULTS_MD.exists()
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
    RESULTS_MD.write_text(text, encoding="utf-8")
    RESULTS_JSON.write_text(
        json.dumps(
            {
                "run_at": stamp,
                "quick": quick,
                "machine": machine_description(),
                "figures": [{**asdict(f), "median": f.median, "spread": f.spread} for f in figures],
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
    parser.add_argument("--no-publish", action="store_true", help="do not rewrite docs/")
    args = parser.parse_args(argv)
    figures, problems = run_areas(quick=args.quick, only=set(args.only or ()))
    print(render_table(figures))
    for problem in problems:
        print(f"FAILED: {problem}")
    if not args.no_publish:
        publish(figures, problems, quick=args.quick)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
