"""Configuration as data: severity overrides, disabled rules, exemptions and their expiry."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts.severity import Severity
from rules import ConfigError, Engine, ScanConfig
from tests.rules.helpers import deployment, pod

NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
PRIVILEGED = {
    "containers": [
        {"name": "app", "image": "a:1", "securityContext": {"privileged": True}},
        {"name": "istio-proxy", "image": "p:1", "securityContext": {"privileged": True}},
    ]
}


def _scan(config: dict, manifests: list[dict], *, cluster: str | None = None):
    outcome = Engine.from_config(config).scan(manifests, cluster=cluster, now=NOW)
    return [r for r in outcome.results if r.rule_id == "KM-101"], outcome


def test_severity_override_and_disabled_rules() -> None:
    results, outcome = _scan(
        {"severity": {"KM-101": "LOW"}, "disabled": ["KM-123"]}, [pod(spec=PRIVILEGED)]
    )
    assert {r.severity for r in results} == {Severity.LOW}
    assert not [r for r in outcome.results if r.rule_id == "KM-123"]


def test_exemption_is_kept_and_marked_not_dropped() -> None:
    config = {
        "exemptions": [
            {"rules": ["KM-101"], "namespaces": ["kube-*"], "reason": "CNI", "owner": "platform"}
        ]
    }
    results, outcome = _scan(
        config,
        [
            pod("cni", namespace="kube-system", spec=PRIVILEGED),
            pod("app", namespace="shop", spec=PRIVILEGED),
        ],
    )
    by_ns = {(r.resource.namespace, r.container): r for r in results}
    exempted = by_ns[("kube-system", "app")]
    assert exempted.status == "exempted"
    assert exempted.exemption == {
        "source": "config",
        "index": 0,
        "reason": "CNI",
        "owner": "platform",
        "expires": None,
        "status": "active",
    }
    assert by_ns[("shop", "app")].status == "open"
    assert outcome.summary()["exempted"] >= 2
    assert outcome.reaches(Severity.CRITICAL)  # the shop pod is still open and critical


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"kinds": ["Deployment"]}, {"d1"}),
        ({"names": ["d*"]}, {"d1"}),
        ({"labels": "team=net"}, {"p1"}),
        (
            {
                "labels": {
                    "matchExpressions": [{"key": "team", "operator": "In", "values": ["net", "x"]}]
                }
            },
            {"p1"},
        ),
        ({"containers": ["istio-*"]}, {"d1", "p1"}),
        ({"cluster": "prod"}, {"d1", "p1"}),
        ({"cluster": "dev"}, set()),
    ],
)
def test_exemption_selectors(selector: dict, expected: set[str]) -> None:
    config = {"exemptions": [{"rules": ["*"], "reason": "r", **selector}]}
    manifests = [
        deployment("d1", spec=PRIVILEGED),
        pod("p1", spec=PRIVILEGED, labels={"team": "net"}),
    ]
    results, _ = _scan(config, manifests, cluster="prod")
    exempted = {r.resource.name for r in results if r.status == "exempted"}
    assert exempted == expected
    if "containers" in selector:
        assert all(r.container == "istio-proxy" for r in results if r.status == "exempted")


def test_global_exemption_applies_to_every_cluster() -> None:
    config = {"exemptions": [{"rules": ["KM-101"], "reason": "r"}]}
    for cluster in ("a", "b", None):
        results, _ = _scan(config, [pod(spec=PRIVILEGED)], cluster=cluster)
        assert {r.status for r in results} == {"exempted"}


def test_expired_exemption_stops_applying_and_is_reported() -> None:
    config = {
        "exemptions": [
            {"rules": ["KM-101"], "reason": "temporary", "owner": "ops", "expires": "2026-05-31"},
        ]
    }
    results, outcome = _scan(config, [pod(spec=PRIVILEGED)])
    assert {r.status for r in results} == {"open"}
    assert {r.exemption["status"] for r in results if r.exemption} == {"expired"}
    assert outcome.summary()["expired_exemptions"] == [
        {
            "index": 0,
            "rules": ["KM-101"],
            "reason": "temporary",
            "owner": "ops",
            "expires": "2026-05-31",
        }
    ]


def test_date_expiry_includes_the_whole_day() -> None:
    config = {"exemptions": [{"rules": ["KM-101"], "reason": "r", "expires": "2026-06-01"}]}
    results, outcome = _scan(config, [pod(spec=PRIVILEGED)])
    assert {r.status for r in results} == {"exempted"}
    assert outcome.summary()["expired_exemptions"] == []


def test_active_exemption_wins_over_an_expired_one() -> None:
    config = {
        "exemptions": [
            {"rules": ["KM-101"], "reason": "old", "expires": "2020-01-01T00:00:00Z"},
            {"rules": ["KM-101"], "reason": "new", "expires": "2030-01-01T00:00:00Z"},
        ]
    }
    results, _ = _scan(config, [pod(spec=PRIVILEGED)])
    assert {(r.status, r.exemption["reason"]) for r in results} == {("exempted", "new")}


def test_annotation_exemptions_only_when_allowed() -> None:
    annotated = pod(spec=PRIVILEGED, annotations={"k8s-monitor.io/exempt": "KM-104, KM-101"})
    results, _ = _scan({}, [annotated])
    assert {r.status for r in results} == {"open"}
    results, _ = _scan({"allow_annotation_exemptions": True}, [annotated])
    assert {r.status for r in results} == {"exempted"}
    assert {r.exemption["source"] for r in results} == {"annotation"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"severty": {}}, "unknown keys severty"),
        ({"severity": {"KM-101": "urgent"}}, "severity.KM-101"),
        ({"disabled": "KM-101 KM-102"}, None),
        ({"exemptions": [{"rules": ["KM-101"]}]}, "exemptions[0].reason"),
        ({"exemptions": [{"reason": "x"}]}, "exemptions[0].rules"),
        (
            {"exemptions": [{"rules": ["KM-101"], "reason": "x", "expires": "soon"}]},
            "exemptions[0].expires",
        ),
        (
            {"exemptions": [{"rules": ["KM-101"], "reason": "x", "labels": "a in b"}]},
            "exemptions[0].labels",
        ),
        (
            {"exemptions": [{"rules": ["KM-101"], "reason": "x", "namespace": "a"}]},
            "exemptions[0]: unknown keys namespace",
        ),
        ({"allow_annotation_exemptions": "yes"}, "allow_annotation_exemptions"),
    ],
)
def test_invalid_configuration_is_rejected_with_its_path(data: dict, message: str | None) -> None:
    if message is None:  # a single string where a list is expected is accepted as one id
        with pytest.raises(ConfigError, match="unknown rule ids"):
            Engine.from_config(data)
        return
    with pytest.raises(ConfigError) as problem:
        Engine.from_config(data)
    assert message in str(problem.value)


def test_unknown_rule_ids_are_rejected() -> None:
    with pytest.raises(ConfigError, match="KM-999"):
        Engine.from_config({"disabled": ["KM-999"]})


def test_yaml_configuration_round_trip() -> None:
    config = ScanConfig.from_yaml(
        "severity: {KM-101: medium}\n"
        "exemptions:\n"
        "  - rules: [KM-104]\n    reason: CNI\n    expires: 2027-01-31\n"
    )
    assert config.severity["KM-101"] is Severity.MEDIUM
    assert config.to_dict()["exemptions"][0]["expires"] == "2027-01-31"
    with pytest.raises(ConfigError, match="not valid YAML"):
        ScanConfig.from_yaml("severity: [")
