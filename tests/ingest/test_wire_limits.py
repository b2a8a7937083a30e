"""The wire schema carries the storage limits (identifier lengths, 32-bit counts): values at a
limit are accepted, one past it is a 400 naming the field, and nothing is stored."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import func, select

from contracts.wire import (
    INT32_MAX,
    MAX_API_VERSION_LENGTH,
    MAX_KIND_LENGTH,
    MAX_NAME_LENGTH,
    MAX_NAMESPACE_LENGTH,
    MAX_UID_LENGTH,
    SNAPSHOT_JSON_SCHEMA,
    TELEMETRY_JSON_SCHEMA,
    TELEMETRY_SCHEMA_ID,
)
from ingest.body import validator_for
from store.models import Snapshot, TelemetryPing
from store.snapshots import apply_pending
from tests.ingest.conftest import Server
from tests.support.manifests import deployment, full_envelope


def _snapshot_with(field: tuple[str, ...], value: Any) -> dict[str, Any]:
    obj = deployment("web")
    target = obj
    for step in field[:-1]:
        target = target[step]
    target[field[-1]] = value
    return full_envelope([obj])


SNAPSHOT_FIELDS = [
    (("apiVersion",), MAX_API_VERSION_LENGTH, "$.objects[0].apiVersion"),
    (("kind",), MAX_KIND_LENGTH, "$.objects[0].kind"),
    (("metadata", "name"), MAX_NAME_LENGTH, "$.objects[0].metadata.name"),
    (("metadata", "namespace"), MAX_NAMESPACE_LENGTH, "$.objects[0].metadata.namespace"),
    (("metadata", "uid"), MAX_UID_LENGTH, "$.objects[0].metadata.uid"),
]


@pytest.mark.parametrize(("field", "limit", "where"), SNAPSHOT_FIELDS)
def test_snapshot_identifier_lengths(field: tuple[str, ...], limit: int, where: str) -> None:
    validator = validator_for(SNAPSHOT_JSON_SCHEMA)
    assert validator.is_valid(_snapshot_with(field, "a" * limit))
    errors = list(validator.iter_errors(_snapshot_with(field, "a" * (limit + 1))))
    assert [e.json_path for e in errors] == [where]


def test_removed_refs_and_telemetry_counts_are_bounded() -> None:
    snapshot = validator_for(SNAPSHOT_JSON_SCHEMA)
    delta = copy.deepcopy(full_envelope([]))
    delta.update(
        type="delta",
        base_digest="sha256:" + "0" * 64,
        removed=[
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "namespace": "n" * (MAX_NAMESPACE_LENGTH + 1),
                "name": "x",
            }
        ],
    )
    assert [e.json_path for e in snapshot.iter_errors(delta)] == ["$.removed[0].namespace"]
    telemetry = validator_for(TELEMETRY_JSON_SCHEMA)
    ping = {
        "schema": TELEMETRY_SCHEMA_ID,
        "agent_version": "1",
        "node_count": INT32_MAX,
        "object_counts": {"Pod": INT32_MAX},
    }
    assert telemetry.is_valid(ping)
    for field, value in (
        ("node_count", INT32_MAX + 1),
        ("namespace_count", INT32_MAX + 1),
        ("object_counts", {"Pod": INT32_MAX + 1}),
        ("collection_duration_s", 2e9),
        ("sent_at", "t" * 65),
    ):
        assert not telemetry.is_valid({**ping, field: value}), field


def test_oversized_pushes_are_refused_naming_the_field(server: Server) -> None:
    agent = server.register_cluster()
    too_long = _snapshot_with(("metadata", "name"), "a" * (MAX_NAME_LENGTH + 1))
    refused = agent.push("snapshots", too_long)
    assert refused.status_code == 400, refused.text
    assert refused.json()["reason"] == "schema_violation"
    assert refused.json()["field"] == "$.objects[0].metadata.name"
    big = agent.push(
        "telemetry",
        {"schema": TELEMETRY_SCHEMA_ID, "agent_version": "1", "node_count": INT32_MAX + 1},
    )
    assert big.status_code == 400 and big.json()["field"] == "$.node_count"
    # Each count fits, their stored total would not: the receiver's own check.
    total = agent.push(
        "telemetry",
        {
            "schema": TELEMETRY_SCHEMA_ID,
            "agent_version": "1",
            "object_counts": {"Pod": INT32_MAX, "Service": 1},
        },
    )
    assert total.status_code == 400 and total.json()["field"] == "$.object_counts"
    with server.sessions() as session:
        for model in (Snapshot, TelemetryPing):
            stored = session.scalar(
                select(func.count()).select_from(model).where(model.cluster_id == agent.cluster_id)
            )
            assert stored == 0, model.__name__
    # At the limit: accepted and stored (the columns hold it).
    at_limit = _snapshot_with(("metadata", "name"), "a" * MAX_NAME_LENGTH)
    assert agent.push("snapshots", at_limit).status_code == 202
    assert (
        agent.push(
            "telemetry",
            {
                "schema": TELEMETRY_SCHEMA_ID,
                "agent_version": "1",
                "node_count": INT32_MAX,
                "object_counts": {"Pod": INT32_MAX},
            },
        ).status_code
        == 202
    )
    with server.sessions() as session:
        apply_pending(session, agent.cluster_id)
        session.commit()
        ping = session.scalar(
            select(TelemetryPing).where(TelemetryPing.cluster_id == agent.cluster_id)
        )
        assert ping.node_count == INT32_MAX and ping.object_count == INT32_MAX
