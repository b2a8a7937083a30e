"""Image advisories operators load: the record shape, its strict parser and version matching.

One advisory (an OSV-like record: an id, what is affected, which versions, where to read)::

    id: EXAMPLE-2021-44228              # unique; loading the same id again replaces it
    summary: Remote code execution in Apache Log4j 2 (Log4Shell)
    severity: critical                  # critical | high | medium | low | info
    url: https://example.org/advisories/EXAMPLE-2021-44228
    affected:                           # one or more ranges
      - repository: "*/log4j-app"       # glob over the image repository (see below)
        introduced: "2.0.0"             # first affected version (default: every version)
        fixed: "2.15.0"                 # first fixed version (exclusive upper bound), or
        # last_affected: "2.14.1"       # the last affected one (inclusive); or neither

A file or a JSON body holds one record, a list of them, or `{"advisories": [...]}`.
`parse_advisories` refuses anything else with `AdvisoryError` naming the offending field
(`advisories[2].affected[0].fixed: ...`); nothing is stored unless every record is valid.

The repository glob matches the canonical repository (`docker.io/library/nginx`,
`registry.example/shop/web`) or the repository as the manifest writes it (`nginx`).
Versions are read with `contracts.images.parse_version`; bounds are exact (`2.15` is 2.15.0).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.images import ImageRef, Version, VersionError, compare, parse_version
from contracts.severity import Severity

ADVISORY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,99}$")
_RECORD_KEYS = frozenset({"id", "summary", "severity", "url", "affected", "aliases"})
_RANGE_KEYS = frozenset({"repository", "introduced", "fixed", "last_affected"})
MAX_ADVISORIES = 10_000
MAX_RANGES = 100
_RANK: dict[bool | None, int] = {True: 2, None: 1, False: 0}


class AdvisoryError(ValueError):
    """An advisory record that is not valid; the message starts with the field's path."""


@dataclass(frozen=True, slots=True)
class AffectedRange:
    """Versions of the repositories matching `repository` that an advisory affects."""

    repository: str
    introduced: Version | None = None
    fixed: Version | None = None
    last_affected: Version | None = None

    def matches_repository(self, image: ImageRef) -> bool:
        pattern = self.repository
        return fnmatch.fnmatchcase(image.repository, pattern) or fnmatch.fnmatchcase(
            image.name, pattern
        )

    def contains(self, version: Version) -> bool | None:
        """Whether `version` is in the range; None when its tag is too imprecise to tell."""
        checks: list[int | None] = []
        if self.introduced is not None:
            low = compare(version, self.introduced, b_exact=True)
            checks.append(None if low is None else int(low >= 0))
        if self.fixed is not None:
            high = compare(version, self.fixed, b_exact=True)
            checks.append(None if high is None else int(high < 0))
        if self.last_affected is not None:
            high = compare(version, self.last_affected, b_exact=True)
            checks.append(None if high is None else int(high <= 0))
        if 0 in checks:
            return False
        if None in checks:
            return None
        return True

    def describe(self) -> str:
        parts = []
        if self.introduced is not None:
            parts.append(f">= {self.introduced}")
        if self.fixed is not None:
            parts.append(f"< {self.fixed}")
        if self.last_affected is not None:
            parts.append(f"<= {self.last_affected}")
        return f"{self.repository} " + (", ".join(parts) if parts else "every version")

    def to_dict(self) -> dict[str, str]:
        out = {"repository": self.repository}
        for key in ("introduced", "fixed", "last_affected"):
            value = getattr(self, key)
            if value is not None:
                out[key] = str(value)
        return out


@dataclass(frozen=True, slots=True)
class Advisory:
    """One loaded advisory (see the module docstring for the record shape)."""

    id: str
    severity: Severity
    affected: tuple[AffectedRange, ...]
    summary: str = ""
    url: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def fixed_versions(self) -> list[str]:
        return sorted({str(r.fixed) for r in self.affected if r.fixed is not None})

    def to_dict(self) -> dict[str, Any]:
        """The record as stored and served (parsing it again gives an equal Advisory)."""
        return {
            "id": self.id,
            "summary": self.summary,
            "severity": self.severity.value,
            "url": self.url,
            "aliases": list(self.aliases),
            "affected": [r.to_dict() for r in self.affected],
        }


def _text(value: Any, where: str, *, limit: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise AdvisoryError(f"{where}: must be a non-empty string")
    if len(value) > limit or "\x00" in value:
        raise AdvisoryError(f"{where}: at most {limit} characters, no NUL")
    return value.strip()


def _bound(value: Any, where: str) -> Version | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # `fixed: 2.15` in YAML is a number
    if not isinstance(value, str):
        raise AdvisoryError(f"{where}: must be a version string such as 2.15.0")
    try:
        return parse_version(value)
    except VersionError as problem:
        raise AdvisoryError(f"{where}: {problem}") from None


def _mapping(value: Any, where: str, *, allowed: frozenset[str]) -> Mapping[str, Any]:
    """`value` when it is a mapping with only `allowed` keys; else the error naming `where`."""
    if not isinstance(value, Mapping):
        raise AdvisoryError(f"{where}: must be a mapping")
    unknown = sorted(set(map(str, value)) - allowed)
    if unknown:
        raise AdvisoryError(f"{where}: unknown field {unknown[0]}")
    return value


def _range(value: Any, where: str) -> AffectedRange:
    item = _mapping(value, where, allowed=_RANGE_KEYS)
    repository = _text(item.get("repository"), f"{where}.repository", limit=300)
    if any(c.isspace() for c in repository):
        raise AdvisoryError(f"{where}.repository: no spaces in a repository pattern")
    fixed = _bound(item.get("fixed"), f"{where}.fixed")
    last = _bound(item.get("last_affected"), f"{where}.last_affected")
    if fixed is not None and last is not None:
        raise AdvisoryError(f"{where}: give fixed or last_affected, not both")
    introduced = _bound(item.get("introduced"), f"{where}.introduced")
    upper = fixed or last
    if introduced is not None and upper is not None:
        order = compare(upper, introduced, b_exact=True)
        if order is not None and (order < 0 or (order == 0 and fixed is not None)):
            bound = "fixed" if fixed is not None else "last_affected"
            raise AdvisoryError(f"{where}.{bound}: must come after introduced ({introduced})")
    return AffectedRange(repository, introduced, fixed, last)


def parse_advisory(record: Any, where: str = "advisory") -> Advisory:
    """One record, validated; `AdvisoryError` names the first bad field."""
    record = _mapping(record, where, allowed=_RECORD_KEYS)
    advisory_id = _text(record.get("id"), f"{where}.id", limit=100)
    if not ADVISORY_ID.match(advisory_id):
        raise AdvisoryError(f"{where}.id: letters, digits and . _ : - only (at most 100)")
    try:
        severity = Severity.parse(str(record.get("severity", "")))
    except ValueError:
        raise AdvisoryError(
            f"{where}.severity: one of {', '.join(s.value for s in Severity)}"
        ) from None
    url = record.get("url")
    if url is not None:
        url = _text(url, f"{where}.url", limit=2000)
        if not url.startswith(("https://", "http://")):
            raise AdvisoryError(f"{where}.url: must be an http(s) URL")
    aliases = record.get("aliases") or []
    if not isinstance(aliases, list):
        raise AdvisoryError(f"{where}.aliases: must be a list of ids")
    affected = record.get("affected")
    if not isinstance(affected, list) or not affected:
        raise AdvisoryError(f"{where}.affected: must be a non-empty list of ranges")
    if len(affected) > MAX_RANGES:
        raise AdvisoryError(f"{where}.affected: at most {MAX_RANGES} ranges")
    return Advisory(
        id=advisory_id,
        severity=severity,
        affected=tuple(_range(r, f"{where}.affected[{i}]") for i, r in enumerate(affected)),
        summary=_text(record.get("summary"), f"{where}.summary", limit=2000, required=False),
        url=url,
        aliases=tuple(_text(a, f"{where}.aliases[{i}]", limit=100) for i, a in enumerate(aliases)),
    )


def parse_advisories(data: Any) -> list[Advisory]:
    """Every record of a loaded file or JSON body: one record, a list, or
    `{"advisories": [...]}`. All or nothing: the first bad field raises `AdvisoryError`."""
    if isinstance(data, Mapping) and set(data) == {"advisories"}:
        data = data["advisories"]
        prefix = "advisories"
    elif isinstance(data, Mapping):
        return [parse_advisory(data)]
    else:
        prefix = "advisories"
    if not isinstance(data, list) or not data:
        raise AdvisoryError(f"{prefix}: must be a non-empty list of advisory records")
    if len(data) > MAX_ADVISORIES:
        raise AdvisoryError(f"{prefix}: at most {MAX_ADVISORIES} records at once")
    parsed = [parse_advisory(item, f"{prefix}[{i}]") for i, item in enumerate(data)]
    seen: set[str] = set()
    for i, advisory in enumerate(parsed):
        if advisory.id in seen:
            raise AdvisoryError(f"{prefix}[{i}].id: {advisory.id} appears twice")
        seen.add(advisory.id)
    return parsed


class AdvisoryIndex:
    """The advisories' ranges indexed by the repositories they match, for matching many
    running images at once: each repository pattern is compiled once and matched once
    against the distinct repository names, not once per running image."""

    def __init__(self, advisories: Sequence[Advisory], names: Iterable[str]) -> None:
        distinct = sorted(set(names))
        self._ranges: dict[str, list[tuple[Advisory, AffectedRange]]] = {}
        for advisory in advisories:
            for affected in advisory.affected:
                pattern = re.compile(fnmatch.translate(affected.repository))
                for name in distinct:
                    if pattern.match(name):
                        self._ranges.setdefault(name, []).append((advisory, affected))

    def verdicts(self, image: ImageRef) -> list[tuple[Advisory, bool | None]]:
        """The advisories covering `image`: (advisory, True) when its tag's version is in an
        affected range, (advisory, None) when a range's repository matches but the tag is not
        a version, or is too imprecise to tell. Advisories that exclude it are left out."""
        candidates = self._ranges.get(image.repository, []) + (
            self._ranges.get(image.name, []) if image.name != image.repository else []
        )
        if not candidates:
            return []
        try:
            version: Version | None = parse_version(image.tag)
        except VersionError:
            version = None
        verdict: dict[str, tuple[Advisory, bool | None]] = {}
        for advisory, affected in candidates:
            inside = affected.contains(version) if version is not None else None
            before = verdict.get(advisory.id)
            if before is None or _RANK[inside] > _RANK[before[1]]:
                verdict[advisory.id] = (advisory, inside)
        return [pair for pair in verdict.values() if pair[1] is not False]
