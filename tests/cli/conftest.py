"""The admin CLI against a real server: the ingest app (werkzeug, in a thread) on the test
PostgreSQL, with admin keys registered, driven through click's CliRunner."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.orm import Session

from agent.signing import AgentKey
from cli.main import main
from settings import Settings
from store.admin_keys import create_admin_key
from tests.web.fleet import Fleet, build_fleet, live_server


@dataclass
class Operator:
    fleet: Fleet
    url: str
    config: Path
    viewer_config: Path
    tmp: Path

    def run(self, *args: str, config: Path | None = None, input: str | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            main,
            list(args),
            input=input,
            env={
                "K8SMON_CONFIG": str(config or self.config),
                "K8SMON_SERVER": None,
                "K8SMON_ADMIN_KEY": None,
                "K8SMON_ADMIN_KEY_ID": None,
            },
        )


def _write_key(folder: Path, name: str) -> tuple[AgentKey, Path]:
    key = AgentKey.generate()
    path = folder / f"{name}.key"
    path.write_text(key.private_key_pem, encoding="ascii")
    path.chmod(0o600)
    return key, path


def _config(folder: Path, name: str, *, server: str, key: Path, key_id: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'server = "{server}"\nkey = "{key}"\nkey_id = "{key_id}"\n', encoding="utf-8")
    return path


@pytest.fixture
def operator(db_session: Session, test_settings: Settings, tmp_path: Path) -> Iterator[Operator]:
    fleet = build_fleet(db_session, test_settings)
    admin_key, admin_path = _write_key(tmp_path, "alice")
    viewer_key, viewer_path = _write_key(tmp_path, "victor")
    with fleet.sessions() as session:
        create_admin_key(
            session, "alice", role="admin", key_id="alice", public_key=admin_key.public_key
        )
        create_admin_key(
            session, "victor", role="viewer", key_id="victor", public_key=viewer_key.public_key
        )
        session.commit()
    with live_server(fleet.app) as url:
        yield Operator(
            fleet=fleet,
            url=url,
            tmp=tmp_path,
            config=_config(tmp_path, "admin", server=url, key=admin_path, key_id="alice"),
            viewer_config=_config(tmp_path, "viewer", server=url, key=viewer_path, key_id="victor"),
        )


@pytest.fixture
def hostile(operator: Operator) -> Operator:
    """The operator's fleet, with names and telemetry an attacker chose (tests/cli/hostile.py)."""
    from tests.cli.hostile import push_hostile  # noqa: PLC0415 - only where it is used

    return push_hostile(operator)


@pytest.fixture
def agent_public_key(tmp_path: Path) -> Callable[[str], Path]:
    def make(name: str) -> Path:
        key = AgentKey.generate()
        path = tmp_path / f"{name}.pub"
        path.write_text(key.public_key_pem, encoding="ascii")
        return path

    return make
