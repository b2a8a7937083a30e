"""Where only the binaries are installed, the rig starts its own PostgreSQL (and cleans up)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.services import can_start_postgres
from tests.support.throwaway_postgres import ThrowawayPostgres


@pytest.mark.skipif(not can_start_postgres(), reason="no PostgreSQL binaries on this machine")
def test_throwaway_postgres_starts_serves_and_stops() -> None:
    base = Path(tempfile.mkdtemp(prefix="k8smon-pg-"))
    base.chmod(0o755)
    server = ThrowawayPostgres.start(base)
    try:
        engine = create_engine(server.url)
        with engine.connect() as connection:
            assert connection.execute(text("select 1")).scalar() == 1
        engine.dispose()
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    assert not (base / "pgdata" / "postmaster.pid").exists()
