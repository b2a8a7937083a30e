"""Start (and stop, and start again) a throwaway PostgreSQL server from the local binaries,
as the postgres user when root."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.services import port_open


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise FileNotFoundError(name)
    return candidates[-1]


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ThrowawayPostgres:
    data_dir: Path
    port: int
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = list(args)
        if self.run_as:
            command = ["runuser", "-u", self.run_as, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    @classmethod
    def start(cls, base_dir: Path) -> ThrowawayPostgres:
        """initdb + pg_ctl start on a free port; PostgreSQL refuses to run as root, so switch."""
        run_as = None
        if os.geteuid() == 0:
            run_as = "postgres"
            pwd.getpwnam(run_as)  # KeyError when there is no such user
        data_dir = base_dir / "pgdata"
        data_dir.mkdir(parents=True)
        if run_as:
            entry = pwd.getpwnam(run_as)
            for path in (base_dir, data_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        server = cls(data_dir=data_dir, port=_free_port(), run_as=run_as)
        server._run(
            _bin("initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "--no-sync"
        )
        server.start_again()
        return server

    def start_again(self) -> None:
        """`pg_ctl start` on this data folder and port (first start, or after `stop`)."""
        self._run(
            _bin("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-w",
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )
        if not port_open("127.0.0.1", self.port):
            raise RuntimeError("throwaway PostgreSQL did not start")

    def stop(self, *, mode: str = "fast") -> None:
        """`pg_ctl stop`: `fast` ends the sessions cleanly, `immediate` as a crash would."""
        self._run(_bin("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")
