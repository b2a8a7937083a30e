"""A small evaluator of Kubernetes RBAC rules, as the API server authorises a request.

A rule allows a request when its apiGroups, resources and verbs each contain the request's value
or `*`, and its resourceNames is empty or contains the object's name. Requests without a name
(list, watch of a collection, create) match only rules without resourceNames.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _matches(values: Iterable[str], wanted: str) -> bool:
    values = list(values)
    return "*" in values or wanted in values


def rule_allows(
    rule: dict[str, Any], *, verb: str, group: str, resource: str, name: str | None
) -> bool:
    if not _matches(rule.get("apiGroups", []), group):
        return False
    if not _matches(rule.get("resources", []), resource):
        return False
    if not _matches(rule.get("verbs", []), verb):
        return False
    names = rule.get("resourceNames") or []
    if not names:
        return True
    return name is not None and name in names


def allows(
    rules: Iterable[dict[str, Any]],
    *,
    verb: str,
    group: str,
    resource: str,
    name: str | None = None,
) -> bool:
    """Whether any of the rules allows `verb` on `group/resource` (named `name`)."""
    return any(
        rule_allows(rule, verb=verb, group=group, resource=resource, name=name) for rule in rules
    )
