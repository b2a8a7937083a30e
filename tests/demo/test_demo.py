"""`make demo` on a bare machine; `k8smon serve` (`make run`) stays up on the embedded default."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import requests

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
    # `-o` treats the venv stamps as up to date: the suite already runs inside the built venv
    # (and must not rebuild the compiled engine under the tests running beside it).
    # --keep: the demo's folder (and its HTML report) stays only when asked.
    done = subprocess.run(
        [make, "-s", "-o", ".venv/.installed", "-o", ".venv/.built", "demo", "DEMO_ARGS=--keep"],
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
    assert f"Admin pages: http://127.0.0.1:{port}/admin/" in output
    assert "k8smon users add NAME --role admin" in output
    assert process.returncode == 0


@pytest.mark.slow
def test_make_demo_removes_its_folder_unless_asked(tmp_path: Path) -> None:
    make = shutil.which("make")
    assert make
    env = {**os.environ, **BARE, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [make, "-s", "-o", ".venv/.installed", "-o", ".venv/.built", "demo"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(r"scan #1: \d+ open findings \(\d+ new", done.stdout)
    assert "make demo DEMO_ARGS=--serve" in done.stdout
    assert not list(tmp_path.glob("k8smon-demo-*")), "the demo left its temporary folder"


def _browse(url: str, password: str) -> str:
    """Sign in to the admin pages as the demo account; return the demo cluster's page."""
    session = requests.Session()
    login = session.get(f"{url}/admin/login", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
    signed_in = session.post(
        f"{url}/admin/login",
        data={"username": "demo", "password": password, "csrf_token": token},
        timeout=30,
    )
    assert signed_in.status_code == 200 and "Sign in" not in signed_in.text[:2000]
    page = session.get(f"{url}/admin/clusters/demo", timeout=10)
    assert page.status_code == 200
    return page.text


@pytest.mark.slow
def test_the_kept_demo_is_served_by_the_printed_command(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, **BARE, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "cli.demo", "--keep", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    command = re.search(r"Serve it again with:\n  (.+)\n", done.stdout).group(1)
    url, password = re.search(
        r"then open (http://\S+)/admin/ and sign in as demo / (\S+)", done.stdout
    ).groups()
    assert url == f"http://127.0.0.1:{port}"
    # Run the printed command as a user would paste it (the shell still has BARE's variables).
    served = subprocess.Popen(
        ["/bin/sh", "-c", command],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: _answers(f"{url}/healthz"), timeout=60, what="the printed command")
        root = requests.get(url + "/", timeout=5, allow_redirects=False)
        assert root.status_code == 302 and root.headers["Location"].endswith("/admin/")
        page = _browse(url, password)
        assert "KM-101" in page
        _same_count_words(done.stdout, url=url, tmp_path=tmp_path, env=env)
    finally:
        os.killpg(served.pid, signal.SIGTERM)
        _communicate_or_kill(served, timeout=30)


def _same_count_words(demo_output: str, *, url: str, tmp_path: Path, env: dict) -> None:
    """The demo's text, its HTML report and `k8smon scans` say the same counts the same way."""
    phrase = re.search(r"scan #1: (.+?) over \d+ objects", demo_output).group(1)
    total, new, resolved = map(
        int,
        re.fullmatch(
            r"(\d+) open findings \((\d+) new, (\d+) resolved, \d+ exempted\)", phrase
        ).groups(),
    )
    assert total == new > 0 and resolved == 0  # a first scan: everything open is new
    html = Path(re.search(r"HTML report: (\S+)", demo_output).group(1))
    assert phrase in html.read_text(encoding="utf-8")
    instance = re.search(r"Kept the demo's folder (\S+)\. ", demo_output).group(1)
    k8smon = str(Path(sys.executable).with_name("k8smon"))
    admin_env = {k: v for k, v in env.items() if k not in BARE}
    admin_env.update({"K8SMON_ENV": "embedded", "K8SMON_INSTANCE_PATH": instance})
    subprocess.run(
        [k8smon, "admin", "bootstrap", "--name", "counter", "--out", str(tmp_path / "admin")],
        env=admin_env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    scans = subprocess.run(
        [k8smon, "scans", "--cluster", "demo", "--format", "csv"],
        env={
            **admin_env,
            "K8SMON_SERVER": url,
            "K8SMON_ADMIN_KEY": str(tmp_path / "admin.key"),
            "K8SMON_ADMIN_KEY_ID": "counter",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert scans.returncode == 0, scans.stderr
    (row,) = csv.DictReader(io.StringIO(scans.stdout))
    assert (int(row["open"]), int(row["new"]), int(row["resolved"])) == (total, new, resolved)


@pytest.mark.slow
def test_demo_serve_keeps_serving_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, **BARE, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "cli.demo", "--serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if "Ctrl-C stops it" in line:
                break
        text = "".join(lines)
        url, password = re.search(
            r"Serving the demo at (http://\S+)/admin/ - sign in as demo / (\S+)", text
        ).groups()
        assert url == f"http://127.0.0.1:{port}"
        assert "KM-101" in _browse(url, password)
    finally:
        demo.send_signal(signal.SIGINT)
        demo.communicate(timeout=30)
    assert demo.returncode == 0
    assert not list(tmp_path.glob("k8smon-demo-*")), "the demo left its temporary folder"


@pytest.mark.slow
def test_make_run_serves_on_the_given_port(tmp_path: Path) -> None:
    make = shutil.which("make")
    assert make
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"K8SMON_INSTANCE_PATH": str(tmp_path), "K8SMON_ENV": "embedded"})
    run = subprocess.Popen(
        [make, "-s", "-o", ".venv/.installed", "-o", ".venv/.built", "run", f"PORT={port}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=60, what="run")
        root = requests.get(f"http://127.0.0.1:{port}/", timeout=5, allow_redirects=False)
        assert root.status_code == 302
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        output = _communicate_or_kill(run, timeout=60).decode()
    assert f"listening on http://127.0.0.1:{port}" in output


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _communicate_or_kill(process: subprocess.Popen[bytes], *, timeout: float) -> bytes:
    """Wait for a process group told to stop; never leave it running if it does not."""
    try:
        return process.communicate(timeout=timeout)[0] or b""
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)
        raise
