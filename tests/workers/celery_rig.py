"""Real Celery workers and Flower as subprocesses on the suite's Redis DB and PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from settings import load_settings
from workers.celery_app import BrokerOptions, K8sMonCelery, create_celery

REPO_ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class CeleryRig:
    """One isolated broker namespace: its own queue and key prefix on the test Redis DB."""

    env: dict[str, str]
    log_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def create(cls, *, database_url: str, redis_url: str, tmp: Path, **extra: str) -> CeleryRig:
        token = uuid.uuid4().hex[:10]
        env = {
            **os.environ,
            "K8SMON_ENV": "embedded",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "K8SMON_INSTANCE_PATH": str(tmp / "instance"),
            "K8SMON_TASK_QUEUE": f"k8smon-test-{token}",
            "K8SMON_REDIS_KEY_PREFIX": f"k8smon-test:{token}:",
            "FLOWER_UNAUTHENTICATED_API": "true",
            "PYTHONPATH": str(REPO_ROOT),
            **extra,
        }
        log_dir = tmp / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        return cls(env=env, log_dir=log_dir)

    def client(self) -> K8sMonCelery:
        """A producer app with the same broker namespace as the subprocesses."""
        settings = load_settings(self.env)
        return create_celery(settings, BrokerOptions.from_env(self.env))

    def log_file(self, process: subprocess.Popen[bytes]) -> Path:
        """Where a process this rig started writes its output (`<name>-<index>.log`)."""
        return next(self.log_dir.glob(f"*-{self.processes.index(process)}.log"))

    def spawn(
        self, name: str, argv: list[str], *, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `argv` in a session of its own, with the rig's environment (or `env`),
        logging to `<name>-<index>.log` in the log folder."""
        with (self.log_dir / f"{name}-{len(self.processes)}.log").open("wb") as log:
            # The child keeps its own copy of the descriptor; ours is closed at once.
            process = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=dict(self.env if env is None else env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def start_worker(
        self,
        *,
        concurrency: int = 1,
        queues: Sequence[str] | None = None,
        lanes: Sequence[str] = (),
        name: str = "worker",
    ) -> subprocess.Popen[bytes]:
        """A `celery worker` as the Procfile runs it; `queues=None`: the queues the app
        declares (without `-Q`: every queue of the task table), else only those; `lanes`:
        only those task table queues (`--lane snapshots`, the Procfile's snapshots line)."""
        only = ["-Q", ",".join(queues)] if queues is not None else []
        only += [arg for lane in lanes for arg in ("--lane", lane)]
        return self.spawn(
            name,
            [
                CELERY,
                "-A",
                "workers.celery_app:app",
                "worker",
                *only,
                "-c",
                str(concurrency),
                "-E",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"w{uuid.uuid4().hex[:6]}@%h",
                "--loglevel",
                "INFO",
            ],
        )

    def start_beat(self, schedule_file: Path) -> subprocess.Popen[bytes]:
        """A `celery beat` as the Procfile runs it, with its own schedule file (as on its own
        host or pod)."""
        return self.spawn(
            "beat",
            [
                CELERY,
                "-A",
                "workers.celery_app:app",
                "beat",
                "--schedule",
                str(schedule_file),
                "--loglevel",
                "INFO",
            ],
        )

    def start_flower(self, port: int) -> subprocess.Popen[bytes]:
        process = self.spawn(
            "flower",
            [
                CELERY,
                "-A",
                "workers.celery_app:app",
                "flower",
                f"--port={port}",
                "--address=127.0.0.1",
            ],
        )
        wait_for(lambda: _port_open(port), timeout=30, what="flower to listen")
        return process

    @staticmethod
    def kill(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        """Signal the process group this rig started (the worker and its pool children)."""
        if process.poll() is None:
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                self.kill(process, signal.SIGTERM)

    def logs(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-4000:] for p in sorted(self.log_dir.glob("*.log"))
        )

    def cleanup_redis(self) -> None:
        client = redis.Redis.from_url(self.env["REDIS_URL"])
        prefix = self.env["K8SMON_REDIS_KEY_PREFIX"]
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        queue = self.env["K8SMON_TASK_QUEUE"]
        keys += list(client.scan_iter(match=f"*{queue}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


@contextmanager
def running(rig: CeleryRig) -> Iterator[CeleryRig]:
    try:
        yield rig
    finally:
        rig.stop_all()
        rig.cleanup_redis()
