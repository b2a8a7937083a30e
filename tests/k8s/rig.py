"""The agent installed as its chart would install it, run as a real process against the real
API server, and the cluster's state as the agent should see it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import DEFAULT_EXCLUDED_TYPES
from agent.discovery import add_fallback_types, discover, select
from agent.kube import KubeClient
from agent.normalise import normalise
from contracts.hashing import content_hash
from contracts.resources import ResourceRef
from tests.helm.charts import AGENT, NAMESPACE, chart_dir, load_values, render
from tests.k8s.apiserver import ADMIN_TOKEN, ApiServer
from tests.k8s.objects import CRD_GROUP

REPO = Path(__file__).resolve().parents[2]
APPLIED_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                 "Secret")  # fmt: skip


@dataclass
class AgentInstall:
    """What the chart created, and how to run the agent as its Deployment would."""

    api: ApiServer
    env: dict[str, str]
    service_account: str
    key_secret: str
    cluster_role: dict[str, Any]
    kubeconfig: Path
    include_types: frozenset[str] = field(default_factory=frozenset)

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{NAMESPACE}:{self.service_account}"

    @property
    def groups(self) -> list[str]:
        return ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}",
                "system:authenticated"]  # fmt: skip

    def process_env(self, *, server_url: str, cluster_id: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("K8SMON_AGENT_")}
        env.update(self.env)
        env.update(
            K8SMON_AGENT_SERVER_URL=server_url,
            K8SMON_AGENT_CLUSTER_ID=cluster_id,
            K8SMON_AGENT_KUBECONFIG=str(self.kubeconfig),
            # No key file: the agent keeps its key in the chart's key Secret, as in a cluster.
            K8SMON_AGENT_KEY_FILE=str(self.kubeconfig.parent / "no-key-file.pem"),
            PYTHONPATH=str(REPO),
        )
        env.update({f"K8SMON_AGENT_{k}": v for k, v in extra.items()})
        return env

    def start(self, command: str, env: dict[str, str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "agent", command],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, command: str, env: dict[str, str], *, timeout: float = 300) -> Finished:
        proc = self.start(command, env)
        stdout, stderr = proc.communicate(timeout=timeout)
        return Finished(proc.returncode, stdout, stderr)


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]

    def event(self, name: str) -> dict[str, Any]:
        found = [e for e in self.events() if e.get("event") == name]
        assert found, f"no {name} event in:\n{self.stderr[-3000:]}"
        return found[-1]


def chart_values() -> dict[str, Any]:
    defaults = load_values(chart_dir(AGENT) / "values.yaml")
    resources = [
        *defaults["collect"]["resources"],
        {"apiGroup": CRD_GROUP, "resources": ["widgets", "legacies"]},  # "Add your CRDs here"
    ]
    return {
        "serverUrl": "http://127.0.0.1:9",
        "clusterId": "real-apiserver",
        "collect": {"resources": resources},
    }


def _env_of(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[var["name"]] = NAMESPACE
    return env


def install_agent(api: ApiServer) -> AgentInstall:
    """Apply the chart's ServiceAccount, RBAC and key Secret; a TokenRequest token for it."""
    rendered = render(AGENT, chart_values())
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    for kind in APPLIED_KINDS:
        for doc in rendered.of_kind(kind):
            doc.setdefault("metadata", {})
            if kind not in ("ClusterRole", "ClusterRoleBinding"):
                doc["metadata"].setdefault("namespace", NAMESPACE)
            api.create(doc)
    service_account = rendered.one("ServiceAccount")["metadata"]["name"]
    key_secret = rendered.one("Secret")["metadata"]["name"]
    token = api.service_account_token(NAMESPACE, service_account)
    folder = api.workdir / "agent"  # removed with the API server's folder
    folder.mkdir(exist_ok=True)
    kubeconfig = api.write_kubeconfig(folder / "kubeconfig", token=token)
    env = _env_of(rendered.one("Deployment"))
    return AgentInstall(
        api=api,
        env=env,
        service_account=service_account,
        key_secret=key_secret,
        cluster_role=rendered.one("ClusterRole", "-read"),
        kubeconfig=kubeconfig,
        include_types=frozenset(env["K8SMON_AGENT_INCLUDE_TYPES"].split(",")),
    )


def admin_client(api: ApiServer, folder: Path) -> KubeClient:
    path = api.write_kubeconfig(folder / "admin-kubeconfig", token=ADMIN_TOKEN)
    return KubeClient.connect(kubeconfig=str(path), timeout_s=30)


def cluster_state(api: ApiServer, include: frozenset[str], folder: Path) -> dict[str, str]:
    """(ref key -> content hash) of every object of the included types, read as admin, at the
    version each is served (what the agent must end up pushing)."""
    kube = admin_client(api, folder)
    try:
        found = discover(kube)
        add_fallback_types(kube, found, include=include)
        state: dict[str, str] = {}
        for rtype in select(found.types, include=include, exclude=DEFAULT_EXCLUDED_TYPES):
            for item in api.list_all(rtype.list_path()):
                obj = {"apiVersion": rtype.api_version, "kind": rtype.kind, **item}
                clean = normalise(obj)
                state[ResourceRef.of(clean).key] = content_hash(clean)
        return state
    finally:
        kube.close()
