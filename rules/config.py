"""Scan configuration as data: severity overrides, disabled rules, exemptions, options.

One YAML document (see docs/rules-authoring.md, "Configuration")::

    severity: {KM-106: low}
    disabled: [KM-123]
    dedup_controllers: true            # report controlled pods once, on the top controller
    allow_annotation_exemptions: false # honour k8s-monitor.io/exempt annotations
    image_drift:                       # KM-621: how far behind the fleet's newest version
      max_releases_behind: 2           # releases (at the first semver number that differs)
      max_days_behind: 30              # days since the newest version first ran in the fleet
    exemptions:
      - rules: [KM-104]                # or ["*"]
        cluster: prod-eu               # omit for a global exemption
        kinds: [DaemonSet]
        namespaces: ["kube-*"]         # globs
        names: ["cilium*"]             # globs
        labels: "app.kubernetes.io/part-of=cilium"   # or a LabelSelector mapping
        containers: ["agent"]          # globs
        reason: the CNI needs the host network
        owner: platform-team
        expires: 2027-01-31            # date or RFC 3339 timestamp; optional

Exemptions stored in the database (CLI, admin pages) become the same `Exemption` type at the
boundary (`Exemption.stored`), so a selector means the same everywhere: kinds, namespaces,
names and containers are globs, labels a full Kubernetes label selector.

Parsing is strict: unknown keys and wrong types raise ConfigError naming the offending path.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

from contracts.findings import ExemptionDict, ExpiredExemptionDict
from contracts.selectors import Selector, SelectorError, parse_selector
from contracts.severity import Severity

EXEMPT_ANNOTATION = "k8s-monitor.io/exempt"

_TOP_KEYS = frozenset(
    {
        "severity",
        "disabled",
        "exemptions",
        "allow_annotation_exemptions",
        "dedup_controllers",
        "image_drift",
    }
)
_DRIFT_KEYS = frozenset({"max_releases_behind", "max_days_behind"})
_EXEMPTION_KEYS = frozenset(
    {
        "rules",
        "cluster",
        "kinds",
        "namespaces",
        "names",
        "labels",
        "containers",
        "reason",
        "owner",
        "expires",
    }
)


class ConfigError(ValueError):
    """An invalid scan configuration; the message names the offending key path."""


@dataclass(frozen=True, slots=True)
class Exemption:
    """One exemption, configured (`source="config"`, `index` is its position in the list) or
    stored in the database (`source="database"`, `index` is its id). Every selector given must
    match (empty = match all)."""

    index: int
    rules: frozenset[str]
    reason: str
    owner: str
    cluster: str | None = None
    kinds: frozenset[str] = frozenset()
    namespaces: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    labels: Selector | None = None
    containers: tuple[str, ...] = ()
    expires: dt.datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    source: Literal["config", "database"] = "config"

    @classmethod
    def stored(
        cls,
        *,
        exemption_id: int,
        rule_ids: Sequence[str],
        selector: Mapping[str, Any] | None,
        reason: str,
        owner: str,
        cluster: str | None,
        expires: dt.datetime | None,
    ) -> Exemption:
        """A database exemption (`store.models.Exemption`'s fields) as the one Exemption type.

        Its selector keys are `kind`, `namespace`, `name`, `container` (a glob or a list of
        globs) and `labels` (a label selector: text such as `app=web,tier in (a,b)`, a
        `{key: value}` map or a LabelSelector mapping). Raises ConfigError for a bad selector.
        """
        selector = selector or {}
        where = f"exemption {exemption_id}"
        labels = None
        if selector.get("labels"):
            try:
                labels = parse_selector(selector["labels"])
            except SelectorError as problem:
                raise ConfigError(f"{where}.labels: {problem}") from None
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=dt.UTC)
        return cls(
            index=exemption_id,
            rules=frozenset(rule_ids),
            reason=reason,
            owner=owner,
            cluster=cluster,
            kinds=frozenset(_globs(selector.get("kind"), f"{where}.kind")),
            namespaces=_globs(selector.get("namespace"), f"{where}.namespace"),
            names=_globs(selector.get("name"), f"{where}.name"),
            labels=labels,
            containers=_globs(selector.get("container"), f"{where}.container"),
            expires=expires,
            raw=_plain(dict(selector)),
            source="database",
        )

    @property
    def expires_text(self) -> str | None:
        """The expiry as written in the configuration (ISO text), or None."""
        if self.expires is None:
            return None
        written = self.raw.get("expires")
        return str(written) if written is not None else self.expires.isoformat()

    def covers_rule(self, rule_id: str) -> bool:
        return "*" in self.rules or rule_id in self.rules

    def is_expired(self, now: dt.datetime) -> bool:
        return self.expires is not None and now >= self.expires

    def matches(
        self,
        *,
        rule_id: str,
        kind: str,
        namespace: str | None,
        name: str,
        labels: Mapping[str, Any] | None,
        container: str | None,
        cluster: str | None,
    ) -> bool:
        """Whether this exemption's rule list and selectors cover one violation."""
        if (
            not self.covers_rule(rule_id)
            or (self.cluster is not None and self.cluster != cluster)
            or (self.kinds and not any(fnmatch.fnmatchcase(kind, p) for p in self.kinds))
        ):
            return False
        if self.namespaces and not any(
            fnmatch.fnmatchcase(namespace or "", pattern) for pattern in self.namespaces
        ):
            return False
        if self.names and not any(fnmatch.fnmatchcase(name, p) for p in self.names):
            return False
        if self.containers and (
            container is None or not any(fnmatch.fnmatchcase(container, p) for p in self.containers)
        ):
            return False
        return self.labels is None or self.labels.matches(labels)

    def record(self, *, status: str) -> ExemptionDict:
        return {
            "source": self.source,
            "index": self.index,
            "reason": self.reason,
            "owner": self.owner,
            "expires": self.expires_text,
            "status": status,  # type: ignore[typeddict-item]
        }

    def expired_record(self) -> ExpiredExemptionDict:
        return {
            "index": self.index,
            "rules": sorted(self.rules),
            "reason": self.reason,
            "owner": self.owner,
            "expires": self.expires_text or "",
        }


@dataclass(frozen=True, slots=True)
class ImageDrift:
    """KM-621's thresholds: a workload is reported when its image is more than
    `max_releases_behind` releases, or has been behind for more than `max_days_behind` days,
    behind the newest version of its repository running anywhere in the fleet. The defaults
    here are the only place they are written."""

    max_releases_behind: int = 2
    max_days_behind: int = 30

    @classmethod
    def from_dict(cls, data: Any) -> ImageDrift:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError("image_drift: must be a mapping")
        unknown = sorted(set(map(str, data)) - _DRIFT_KEYS)
        if unknown:
            raise ConfigError(f"image_drift: unknown keys {', '.join(unknown)}")
        values = {}
        for key in sorted(_DRIFT_KEYS):
            if key not in data:
                continue
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100_000:
                raise ConfigError(f"image_drift.{key}: must be a whole number from 0 to 100000")
            values[key] = value
        return cls(**values)

    def to_dict(self) -> dict[str, int]:
        return {
            "max_releases_behind": self.max_releases_behind,
            "max_days_behind": self.max_days_behind,
        }


@dataclass(frozen=True, slots=True)
class ScanConfig:
    """The whole configuration; `ScanConfig()` is the default (everything on, no exemptions)."""

    severity: Mapping[str, Severity] = field(default_factory=lambda: MappingProxyType({}))
    disabled: frozenset[str] = frozenset()
    exemptions: tuple[Exemption, ...] = ()
    allow_annotation_exemptions: bool = False
    dedup_controllers: bool = True
    image_drift: ImageDrift = field(default_factory=ImageDrift)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ScanConfig:
        """Parse and validate a configuration mapping (None or {} gives the default)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError("configuration: must be a mapping")
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise ConfigError(f"configuration: unknown keys {', '.join(unknown)}")
        severity = _parse_severity(data.get("severity"))
        disabled = frozenset(_str_list(data.get("disabled"), "disabled"))
        exemptions = tuple(
            _parse_exemption(item, index)
            for index, item in enumerate(_list(data.get("exemptions"), "exemptions"))
        )
        return cls(
            severity=MappingProxyType(severity),
            disabled=disabled,
            exemptions=exemptions,
            allow_annotation_exemptions=_bool(
                data.get("allow_annotation_exemptions", False), "allow_annotation_exemptions"
            ),
            dedup_controllers=_bool(data.get("dedup_controllers", True), "dedup_controllers"),
            image_drift=ImageDrift.from_dict(data.get("image_drift")),
            raw=_plain(data),
        )

    @classmethod
    def from_file(cls, path: Path | None) -> ScanConfig:
        """The configuration in a YAML file (None: the default): the one place the rules
        YAML is read. Unreadable files, bad YAML and invalid content all raise ConfigError."""
        if path is None:
            return cls()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as problem:
            raise ConfigError(f"{path}: cannot be read: {problem}") from None
        return cls.from_yaml(text)

    @classmethod
    def from_yaml(cls, text: str) -> ScanConfig:
        """Parse a configuration YAML document."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as problem:
            raise ConfigError(f"configuration is not valid YAML: {problem}") from None
        return cls.from_dict(data or {})

    def referenced_rule_ids(self) -> set[str]:
        ids = set(self.severity) | set(self.disabled)
        for exemption in self.exemptions:
            ids |= {r for r in exemption.rules if r != "*"}
        return ids

    def expired_exemptions(self, now: dt.datetime) -> list[Exemption]:
        return [e for e in self.exemptions if e.is_expired(now)]

    def to_dict(self) -> dict[str, Any]:
        """Canonical data form (used for the catalogue version)."""
        return {
            "severity": {k: v.value for k, v in sorted(self.severity.items())},
            "disabled": sorted(self.disabled),
            "exemptions": [_plain(e.raw) for e in self.exemptions],
            "allow_annotation_exemptions": self.allow_annotation_exemptions,
            "dedup_controllers": self.dedup_controllers,
            "image_drift": self.image_drift.to_dict(),
        }


def _plain(value: Any) -> Any:
    """JSON-compatible copy (dates become ISO text)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a list")
    return value


def _globs(value: Any, where: str) -> tuple[str, ...]:
    """A stored selector value: one glob or a list of globs."""
    if value is None or value == "":
        return ()
    return tuple(_str_list(value, where))


def _str_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    items = _list(value, where)
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{where}[{i}]: must be a non-empty string")
    return items


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: must be true or false")
    return value


def _parse_severity(value: Any) -> dict[str, Severity]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError("severity: must be a mapping of rule id to severity")
    out = {}
    for rule_id, level in value.items():
        try:
            out[str(rule_id)] = Severity.parse(str(level))
        except ValueError as problem:
            raise ConfigError(f"severity.{rule_id}: {problem}") from None
    return out


def _parse_expiry(value: Any, where: str) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        # A date expires at the end of that day (UTC): "until 2027-01-31" includes the 31st.
        parsed = dt.datetime.combine(value + dt.timedelta(days=1), dt.time())
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a date or timestamp") from None
        if len(value.strip()) == 10:
            parsed += dt.timedelta(days=1)
    else:
        raise ConfigError(f"{where}: must be a date or timestamp")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _parse_exemption(item: Any, index: int) -> Exemption:
    where = f"exemptions[{index}]"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: must be a mapping")
    unknown = sorted(set(item) - _EXEMPTION_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(unknown)}")
    rules = _str_list(item.get("rules"), f"{where}.rules")
    if not rules:
        raise ConfigError(f'{where}.rules: list the rule ids (or "*") it exempts')
    reason = item.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError(f"{where}.reason: every exemption needs a reason")
    owner = item.get("owner", "")
    if not isinstance(owner, str):
        raise ConfigError(f"{where}.owner: must be a string")
    cluster = item.get("cluster")
    if cluster is not None and not isinstance(cluster, str):
        raise ConfigError(f"{where}.cluster: must be a string")
    labels = None
    if item.get("labels") is not None:
        try:
            labels = parse_selector(item["labels"])
        except SelectorError as problem:
            raise ConfigError(f"{where}.labels: {problem}") from None
    return Exemption(
        index=index,
        rules=frozenset(rules),
        reason=reason.strip(),
        owner=owner,
        cluster=cluster,
        kinds=frozenset(_str_list(item.get("kinds"), f"{where}.kinds")),
        namespaces=tuple(_str_list(item.get("namespaces"), f"{where}.namespaces")),
        names=tuple(_str_list(item.get("names"), f"{where}.names")),
        labels=labels,
        containers=tuple(_str_list(item.get("containers"), f"{where}.containers")),
        expires=_parse_expiry(item.get("expires"), f"{where}.expires"),
        raw=_plain(item),
    )


def annotation_exemptions(annotations: Mapping[str, Any] | None) -> frozenset[str]:
    """Rule ids listed in an object's `k8s-monitor.io/exempt` annotation (`*` = all)."""
    if not annotations:
        return frozenset()
    value = annotations.get(EXEMPT_ANNOTATION)
    if not isinstance(value, str):
        return frozenset()
    return frozenset(part.strip() for part in value.split(",") if part.strip())
