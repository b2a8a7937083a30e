"""Local accounts: scrypt hashes, roles, disabled accounts, and `k8smon users add`."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from cli.main import main
from settings import Settings
from store import accounts
from store.models import AdminUser, AuditEntry


def test_hash_is_salted_scrypt_and_verifies() -> None:
    first = accounts.hash_password("a long enough password")
    second = accounts.hash_password("a long enough password")
    assert first.startswith("scrypt$32768$8$1$") and first != second
    assert accounts.check_password(first, "a long enough password")
    assert not accounts.check_password(first, "a long enough passwore")
    assert not accounts.check_password("md5$abc", "x")


def test_accounts_authenticate_and_disable(db_session: Session) -> None:
    accounts.create_account(db_session, "erin", password="twelve chars!", role="viewer")
    assert accounts.authenticate(db_session, "erin", "twelve chars!") == accounts.Account(
        "erin", "viewer"
    )
    assert accounts.authenticate(db_session, "erin", "wrong") is None
    assert accounts.authenticate(db_session, "nobody", "twelve chars!") is None
    stored = db_session.scalar(select(AdminUser).where(AdminUser.username == "erin"))
    assert "twelve" not in stored.password_hash
    accounts.set_disabled(db_session, "erin", disabled=True)
    assert accounts.authenticate(db_session, "erin", "twelve chars!") is None
    with pytest.raises(accounts.AccountExists):
        accounts.create_account(db_session, "erin", password="twelve chars!", role="viewer")
    with pytest.raises(ValueError, match="at least 12"):
        accounts.create_account(db_session, "short", password="short", role="viewer")
    with pytest.raises(ValueError, match="role"):
        accounts.create_account(db_session, "r", password="twelve chars!", role="root")


def test_users_add_command_creates_an_account(
    test_settings: Settings, pg_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", test_settings.database_url)
    monkeypatch.setenv("K8SMON_INSTANCE_PATH", str(test_settings.instance_path))
    runner = CliRunner()
    try:
        result = runner.invoke(
            main,
            ["users", "add", "cli-admin", "--role", "admin", "--password-stdin"],
            input="a password from stdin\n",
        )
        assert result.exit_code == 0, result.output
        assert "account cli-admin created (admin)" in result.output
        again = runner.invoke(
            main, ["users", "add", "cli-admin", "--password-stdin"], input="a password from stdin\n"
        )
        assert again.exit_code == 1 and "already exists" in again.output
        weak = runner.invoke(main, ["users", "add", "weak", "--password-stdin"], input="x\n")
        assert weak.exit_code == 1 and "at least 12" in weak.output
        with Session(pg_engine) as session:
            assert accounts.authenticate(session, "cli-admin", "a password from stdin")
            assert session.scalar(
                select(AuditEntry).where(
                    AuditEntry.action == "account.create", AuditEntry.target == "cli-admin"
                )
            )
    finally:
        with Session(pg_engine) as session:
            session.execute(AdminUser.__table__.delete().where(AdminUser.username == "cli-admin"))
            session.execute(AuditEntry.__table__.delete().where(AuditEntry.target == "cli-admin"))
            session.commit()
