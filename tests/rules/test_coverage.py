"""The catalogue covers every control the issue asks for, and rule metadata is well-formed."""

from __future__ import annotations

import pytest

from rules import default_rules, psa

PSS_CONTROLS = {
    "baseline/host-process",
    "baseline/host-namespaces",
    "baseline/privileged-containers",
    "baseline/capabilities",
    "baseline/hostpath-volumes",
    "baseline/host-ports",
    "baseline/apparmor",
    "baseline/selinux",
    "baseline/proc-mount-type",
    "baseline/seccomp",
    "baseline/sysctls",
    "baseline/host-probes",
    "restricted/volume-types",
    "restricted/privilege-escalation",
    "restricted/running-as-non-root",
    "restricted/running-as-non-root-user",
    "restricted/seccomp",
    "restricted/capabilities",
    "restricted/proc-mount-type",  # policy v1.35: user namespaces relax baseline only
}
CIS_CONTROLS = (
    [f"5.1.{i}" for i in range(1, 14)]
    + [f"5.2.{i}" for i in range(1, 13)]
    + ["5.3.2", "5.4.1", "5.6.2", "5.6.3", "5.6.4"]
)
# CIS Kubernetes Benchmark v1.12 numbering of section 5.2 (see the issue).
CIS_5_2 = {
    "KM-101": "5.2.2",
    "KM-102": "5.2.3",
    "KM-103": "5.2.4",
    "KM-104": "5.2.5",
    "KM-105": "5.2.6",
    "KM-106": "5.2.7",
    "KM-107": "5.2.7",
    "KM-108": "5.2.8",
    "KM-109": "5.2.9",
    "KM-112": "5.2.10",
    "KM-113": "5.2.11",
    "KM-114": "5.2.12",
}


def _all(attribute: str) -> set[str]:
    return {value for r in default_rules() for value in getattr(r.meta, attribute)}


def test_every_pod_security_standard_control_is_covered() -> None:
    assert _all("pss") >= PSS_CONTROLS
    assert _all("pss") <= PSS_CONTROLS, "unknown PSS control slug"


def test_every_psa_control_is_reported_by_rules_carrying_its_tag() -> None:
    by_id = {r.id: r for r in default_rules()}
    assert {c.pss for c in psa.CONTROLS} == PSS_CONTROLS
    for control in psa.CONTROLS:
        assert control.rules, control.id
        for rule_id in control.rules:
            assert control.pss in by_id[rule_id].meta.pss, (control.id, rule_id)
    # ...and every rule carrying a control's tag is one of the rules that control runs.
    for rule_ in by_id.values():
        for tag in rule_.meta.pss:
            owners = [c for c in psa.CONTROLS if c.pss == tag]
            assert owners and all(rule_.id in c.rules for c in owners), (rule_.id, tag)


@pytest.mark.parametrize("control", CIS_CONTROLS)
def test_cis_control_is_covered(control: str) -> None:
    assert control in _all("cis")


@pytest.mark.parametrize(("rule_id", "control"), sorted(CIS_5_2.items()))
def test_cis_v1_12_numbering_of_pod_security_rules(rule_id: str, control: str) -> None:
    meta = next(r.meta for r in default_rules() if r.id == rule_id)
    assert control in meta.cis


def test_at_least_sixty_rules_with_unique_titles() -> None:
    rules = default_rules()
    assert len(rules) >= 60
    titles = [r.meta.title for r in rules]
    assert len(set(titles)) == len(titles)
