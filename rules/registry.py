"""The explicit list of rule modules, and collection of the `@rule` functions they define.

Adding a rule module means adding it to RULE_MODULES here; nothing registers itself on import.
Bump CATALOGUE_REVISION when a shared helper changes what rules report without any rule's
metadata or code changing (it feeds the catalogue version the workers cache results by).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from types import ModuleType

from rules.catalogue import (
    availability,
    general,
    hygiene,
    images,
    network,
    pod_security,
    rbac,
    secrets,
    versions,
)
from rules.model import Rule, rule_meta

CATALOGUE_REVISION = 1

RULE_MODULES: tuple[ModuleType, ...] = (
    pod_security,
    rbac,
    network,
    secrets,
    general,
    hygiene,
    availability,
    versions,
    images,
)


class RegistryError(ValueError):
    """Two rules share an id, or a listed module defines no rules it should."""


def collect_rules(modules: Iterable[ModuleType] = RULE_MODULES) -> tuple[Rule, ...]:
    """Every `@rule` function defined in `modules` (not merely imported there), by id."""
    found: dict[str, Rule] = {}
    for module in modules:
        for value in vars(module).values():
            if not callable(value) or getattr(value, "__module__", None) != module.__name__:
                continue
            meta = rule_meta(value)
            if meta is None:
                continue
            if meta.id in found:
                other = found[meta.id].check
                raise RegistryError(
                    f"rule id {meta.id} used twice: {other.__module__}.{other.__qualname__} "
                    f"and {value.__module__}.{value.__qualname__}"
                )
            found[meta.id] = Rule(meta=meta, check=value)
    return tuple(found[rule_id] for rule_id in sorted(found))


@functools.cache
def default_rules() -> tuple[Rule, ...]:
    """The built-in catalogue (computed once; the tuple and its rules are immutable)."""
    return collect_rules(RULE_MODULES)
