"""The RBAC evaluator used by the agent-chart tests follows Kubernetes' matching rules."""

from __future__ import annotations

from tests.helm.rbac import allows

SECRETS = {"group": "", "resource": "secrets"}


def test_wildcards_grant_secrets() -> None:
    assert allows([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]}], verb="get",
                  **SECRETS, name="x")
    assert allows([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}], verb="list",
                  **SECRETS)


def test_explicit_rules_do_not_leak() -> None:
    rules = [{"apiGroups": [""], "resources": ["pods", "configmaps"], "verbs": ["get", "list"]}]
    assert allows(rules, verb="list", group="", resource="pods")
    assert not allows(rules, verb="list", **SECRETS)
    assert not allows(rules, verb="watch", group="", resource="pods")
    assert not allows(rules, verb="list", group="apps", resource="pods")


def test_resource_names_limit_named_requests_only() -> None:
    rules = [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["key"],
              "verbs": ["get", "list", "create"]}]
    assert allows(rules, verb="get", **SECRETS, name="key")
    assert not allows(rules, verb="get", **SECRETS, name="other")
    # A collection request or a create carries no name: resourceNames never match it.
    assert not allows(rules, verb="list", **SECRETS)
    assert not allows(rules, verb="create", **SECRETS)
