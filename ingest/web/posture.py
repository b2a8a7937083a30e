"""Posture scores of a cluster: overall and per framework (CIS section 5, PSS baseline and
restricted).

Definition (shown on the cluster page): a framework's score is the share of the cluster's
current objects that have no open finding (new or open; exempted findings count as accepted)
from any rule mapped to that framework, as a percentage rounded down. The overall score uses
every rule. Which rules map to a framework comes from the rule's CIS controls and Pod
Security Standards entries (the catalogue when wired in, else what the finding recorded):
CIS section 5 are controls `5.*`; PSS baseline are `baseline/*` entries; PSS restricted are
`baseline/*` and `restricted/*` entries (the restricted profile includes the baseline).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contracts.states import FindingStatus
from store.models import Finding, KubeObject

OPEN_STATUSES = FindingStatus.unresolved()
DEFINITION = (
    "Share of the cluster's current objects with no open finding from the framework's rules "
    "(exempted findings count as accepted), rounded down. CIS section 5: rules mapped to CIS "
    "Kubernetes Benchmark controls 5.x (policies); PSS baseline: rules mapped to Pod Security "
    "Standards baseline controls; PSS restricted: baseline and restricted controls."
)


@dataclass(frozen=True, slots=True)
class Framework:
    key: str
    name: str
    matches: Callable[[Sequence[str], Sequence[str]], bool]  # (cis, pss) -> in framework


FRAMEWORKS: tuple[Framework, ...] = (
    Framework("all", "All rules", lambda _cis, _pss: True),
    Framework("cis-5", "CIS section 5", lambda cis, _pss: any(c.startswith("5.") for c in cis)),
    Framework(
        "pss-baseline", "PSS baseline", lambda _cis, pss: any(p.startswith("baseline") for p in pss)
    ),
    Framework(
        "pss-restricted",
        "PSS restricted",
        lambda _cis, pss: any(p.startswith(("baseline", "restricted")) for p in pss),
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Score:
    key: str
    name: str
    score: int  # 0..100
    failing: int  # objects with an open finding of the framework
    objects: int
    rules: int  # rules of the framework with open findings here


def _mappings(
    session: Session,
    cluster_id: str,
    rule_ids: Iterable[str],
    rule_info: Callable[[str], Mapping[str, Any] | None] | None,
) -> dict[str, tuple[list[str], list[str]]]:
    """(cis, pss) of each rule: from the catalogue, else from one of its findings."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    missing = []
    for rule_id in rule_ids:
        info = rule_info(rule_id) if rule_info else None
        if info:
            found[rule_id] = (list(info.get("cis") or []), list(info.get("pss") or []))
        else:
            missing.append(rule_id)
    if missing:
        first = (
            select(func.min(Finding.id))
            .where(Finding.cluster_id == cluster_id, Finding.rule_id.in_(missing))
            .group_by(Finding.rule_id)
        )
        for rule_id, stored in session.execute(
            select(Finding.rule_id, Finding.details).where(Finding.id.in_(first))
        ):
            details = stored or {}
            found[rule_id] = (list(details.get("cis") or []), list(details.get("pss") or []))
    return found


def cluster_scores(
    session: Session,
    cluster_id: str,
    *,
    rule_info: Callable[[str], Mapping[str, Any] | None] | None = None,
) -> list[Score]:
    """The overall and per-framework posture scores of one cluster (see the module doc)."""
    objects = int(
        session.scalar(
            select(func.count())
            .select_from(KubeObject)
            .where(KubeObject.cluster_id == cluster_id, KubeObject.deleted_at.is_(None))
        )
        or 0
    )
    resource = Finding.kind + "|" + func.coalesce(Finding.namespace, "") + "|" + Finding.name
    per_rule = {
        rule_id: n
        for rule_id, n in session.execute(
            select(Finding.rule_id, func.count())
            .where(Finding.cluster_id == cluster_id, Finding.status.in_(OPEN_STATUSES))
            .group_by(Finding.rule_id)
        )
    }
    mappings = _mappings(session, cluster_id, per_rule, rule_info)
    members = {
        framework.key: [
            rule_id for rule_id in per_rule if framework.matches(*mappings.get(rule_id, ([], [])))
        ]
        for framework in FRAMEWORKS
    }
    failing = session.execute(
        select(
            *(
                func.count(func.distinct(resource)).filter(Finding.rule_id.in_(members[f.key]))
                for f in FRAMEWORKS
            )
        ).where(Finding.cluster_id == cluster_id, Finding.status.in_(OPEN_STATUSES))
    ).one()
    scores = []
    for framework, n_failing in zip(FRAMEWORKS, failing, strict=True):
        bad = min(int(n_failing or 0), objects)
        value = 100 if objects == 0 else (objects - bad) * 100 // objects
        scores.append(
            Score(
                key=framework.key,
                name=framework.name,
                score=value,
                failing=bad,
                objects=objects,
                rules=len(members[framework.key]),
            )
        )
    return scores
