"""Shared benchmark plumbing: repeated measurement, medians with spread, result rows."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    """One measured figure: the median of several runs, with its spread and target verdict."""

    area: str
    name: str
    unit: str
    samples: tuple[float, ...]
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    # What the same work costs at the limit, measured in the same run, in this figure's unit
    # (`floor_of` says what was measured: e.g. "orjson.loads of the same bodies").
    floor: float | None = None
    floor_of: str = ""

    @property
    def measured(self) -> bool:
        """False for a row that says why nothing was measured (e.g. checkov not installed)."""
        return bool(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else 0.0

    @property
    def spread(self) -> float:
        """Half the range between the fastest and slowest run, as a fraction of the median."""
        if len(self.samples) < 2 or self.median == 0:
            return 0.0
        return (max(self.samples) - min(self.samples)) / 2 / abs(self.median)


def repeat(measure: Callable[[], float], *, runs: int) -> tuple[float, ...]:
    """Call `measure` `runs` times and return what it measured each time."""
    return tuple(measure() for _ in range(runs))


def timed(action: Callable[[], object]) -> float:
    """Wall-clock seconds one call of `action` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def process_cpu_seconds(pid: int | str) -> float | None:
    """CPU time (user + system) a live process has used so far, from Linux /proc; None when
    it has gone (or is not on this machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # after the command: state, ppid, ... utime (14th field of the line), stime
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
