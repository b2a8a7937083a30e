"""A test clock for the apps' injectable `clock`: real time plus an offset the test controls."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class ShiftedClock:
    """Reads like `time.time` (a moving clock), shifted by `offset` seconds.

    Tests compute times relative to `clock()` when they need them, never at import: a time taken
    when the module is imported goes stale in a long run.
    """

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
