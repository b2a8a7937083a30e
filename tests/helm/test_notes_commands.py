"""The server chart's NOTES, run as written (issue 15 point 6): the chart is rendered, the
migration Job's command and the web Deployment's gunicorn command run with the environment
the kubelet would give them (from a Secret of test credentials), and the shell commands of
NOTES steps 2 and 3 run unchanged in bash from an operator's "workstation" folder. Only the
placeholders the NOTES name are filled in (YOUR_NAME, CLUSTER_NAME, the public URL -> the local
server), and `kubectl exec deploy/<web> -- CMD` is served by a stand-in that runs CMD with the
web container's environment after checking the namespace and Deployment exist in the render.
Step 1 (`rollout status`, `helm test`) needs a cluster and is not run here."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from store.db import make_engine, make_session_factory
from store.models import AdminKey, AuditEntry, Cluster, ClusterKey
from tests.helm.charts import (
    NAMESPACE,
    RELEASE,
    REPO_ROOT,
    SERVER,
    chart_dir,
    load_values,
    pod_spec,
    render,
)
from tests.helm.test_server_values import pod_environment
from tests.support.services import ThrowawayDatabase

FULLNAME = f"{RELEASE}-{SERVER}"
VALUES = load_values(chart_dir(SERVER) / "ci" / "default-values.yaml")
PUBLIC_URL = VALUES["config"]["publicUrl"]
BIN = Path(sys.executable).parent

KUBECTL = '''#!{python}
"""Stand-in for `kubectl -n NS exec [-i] deploy/NAME -- CMD...` against the rendered chart."""
import json, os, sys
state = json.load(open({state!r}))
args = sys.argv[1:]
if args[:1] != ["-n"] or args[1] != state["namespace"]:
    sys.exit(f"kubectl stand-in: wrong or missing namespace in {{args}}")
rest = args[2:]
if rest[:1] != ["exec"] or "--" not in rest:
    sys.exit(f"kubectl stand-in: only `exec ... -- CMD` is served, got {{args}}")
target = [a for a in rest[1:rest.index("--")] if a != "-i"]
if target != ["deploy/" + state["deployment"]]:
    sys.exit(f"kubectl stand-in: no such Deployment {{target}}")
os.chdir(state["pod_dir"])
command = rest[rest.index("--") + 1:]
os.execvpe(command[0], command, state["env"])
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _steps(notes: str) -> list[str]:
    """The command lines of NOTES steps 2 and 3 (indented five spaces), in order."""
    start = notes.index("\n2. ")
    end = notes.index("The server URL agents push to")
    return [line.strip() for line in notes[start:end].splitlines() if line.startswith("     ")]


@pytest.fixture
def database(postgres_server_url: str) -> Iterator[ThrowawayDatabase]:
    created = ThrowawayDatabase.create(postgres_server_url)
    yield created
    created.drop()


def _container(rendered: Any, kind: str, name: str) -> dict[str, Any]:
    (container,) = pod_spec(rendered.named(kind, name))["containers"]
    return container


@pytest.mark.slow
def test_notes_commands_work_as_written(
    database: ThrowawayDatabase, redis_url: str, redis_key_prefix: str, tmp_path: Path
) -> None:
    rendered = render(SERVER, VALUES)
    secret = {"DATABASE_URL": database.url, "REDIS_URL": redis_url, "SECRET_KEY": "s" * 48}
    pod_dir, workstation = tmp_path / "pod", tmp_path / "workstation"
    pod_dir.mkdir()
    workstation.mkdir()
    rules = tmp_path / "rules.yaml"
    config_map = rendered.named("ConfigMap", f"{FULLNAME}-rules")
    rules.write_text(config_map["data"]["config.yaml"], encoding="utf-8")
    overrides = {
        "K8SMON_INSTANCE_PATH": str(pod_dir / "instance"),
        "K8SMON_RULES_CONFIG": str(rules),
        "K8SMON_REDIS_KEY_PREFIX": redis_key_prefix,
        "K8SMON_TASK_QUEUE": f"notes-{uuid.uuid4().hex[:6]}",
        "PYTHONPATH": str(REPO_ROOT),
        "PATH": f"{BIN}:/usr/bin:/bin",
    }

    # The pre-install hook: the migration Job's command, with the Job's environment.
    migrate = _container(rendered, "Job", f"{FULLNAME}-migrate")
    job_env = pod_environment(migrate, secret, **overrides)
    done = subprocess.run(
        migrate["command"],
        check=False,
        env=job_env,
        cwd=pod_dir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr

    # The web Deployment's command, bound to a local port instead of 0.0.0.0:8000.
    web = _container(rendered, "Deployment", f"{FULLNAME}-web")
    web_env = pod_environment(web, secret, **overrides)
    port = _free_port()
    command = list(web["command"])
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    command[0] = str(BIN / command[0])
    server = subprocess.Popen(command, env=web_env, cwd=REPO_ROOT, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if requests.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None, "gunicorn exited"
            time.sleep(0.2)

        state = tmp_path / "kubectl.json"
        state.write_text(
            json.dumps(
                {
                    "namespace": NAMESPACE,
                    "deployment": f"{FULLNAME}-web",
                    "pod_dir": str(pod_dir),
                    "env": web_env,
                }
            ),
            encoding="utf-8",
        )
        shims = tmp_path / "bin"
        shims.mkdir()
        kubectl = shims / "kubectl"
        kubectl.write_text(KUBECTL.format(python=sys.executable, state=str(state)))
        kubectl.chmod(0o755)

        # What the agent chart's NOTES leave on the workstation: the agent's public key.
        subprocess.run(
            [BIN / "k8smon", "keygen", "--out", "agent-key"], cwd=workstation, check=True
        )

        lines = _steps(rendered.notes)
        assert any(line.startswith("kubectl") for line in lines)
        assert any(line.startswith("export K8SMON_SERVER=") for line in lines)
        script = "\n".join(
            line.replace("YOUR_NAME", "alice")
            .replace("CLUSTER_NAME", "prod-eu-1")
            .replace(PUBLIC_URL, base_url)
            for line in lines
        )
        assert not re.search(r"\b[A-Z]{3,}_NAME\b", script), "a placeholder left unfilled"
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            check=False,
            cwd=workstation,
            env={
                "PATH": f"{shims}:{BIN}:/usr/bin:/bin",
                "HOME": str(workstation),
                "LANG": "C.UTF-8",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, f"{script}\n---\n{ran.stdout}\n{ran.stderr}"
        assert "prod-eu-1" in ran.stdout  # `k8smon clusters list`
        assert not (pod_dir / "admin.key").exists(), "the private key never reaches the pod"
        assert (workstation / "admin.key").stat().st_mode & 0o077 == 0
    finally:
        server.terminate()
        server.wait(timeout=20)

    engine = make_engine(database.url)
    try:
        with make_session_factory(engine)() as session:
            admin = session.scalars(select(AdminKey).where(AdminKey.key_id == "alice")).one()
            assert admin.role == "admin"
            cluster = session.get(Cluster, "prod-eu-1")
            assert cluster is not None
            keys = session.scalars(
                select(ClusterKey).where(ClusterKey.cluster_id == "prod-eu-1")
            ).all()
            assert len(keys) == 1
            actors = session.scalars(
                select(AuditEntry.actor).where(AuditEntry.action == "clusters.register")
            ).all()
            assert actors == ["alice"]
    finally:
        engine.dispose()


def test_notes_name_only_placeholders_they_explain() -> None:
    notes = render(SERVER, VALUES).notes
    for placeholder in ("YOUR_NAME", "CLUSTER_NAME"):
        assert f"replace {placeholder}" in notes
