"""Issue 13 point 11: admin keys are listed and revoked with the CLI and the admin API, and a
revoked key's very next request is refused."""

from __future__ import annotations

import json

from sqlalchemy import select

from store import admin_keys
from store.models import AdminKey, AuditEntry
from tests.cli.conftest import Operator


def test_list_and_revoke_admin_keys_with_the_cli(operator: Operator) -> None:
    listed = operator.run("keys", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    keys = {k["key_id"]: k for k in json.loads(listed.stdout)}
    assert {"alice", "victor"} <= set(keys)
    assert keys["victor"]["role"] == "viewer" and keys["victor"]["revoked_at"] is None
    assert keys["alice"]["fingerprint"].startswith("SHA256:")

    # victor's key works, is revoked, and its next request is refused at once.
    assert operator.run("clusters", "list", config=operator.viewer_config).exit_code == 0
    revoked = operator.run("keys", "revoke", "victor", "--format", "json")
    assert revoked.exit_code == 0, revoked.output
    assert json.loads(revoked.stdout)["revoked_at"]
    refused = operator.run("clusters", "list", config=operator.viewer_config)
    assert refused.exit_code == 4
    assert refused.stderr == "error: 401 unauthorised (revoked_key)\n"

    active = json.loads(operator.run("keys", "list", "--format", "json").stdout)
    assert "victor" not in {k["key_id"] for k in active}
    everything = json.loads(operator.run("keys", "list", "--all", "--format", "json").stdout)
    assert "victor" in {k["key_id"] for k in everything}
    with operator.fleet.sessions() as session:
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.target == "admin-key/victor")
        ).all()
    assert actions == ["admin_keys.revoke"]


def test_the_last_admin_key_is_not_revoked_and_viewers_may_not(operator: Operator) -> None:
    # The package's database is shared by the tests of one xdist worker, and live-server tests
    # (tests/security/test_bad_input.py's `server.admin()`) commit admin keys for real: whatever
    # ran before, this test makes alice the only active admin key in its own (rolled back)
    # transaction. It always starts with another active admin key, so that path is always taken.
    with operator.fleet.sessions() as session:
        admin_keys.create_admin_key(
            session, "leftover", role="admin", key_id="leftover", public_key=b"\x01" * 32
        )
        for key in admin_keys.list_admin_keys(session):
            if key.role == "admin" and key.key_id != "alice":
                admin_keys.revoke_admin_key(session, key.key_id)
        session.commit()
        active = [
            k.key_id
            for k in admin_keys.list_admin_keys(session)
            if k.revoked_at is None and k.role == "admin"
        ]
    assert active == ["alice"]
    last = operator.run("keys", "revoke", "alice")
    assert last.exit_code != 0
    assert "409" in last.stderr and "conflict" in last.stderr
    viewer = operator.run("keys", "list", config=operator.viewer_config)
    assert viewer.exit_code == 4 and "forbidden_role" in viewer.stderr
    unknown = operator.run("keys", "revoke", "nobody")
    assert unknown.exit_code != 0 and "404" in unknown.stderr
    with operator.fleet.sessions() as session:
        assert session.scalar(select(AdminKey).where(AdminKey.key_id == "alice")).revoked_at is None
    assert operator.run("keys", "list").exit_code == 0
