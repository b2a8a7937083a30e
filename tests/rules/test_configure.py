"""The one configuration function and exemption matcher (`rules.configure`), unit by unit."""

from __future__ import annotations

import datetime as dt

from contracts.resources import ResourceRef
from contracts.severity import Severity
from rules import Result, ScanConfig
from rules.config import EXEMPT_ANNOTATION, Exemption
from rules.configure import ObjectFacts, apply_config, reads_facts

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
WEB = ResourceRef("apps/v1", "Deployment", "shop", "web")


def _result(rule_id: str = "KM-101", *, ref: ResourceRef = WEB, container: str | None = "app"):
    return Result(
        rule_id, "t", Severity.HIGH, "c", (), (), ref, container, "$.spec", "m", "open", None, None
    )


def _stored(index: int = 7, **selector: object) -> Exemption:
    return Exemption.stored(
        exemption_id=index,
        rule_ids=["KM-101"],
        selector=selector,
        reason="accepted",
        owner="sec",
        cluster=None,
        expires=None,
    )


def _apply(config: ScanConfig, *, facts=None, stored=(), suppressed=frozenset(), results=None):
    return apply_config(
        results or [_result()],
        config=config,
        facts=facts or {},
        cluster="prod",
        now=NOW,
        suppressed=suppressed,
        stored=stored,
    )


def test_stored_labels_are_a_full_selector_like_the_yaml() -> None:
    system = {WEB.key: ObjectFacts.of({"tier": "system"}, {})}
    web = {WEB.key: ObjectFacts.of({"tier": "web"}, {})}
    stored = [_stored(labels="tier in (system,node)")]
    (hit,) = _apply(ScanConfig(), facts=system, stored=stored)
    assert hit.status == "exempted"
    assert hit.exemption == {
        "source": "database",
        "index": 7,
        "reason": "accepted",
        "owner": "sec",
        "expires": None,
        "status": "active",
    }
    (miss,) = _apply(ScanConfig(), facts=web, stored=stored)
    assert miss.status == "open" and miss.exemption is None
    yaml_config = ScanConfig.from_dict(
        {"exemptions": [{"rules": ["KM-101"], "labels": "tier in (system,node)", "reason": "x"}]}
    )
    assert _apply(yaml_config, facts=system)[0].status == "exempted"
    assert _apply(yaml_config, facts=web)[0].status == "open"


def test_stored_globs_cover_kind_namespace_name_and_container() -> None:
    assert _apply(ScanConfig(), stored=[_stored(kind="Deploy*", namespace="sh*")])[0].exemption
    assert not _apply(ScanConfig(), stored=[_stored(name="api")])[0].exemption
    assert _apply(ScanConfig(), stored=[_stored(container=["side", "a*"])])[0].exemption
    no_container = [_result(container=None)]
    assert not _apply(ScanConfig(), stored=[_stored(container="*")], results=no_container)[
        0
    ].exemption


def test_configured_before_annotation_before_stored_and_expired_last() -> None:
    configured = ScanConfig.from_dict(
        {
            "allow_annotation_exemptions": True,
            "exemptions": [{"rules": ["KM-101"], "reason": "cfg", "expires": "2026-01-01"}],
        }
    )
    annotated = {WEB.key: ObjectFacts.of({}, {"k8s-monitor.io/exempt": "KM-101"})}
    # The configured one expired: the annotation wins over the stored exemption.
    (result,) = _apply(configured, facts=annotated, stored=[_stored()])
    assert result.exemption is not None and result.exemption["source"] == "annotation"
    # No annotation: the stored exemption wins over the expired configured one.
    (result,) = _apply(configured, stored=[_stored()])
    assert result.exemption is not None and result.exemption["source"] == "database"
    # Nothing active: the finding stays open and carries the expired exemption.
    (result,) = _apply(configured)
    assert result.status == "open"
    assert result.exemption is not None and result.exemption["status"] == "expired"


def test_severity_overrides_and_controller_dedup() -> None:
    config = ScanConfig.from_dict({"severity": {"KM-101": "low"}})
    (result,) = _apply(config)
    assert result.severity is Severity.LOW and result.status == "open"
    assert _apply(config, suppressed=frozenset({WEB.key})) == []
    error = _result()._replace(status="error")
    assert _apply(config, results=[error], suppressed=frozenset({WEB.key})) == [error]


def test_the_usual_scans_short_way_gives_what_the_general_way_gives() -> None:
    """Without exemptions, severity overrides or object facts, `apply_config` only drops the
    suppressed objects' results and reopens an exempted one, as the general way does."""
    other = ResourceRef("v1", "Pod", "shop", "web-1")
    exempted = _result()._replace(
        status="exempted",
        exemption={
            "source": "annotation",
            "index": None,
            "reason": "r",
            "owner": "",
            "expires": None,
            "status": "active",
        },
    )
    error = _result(ref=other)._replace(status="error")
    results = [_result(), _result(ref=other), exempted, error]
    suppressed = frozenset({other.key})
    short = _apply(ScanConfig(), results=results, suppressed=suppressed)
    # an object fact that exempts nothing takes the general way
    facts = {"v1|Pod|shop|unrelated": ObjectFacts.of({"a": "b"}, {})}
    general = _apply(ScanConfig(), results=results, suppressed=suppressed, facts=facts)
    assert short == general == [_result(), _result(), error]


def test_reads_facts_only_for_a_label_selector_or_allowed_annotations() -> None:
    """`reads_facts` is False only when no exemption has a label selector and annotations
    are not honoured; then `apply_config` gives the same results without any facts."""
    labelled = {"labels": "tier=legacy"}
    assert not reads_facts(ScanConfig())
    assert not reads_facts(ScanConfig(), stored=[_stored(namespace="shop", name="web")])
    assert reads_facts(ScanConfig(), stored=[_stored(namespace="shop"), _stored(8, **labelled)])
    assert reads_facts(ScanConfig.from_dict({"allow_annotation_exemptions": True}))
    configured = ScanConfig.from_dict(
        {"exemptions": [{"rules": ["KM-101"], "labels": "tier=legacy", "reason": "r"}]}
    )
    assert reads_facts(configured)

    facts = {WEB.key: ObjectFacts.of({"tier": "legacy"}, {EXEMPT_ANNOTATION: "*"})}
    results = [_result(), _result("KM-102"), _result(container=None)]
    for config, stored in (
        (ScanConfig(), ()),
        (ScanConfig(), (_stored(namespace="shop"),)),
        (ScanConfig.from_dict({"severity": {"KM-101": "low"}}), (_stored(name="other"),)),
    ):
        assert not reads_facts(config, stored=stored)
        with_facts = _apply(config, facts=facts, stored=stored, results=results)
        assert _apply(config, stored=stored, results=results) == with_facts
    # where it says True, the facts do change the outcome
    for config, stored in (
        (ScanConfig(), (_stored(**labelled),)),
        (ScanConfig.from_dict({"allow_annotation_exemptions": True}), ()),
    ):
        assert reads_facts(config, stored=stored)
        exempted = _apply(config, facts=facts, stored=stored, results=results)
        assert [r.status for r in exempted][0::2] == ["exempted", "exempted"]  # both KM-101
        assert {r.status for r in _apply(config, stored=stored, results=results)} == {"open"}
