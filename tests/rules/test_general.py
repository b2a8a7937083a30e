"""General-policy rules (KM-5xx) edge cases. (Robustness of every rule on malformed manifests
is tested in test_malformed.py.)"""

from __future__ import annotations

from typing import Any

from rules import ClusterContext, Engine
from rules.catalogue.general import policy_mechanisms


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def test_policy_mechanisms_seen() -> None:
    vap_binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": "b"},
        "spec": {"policyName": "p", "validationActions": ["Warn", "Deny"]},
    }
    kubewarden = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "policy-hooks"},
        "webhooks": [{"name": "clusterwide-no-privileged.kubewarden.admission"}],
    }
    found = policy_mechanisms(
        ClusterContext(
            [
                namespace("a", **{"pod-security.kubernetes.io/enforce": "Restricted"}),
                vap_binding,
                kubewarden,
            ]
        )
    )
    assert len(found) == 3
    assert (
        policy_mechanisms(
            ClusterContext(
                [
                    namespace("a", **{"pod-security.kubernetes.io/enforce": "privileged"}),
                ]
            )
        )
        == []
    )


def test_policy_finding_is_reported_once_per_cluster() -> None:
    outcome = Engine.from_config(None).scan([namespace(f"ns{i}") for i in range(5)])
    hits = [r for r in outcome.results if r.rule_id == "KM-501"]
    assert len(hits) == 1 and hits[0].resource.name == "ns0"
