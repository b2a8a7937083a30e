"""Severity levels shared by rules, findings, reports and the CLI."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    """How bad a violation is; ordered from most to least severe."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is more severe: critical=4 ... info=0."""
        return _RANKS[self]

    def at_least(self, other: Severity) -> bool:
        """True when this severity is as severe as `other` or more."""
        return self.rank >= other.rank

    @classmethod
    def parse(cls, value: str) -> Severity:
        """Parse a severity name case-insensitively, with a clear error (an exact name by one
        look-up: stored results are read back by the thousand)."""
        exact = _BY_NAME.get(value)
        if exact is not None:
            return exact
        try:
            return cls(value.strip().lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {value!r}; expected one of {names}") from None


_BY_NAME: dict[str, Severity] = {severity.value: severity for severity in Severity}

_RANKS = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFO: 0,
}
