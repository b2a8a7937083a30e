"""`make demo` on a bare machine; `k8smon serve` (`make run`) stays up on the embedded default."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.workers.celery_rig import free_port, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
# Point the usual variables at nothing: the demo must not need PostgreSQL or Redis.
BARE = {
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}


@pytest.mark.slow
def test_make_demo_pushes_scans_and_reports(tmp_path: Path) -> None:
    make = shutil.which("make")
    assert make, "make is needed for the demo"
    env = {**os.environ, **BARE, "TMPDIR": str(tmp_path)}
    # `-o` treats the venv stamp as up to date: the suite already runs inside the built venv.
    done = subprocess.run(
        [make, "-s", "-o", ".venv/.installed", "demo"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Cluster Demo shop cluster (demo)" in out
    assert re.search(r"scan #1: \d+ open findings \(\d+ new", out)
    assert re.search(r"\[CRITICAL\] KM-101 Privileged container\s+CIS 5\.2\.2", out)
    assert "Deployment shop/storefront [container web]" in out
    assert "ClusterRoleBinding node-exporter-admin" in out
    html = Path(re.search(r"HTML report: (\S+)", out).group(1))
    assert html.is_file() and html.is_relative_to(tmp_path)
    assert "KM-101" in html.read_text(encoding="utf-8")


@pytest.mark.slow
def test_serve_stays_up_on_the_embedded_default(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"K8SMON_INSTANCE_PATH": str(tmp_path), "K8SMON_ENV": "embedded"})
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("k8smon")), "serve", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(ready, timeout=60, what="k8smon serve to answer /healthz")
        assert process.poll() is None
        assert (tmp_path / "k8s-monitor.sqlite3").exists()
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert "listening on" in output and "tasks in-process" in output
    assert process.returncode == 0
