"""`store.manifests.current_metadata`: the labels and one annotation of live objects, the same
as reading their current bodies (PostgreSQL reads them in the database; SQLite from bodies),
for several clusters at once, each object read in its own cluster."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from store.manifests import current_manifests, current_metadata
from store.snapshots import apply_pending, stage_snapshot
from tests.support.factories import make_cluster
from tests.support.manifests import config_map, deployment, full_envelope

NOTE = "k8s-monitor.io/exempt"


def _push(session: Session, objects: list[dict[str, Any]], cluster_id: str = "prod") -> None:
    stage_snapshot(session, cluster_id, envelope=full_envelope(objects))
    apply_pending(session, cluster_id)


def _from_bodies(session: Session, cluster_id: str = "prod") -> dict[str, tuple[Any, Any]]:
    """The definition: each live object's stored labels and annotation, read from its body."""
    found = {}
    for manifest in current_manifests(session, cluster_id=cluster_id):
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
    found = current_metadata(session, {"prod": wanted}, annotation=NOTE)["prod"]

    assert found == expected
    assert found["apps/v1|Deployment|default|legacy"] == (
        {"app": "legacy"},
        "KM-621: pinned on purpose",
    )
    assert found["apps/v1|Deployment|default|web"] == ({"team": "shop", "tier": "front"}, None)
    assert found["v1|ConfigMap|default|bare"] == (None, None)
    assert found["v1|ConfigMap|default|settings"] == (None, None)
    assert current_metadata(session, {"prod": []}, annotation=NOTE) == {}
    assert current_metadata(session, {}, annotation=NOTE) == {}


def test_current_metadata_reads_each_cluster_its_own_objects(any_db_session: Session) -> None:
    """The same ref keys in two clusters: each cluster's own labels and annotation, only for
    the keys asked of it (in one read, as the fleet evaluation asks for every cluster)."""
    session = any_db_session
    for cluster_id in ("prod", "stage", "dev"):
        make_cluster(session, cluster_id)
    web = deployment("web")
    web["metadata"]["labels"] = {"tier": "front"}
    legacy = deployment("legacy")
    legacy["metadata"]["annotations"] = {NOTE: "KM-621: pinned"}
    _push(session, [web, legacy, config_map("settings")], "prod")
    stage_web = deployment("web")
    stage_web["metadata"]["labels"] = {"tier": "canary"}
    _push(session, [stage_web, deployment("legacy")], "stage")
    _push(session, [deployment("web")], "dev")
    web_key, legacy_key = "apps/v1|Deployment|default|web", "apps/v1|Deployment|default|legacy"
    settings_key = "v1|ConfigMap|default|settings"

    found = current_metadata(
        session,
        {
            "prod": [web_key, legacy_key, settings_key],
            "stage": [web_key, legacy_key, settings_key],  # stage has no such ConfigMap
            "dev": [legacy_key],  # dev has no legacy Deployment; its web is not asked for
            "gone": [web_key],  # no such cluster
        },
        annotation=NOTE,
    )

    prod, stage = _from_bodies(session, "prod"), _from_bodies(session, "stage")
    assert found == {"prod": prod, "stage": {k: stage[k] for k in (web_key, legacy_key)}}
    assert found["prod"][web_key] == ({"tier": "front"}, None)
    assert found["prod"][legacy_key] == ({"app": "legacy"}, "KM-621: pinned")
    assert found["stage"][web_key] == ({"tier": "canary"}, None)
    assert found["stage"][legacy_key] == ({"app": "legacy"}, None)
