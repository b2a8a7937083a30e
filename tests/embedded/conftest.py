"""A real `k8smon serve` subprocess (embedded: SQLite, tasks in-process) with an admin key and
the `k8smon` CLI pointed at it, and the real agent process against an emulated cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from agent.signing import AgentKey, default_key_id
from settings import load_settings
from tests.fakes.kube_api import KubeApiEmulator
from tests.fakes.kube_objects import small_cluster
from tests.workers.celery_rig import free_port, wait_for

BIN = Path(sys.executable).parent
REPO_ROOT = Path(__file__).resolve().parents[2]


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without any k8s-monitor deployment settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("K8SMON_", "FLOWER_"))
        and k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@dataclass
class Served:
    """`k8smon serve` on a free port, its instance folder, and the CLI configured for it."""

    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path
    cli_config: Path
    tmp: Path

    def k8smon(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(BIN / "k8smon"), *args],
            env={**self.env, "K8SMON_CONFIG": str(self.cli_config)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"k8smon {' '.join(args)}: {done.stdout}{done.stderr}"
        return done

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def database_url(self) -> str:
        return load_settings(self.env).database_url

    def register(self, cluster_id: str) -> Path:
        """Register a cluster through the signed admin API; return its agent's key file."""
        key = AgentKey.generate()
        private = self.tmp / f"{cluster_id}-agent.key"
        private.write_text(key.private_key_pem, encoding="ascii")
        private.chmod(0o600)
        public = self.tmp / f"{cluster_id}-agent.pub"
        public.write_text(key.public_key_pem, encoding="ascii")
        done = self.k8smon("clusters", "register", cluster_id, "--public-key", str(public))
        assert default_key_id(cluster_id, key.public_key) in done.stdout + done.stderr
        return private


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    env = clean_environ(
        K8SMON_ENV="embedded",
        K8SMON_INSTANCE_PATH=str(tmp_path / "instance"),
        K8SMON_LOG_LEVEL="INFO",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "k8smon"), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    served = Served(url, env, process, log, tmp_path / "cli.toml", tmp_path)
    try:

        def healthy() -> bool:
            assert process.poll() is None, served.logs()
            try:
                return requests.get(f"{url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(healthy, timeout=60, what="k8smon serve to answer /healthz")
        admin = tmp_path / "admin"
        done = subprocess.run(
            [str(BIN / "k8smon"), "admin", "bootstrap", "--name", "tester", "--out", str(admin)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        served.cli_config.write_text(
            f'server = "{url}"\nkey = "{admin}.key"\nkey_id = "tester"\n', encoding="utf-8"
        )
        yield served
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture
def emulator() -> Iterator[KubeApiEmulator]:
    with KubeApiEmulator(small_cluster()) as api:
        yield api


def run_agent_once(
    served: Served, emulator: KubeApiEmulator, *, cluster_id: str, key_file: Path
) -> subprocess.CompletedProcess[str]:
    """The real agent process: collect the emulated cluster, push one snapshot, ping, exit."""
    kubeconfig = emulator.write_kubeconfig(served.tmp / "kubeconfig")
    env = clean_environ(
        K8SMON_AGENT_SERVER_URL=served.url,
        K8SMON_AGENT_CLUSTER_ID=cluster_id,
        K8SMON_AGENT_KEY_FILE=str(key_file),
        K8SMON_AGENT_GENERATE_KEY="false",
        K8SMON_AGENT_NAMESPACE="monitoring",
        K8SMON_AGENT_KUBECONFIG=str(kubeconfig),
        K8SMON_AGENT_MAX_BACKOFF="2",
    )
    return subprocess.run(
        [sys.executable, "-m", "agent", "once"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
