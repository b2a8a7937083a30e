"""`store.manifests.current_metadata`: the labels and one annotation of live objects, the same
as reading their current bodies (PostgreSQL reads them in the database; SQLite from bodies)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from store.manifests import current_manifests, current_metadata
from store.snapshots import apply_pending, stage_snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import config_map, deployment, full_envelope

NOTE = "k8s-monitor.io/exempt"


def _push(session: Session, objects: list[dict[str, Any]]) -> None:
    stage_snapshot(session, "prod", envelope=full_envelope(objects))
    apply_pending(session, "prod")


def _from_bodies(session: Session) -> dict[str, tuple[Any, Any]]:
    """The definition: each live object's stored labels and annotation, read from its body."""
    found = {}
    for manifest in current_manifests(session, cluster_id="prod"):
        meta = manifest.body.get("metadata") or {}
        notes = meta.get("annotations")
        found[manifest.ref.key] = (
            meta.get("labels"),
            notes.get(NOTE) if isinstance(notes, dict) else None,
        )
    return found


def test_current_metadata_reads_what_the_bodies_hold(any_db_session: Session) -> None:
    session = any_db_session
    make_cluster(session, "prod")
    exempted = deployment("legacy")
    exempted["metadata"]["annotations"] = {NOTE: "KM-621: pinned on purpose", "other": "x"}
    relabelled = deployment("web")
    relabelled["metadata"]["labels"] = {"team": "shop", "tier": "front"}
    other_notes = config_map("settings")
    other_notes["metadata"]["annotations"] = {"owner": "team-a"}
    gone = deployment("gone")
    _push(session, [exempted, relabelled, other_notes, config_map("bare"), gone])
    _push(session, [exempted, relabelled, other_notes, config_map("bare")])  # `gone` deleted

    expected = _from_bodies(session)
    wanted = [*expected, "apps/v1|Deployment|default|gone", "v1|ConfigMap|default|absent"]
    found = current_metadata(session, "prod", wanted, annotation=NOTE)

    assert found == expected
    assert found["apps/v1|Deployment|default|legacy"] == (
        {"app": "legacy"},
        "KM-621: pinned on purpose",
    )
    assert found["apps/v1|Deployment|default|web"] == ({"team": "shop", "tier": "front"}, None)
    assert found["v1|ConfigMap|default|bare"] == (None, None)
    assert found["v1|ConfigMap|default|settings"] == (None, None)
    assert current_metadata(session, "prod", [], annotation=NOTE) == {}
