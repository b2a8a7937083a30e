"""General-policy rules (KM-5xx) edge cases, and robustness of every KM-2xx..6xx rule on
malformed manifests (nulls and strings where mappings or lists are expected)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rules import ClusterContext, Engine, default_rules, load_paths
from rules.catalogue.general import policy_mechanisms

FIXTURES = Path(__file__).parent / "fixtures"
MINE = ("KM-2", "KM-3", "KM-4", "KM-5", "KM-6")


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels}}


def test_policy_mechanisms_seen() -> None:
    vap_binding = {"apiVersion": "admissionregistration.k8s.io/v1",
                   "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "b"},
                   "spec": {"policyName": "p", "validationActions": ["Warn", "Deny"]}}
    kubewarden = {"apiVersion": "admissionregistration.k8s.io/v1",
                  "kind": "ValidatingWebhookConfiguration",
                  "metadata": {"name": "policy-hooks"},
                  "webhooks": [{"name": "clusterwide-no-privileged.kubewarden.admission"}]}
    found = policy_mechanisms(ClusterContext([
        namespace("a", **{"pod-security.kubernetes.io/enforce": "Restricted"}),
        vap_binding, kubewarden,
    ]))
    assert len(found) == 3
    assert policy_mechanisms(ClusterContext([
        namespace("a", **{"pod-security.kubernetes.io/enforce": "privileged"}),
    ])) == []


def test_policy_finding_is_reported_once_per_cluster() -> None:
    outcome = Engine.from_config(None).scan([namespace(f"ns{i}") for i in range(5)])
    hits = [r for r in outcome.results if r.rule_id == "KM-501"]
    assert len(hits) == 1 and hits[0].resource.name == "ns0"


def _documents() -> list[tuple[str, list[dict[str, Any]]]]:
    out = []
    for folder in sorted(FIXTURES.glob("KM-[2-6]*")):
        for path in sorted(folder.glob("*.yaml")):
            docs = [d.manifest for d in load_paths([path]).documents]
            out.append((f"{folder.name}/{path.name}", docs))
    return out


def _mutations(value: Any, depth: int = 0) -> Iterator[Any]:
    """Copies of `value` with one nested field replaced by None, a string or a number."""
    if depth > 5:
        return
    if isinstance(value, dict):
        for key in value:
            for bad in (None, "oops", 7, []):
                changed = dict(value)
                changed[key] = bad
                yield changed
            for inner in _mutations(value[key], depth + 1):
                changed = dict(value)
                changed[key] = inner
                yield changed
    elif isinstance(value, list):
        for index, item in enumerate(value):
            for inner in [None, "oops", *_mutations(item, depth + 1)]:
                changed = list(value)
                changed[index] = inner
                yield changed


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_config(None, rules=[r for r in default_rules()
                                           if r.id.startswith(MINE)])


@pytest.mark.parametrize(("name", "docs"), _documents(), ids=lambda v: v if isinstance(
    v, str) else "")
def test_rules_never_crash_on_malformed_fields(name: str, docs: list[dict[str, Any]],
                                               engine: Engine) -> None:
    for index, doc in enumerate(docs):
        for mutated in _mutations(doc):
            manifests = [*docs[:index], copy.deepcopy(mutated), *docs[index + 1:]]
            results = [*engine.evaluate_object(manifests[index]),
                       *engine.evaluate_cluster(manifests)]
            errors = [r for r in results if r.status == "error"]
            assert not errors, (name, mutated, [r.message for r in errors])
