"""`k8smon clusters` against a live server: register, list, show, keys, disable; errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from store.models import AuditEntry, Cluster, ClusterKey
from tests.cli.conftest import Operator


def test_register_list_show(operator: Operator, agent_public_key: Callable[[str], Path]) -> None:
    key = agent_public_key("edge")
    # The seeded fleet (prod-eu, staging-us), plus whatever other test modules committed to
    # the session's database before this test ran.
    with operator.fleet.sessions() as session:
        before = set(session.scalars(select(Cluster.id)))
    assert {"prod-eu", "staging-us"} <= before
    result = operator.run(
        "clusters",
        "register",
        "edge-1",
        "--public-key",
        str(key),
        "--team",
        "edge",
        "--channel",
        "#edge",
        "--label",
        "env=prod",
        "--label",
        "region=eu",
    )
    assert result.exit_code == 0, result.output
    assert "cluster edge-1 registered" in result.output
    listed = operator.run("clusters", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    rows = {c["id"]: c for c in json.loads(listed.stdout)}
    assert set(rows) == before | {"edge-1"}
    assert rows["edge-1"]["labels"] == {"env": "prod", "region": "eu"}
    assert rows["edge-1"]["active_keys"] == 1
    shown = operator.run("clusters", "show", "edge-1")
    assert shown.exit_code == 0
    assert "edge-1" in shown.stdout and "SHA256:" in shown.stdout
    table = operator.run("clusters", "list")
    assert "Clusters" in table.stdout and "staging-us" in table.stdout
    csv_out = operator.run("clusters", "list", "--format", "csv").stdout.splitlines()
    assert csv_out[0] == "id,status,team,channel,labels,active_keys,last_telemetry_at"
    assert len(csv_out) == len(before) + 2
    with operator.fleet.sessions() as session:
        entry = session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "clusters.register", AuditEntry.target == "edge-1"
            )
        )
        assert entry.actor == "alice"


def test_key_rotation_and_disable(
    operator: Operator, agent_public_key: Callable[[str], Path]
) -> None:
    operator.run(
        "clusters",
        "register",
        "edge-2",
        "--public-key",
        str(agent_public_key("a")),
        "--key-id",
        "edge-2-a",
    )
    added = operator.run(
        "clusters",
        "add-key",
        "edge-2",
        "--public-key",
        str(agent_public_key("b")),
        "--key-id",
        "edge-2-b",
        "--format",
        "json",
    )
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["key_id"] == "edge-2-b"
    third = operator.run(
        "clusters", "add-key", "edge-2", "--public-key", str(agent_public_key("c"))
    )
    assert third.exit_code == 6
    assert third.stderr.startswith("error: 409 conflict (conflict)")
    revoked = operator.run("clusters", "revoke-key", "edge-2", "edge-2-a", "--format", "json")
    assert revoked.exit_code == 0 and json.loads(revoked.stdout)["revoked_at"]
    with operator.fleet.sessions() as session:
        key = session.scalar(select(ClusterKey).where(ClusterKey.key_id == "edge-2-a"))
        assert key.revoked_at is not None
    disabled = operator.run("clusters", "disable", "edge-2", "--format", "json")
    assert json.loads(disabled.stdout)["status"] == "disabled"
    missing = operator.run("clusters", "revoke-key", "edge-2", "nope")
    assert missing.exit_code == 5 and "not found" in missing.stderr


def test_errors_are_one_line_with_reliable_exit_codes(
    operator: Operator, agent_public_key: Callable[[str], Path], tmp_path: Path
) -> None:
    unknown = operator.run("clusters", "show", "nope")
    assert unknown.exit_code == 5
    assert unknown.stderr == "error: 404 not found (not_found): no cluster 'nope'\n"
    bad_id = operator.run(
        "clusters", "register", "Not_A_Name", "--public-key", str(agent_public_key("x"))
    )
    assert bad_id.exit_code == 6
    assert "schema_violation" in bad_id.stderr and "$.id" in bad_id.stderr
    assert len(bad_id.stderr.strip().splitlines()) == 1
    viewer = operator.run("clusters", "disable", "prod-eu", config=operator.viewer_config)
    assert viewer.exit_code == 4 and "forbidden_role" in viewer.stderr
    # A key the server does not know: 401, told apart from a bad signature only in its logs.
    stranger = tmp_path / "stranger.toml"
    stranger.write_text(
        operator.config.read_text().replace('key_id = "alice"', 'key_id = "mallory"')
    )
    refused = operator.run("clusters", "list", config=stranger)
    assert refused.exit_code == 4
    assert refused.stderr == "error: 401 unauthorised (bad_signature)\n"
    # Nobody listening.
    down = tmp_path / "down.toml"
    down.write_text(operator.config.read_text().replace(operator.url, "http://127.0.0.1:9"))
    unreachable = operator.run("clusters", "list", config=down)
    assert unreachable.exit_code == 3
    assert unreachable.stderr.startswith("error: cannot reach the server at 127.0.0.1:9")
    bad_label = operator.run(
        "clusters",
        "register",
        "x",
        "--public-key",
        str(agent_public_key("y")),
        "--label",
        "novalue",
    )
    assert bad_label.exit_code == 2 and "--label" in bad_label.stderr
    bad_key = tmp_path / "bad.pub"
    bad_key.write_text("not a key")
    refused_key = operator.run("clusters", "register", "x", "--public-key", str(bad_key))
    assert refused_key.exit_code == 2 and "--public-key" in refused_key.stderr


def test_configuration_from_flags_and_environment(operator: Operator, tmp_path: Path) -> None:
    missing = operator.run("clusters", "list", config=tmp_path / "absent.toml")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    unset = operator.run("clusters", "list", config=empty)
    assert unset.exit_code == 2
    assert "server is not set: pass --server, set K8SMON_SERVER" in unset.stderr
    key_line = next(
        line for line in operator.config.read_text().splitlines() if line.startswith("key =")
    )
    key_path = key_line.split('"')[1]
    flags = operator.run(
        "clusters",
        "list",
        "--server",
        operator.url,
        "--admin-key",
        key_path,
        "--admin-key-id",
        "alice",
        "--format",
        "json",
        config=empty,
    )
    assert flags.exit_code == 0, flags.output
    assert len(json.loads(flags.stdout)) == 2
