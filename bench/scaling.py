"""How scan cost grows with corpus size: throughput at several sizes, plotted to docs/."""

from __future__ import annotations

import time
from pathlib import Path

from agent.normalise import normalise
from bench.corpus import generate
from bench.harness import Figure, repeat
from rules import Engine

AREA = "scaling"
PLOT = "scan-throughput.png"  # beside the run's results (docs/ for a published run)
FULL_SIZES = (1_000, 5_000, 20_000, 50_000, 100_000)
QUICK_SIZES = (1_000, 5_000, 10_000)


def _rate(engine: Engine, objects: list[dict], *, runs: int) -> tuple[float, ...]:
    def once() -> float:
        started = time.process_time()
        engine.scan(objects)
        return len(objects) / (time.process_time() - started)

    return repeat(once, runs=runs)


def plot(points: list[tuple[int, float, float, float]], path: Path) -> None:
    """Median throughput (with min-max bars) against corpus size, log-scaled x."""
    import matplotlib  # noqa: PLC0415 - only the benchmark needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    sizes = [p[0] for p in points]
    medians = [p[1] for p in points]
    lower = [p[1] - p[2] for p in points]
    upper = [p[3] - p[1] for p in points]
    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
    axes.errorbar(
        sizes, medians, yerr=[lower, upper], marker="o", capsize=3, label="full catalogue, one core"
    )
    axes.axhline(20_000, color="grey", linestyle="--", label="target: 20,000 objects/s")
    axes.set_xscale("log")
    axes.set_xlabel("objects in the corpus")
    axes.set_ylabel("objects per CPU second")
    axes.set_ylim(bottom=0)
    axes.set_title("k8s-monitor scan throughput against corpus size")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def run(*, quick: bool, out: Path) -> list[Figure]:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    engine = Engine.from_config(None)
    corpus = [normalise(o) for o in generate(max(sizes))]
    figures: list[Figure] = []
    points: list[tuple[int, float, float, float]] = []
    for size in sizes:
        rates = _rate(engine, corpus[:size], runs=3)
        figure = Figure(AREA, f"full scan of {size:,} objects", "objects/s", rates)
        figures.append(figure)
        points.append((size, figure.median, min(rates), max(rates)))
    smallest, largest = points[0][1], points[-1][1]
    figures.append(
        Figure(
            AREA,
            "throughput at the largest size / at the smallest",
            "x",
            (largest / smallest,),
            note="1.0 would be exactly linear cost; below 1, each object costs a little more "
            "in a larger corpus (cluster-rule indexes grow)",
        )
    )
    if not quick:
        out.mkdir(parents=True, exist_ok=True)
        plot(points, out / PLOT)
    return figures
