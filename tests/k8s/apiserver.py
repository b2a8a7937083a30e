"""A real etcd + kube-apiserver on loopback, envtest-style (`KUBEBUILDER_ASSETS`), for tests/k8s.

RBAC on, an audit log at Metadata level, ServiceAccount tokens signed with a key made here, a
static admin token for the test's own requests, TLS with a CA made here (`openssl`). No
controller manager or scheduler runs: objects stay as the test creates them.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ADMIN_TOKEN = "k8smon-test-admin-token"
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(directory: Path) -> None:
    """ca.crt/ca.key, apiserver.crt/.key for 127.0.0.1, sa.key/sa.pub (token signing)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=k8smon-test-ca", cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out",
        "apiserver.csr", "-subj", "/CN=kube-apiserver", cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "apiserver.crt", "-days", "2", "-extfile", "san.ext",
        cwd=directory,
    )  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=directory)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)


@dataclass
class ApiServer:
    """etcd and kube-apiserver processes sharing a work folder; `restart` keeps etcd's data."""

    assets: Path
    workdir: Path
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    port: int = field(default_factory=free_port)
    etcd: subprocess.Popen[bytes] | None = None
    apiserver: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def start(self) -> ApiServer:
        make_pki(self.workdir / "pki")
        (self.workdir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        (self.workdir / "tokens.csv").write_text(f"{ADMIN_TOKEN},admin,admin-uid,system:masters\n")
        self.etcd = subprocess.Popen(
            [
                str(self.assets / "etcd"),
                "--name=k8smon-test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
                f"--initial-cluster=k8smon-test=http://127.0.0.1:{self.etcd_peer_port}",
                "--log-level=error",
            ],
            stdout=(self.workdir / "etcd.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        self._wait(lambda: requests.get(f"{self.etcd_url}/health", timeout=2).ok, "etcd")
        self.start_apiserver()
        return self

    def start_apiserver(self) -> None:
        pki = self.workdir / "pki"
        self.apiserver = subprocess.Popen(
            [
                str(self.assets / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                "--insecure-port=0",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/24",
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                f"--audit-policy-file={self.workdir / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-maxsize=0",
                "--v=0",
            ],
            stdout=(self.workdir / "apiserver.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        self._wait(self._ready, "kube-apiserver", timeout=120)

    def _ready(self) -> bool:
        answer = requests.get(
            f"{self.url}/readyz", headers=self.admin_headers, verify=str(self.ca_file), timeout=3
        )
        return answer.status_code == 200

    def _wait(self, probe: Any, what: str, *, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in (self.etcd, self.apiserver):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{what} exited ({proc.returncode}): see {self.workdir}")
            try:
                if probe():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{what} not ready after {timeout} s: see {self.workdir}")

    def stop_apiserver(self, *, kill: bool = False) -> None:
        if self.apiserver is not None and self.apiserver.poll() is None:
            self.apiserver.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.apiserver.wait(timeout=30)
        self.apiserver = None

    def stop(self) -> None:
        self.stop_apiserver()
        if self.etcd is not None and self.etcd.poll() is None:
            self.etcd.terminate()
            self.etcd.wait(timeout=30)
        self.etcd = None

    # -- the test's own (admin) requests ----------------------------------------------------------

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def request(
        self, method: str, path: str, *, body: Any = None, params: Any = None, ok: bool = True
    ) -> requests.Response:
        answer = requests.request(
            method,
            f"{self.url}{path}",
            json=body,
            params=params,
            headers=self.admin_headers,
            verify=str(self.ca_file),
            timeout=60,
        )
        if ok and answer.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:500]}")
        return answer

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return dict(self.request("GET", path, params=params or None).json())

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """POST one object to its collection (the path is derived from apiVersion and kind)."""
        path = self.collection_path(obj)
        return dict(self.request("POST", path, body=obj).json())

    def collection_path(self, obj: dict[str, Any]) -> str:
        api_version = obj["apiVersion"]
        plural = self.plural(api_version, obj["kind"])
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        namespace = obj["metadata"].get("namespace")
        return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"

    def plural(self, api_version: str, kind: str) -> str:
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        for resource in self.get(base)["resources"]:
            if resource["kind"] == kind and "/" not in resource["name"]:
                return str(resource["name"])
        raise KeyError(f"{api_version} {kind} is not served")

    def serves(self, api_version: str, kind: str) -> bool:
        try:
            self.plural(api_version, kind)
        except (KeyError, RuntimeError):
            return False
        return True

    def list_all(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            page = self.get(path, limit=500, **({"continue": token} if token else {}))
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def service_account_token(self, namespace: str, name: str, *, seconds: int = 7200) -> str:
        """A bound token from the TokenRequest API, as the kubelet would project it."""
        answer = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds},
            },
        )
        return str(answer.json()["status"]["token"])

    def can(self, user: str, groups: list[str], **attributes: str) -> bool:
        """SubjectAccessReview: may `user` do `attributes` (verb, resource, name, ...)?"""
        review = self.request(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {"user": user, "groups": groups, "resourceAttributes": attributes},
            },
        ).json()
        return bool(review["status"].get("allowed"))

    def write_kubeconfig(self, path: Path, *, token: str) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "real",
                            "cluster": {
                                "server": self.url,
                                "certificate-authority": str(self.ca_file),
                            },
                        }
                    ],
                    "users": [{"name": "agent", "user": {"token": token}}],
                    "contexts": [{"name": "real", "context": {"cluster": "real", "user": "agent"}}],
                    "current-context": "real",
                }
            )
        )
        return path

    # -- etcd ------------------------------------------------------------------------------------

    def etcd_revision(self) -> int:
        key = base64.b64encode(b"/registry").decode()
        answer = requests.post(f"{self.etcd_url}/v3/kv/range", json={"key": key}, timeout=10)
        return int(answer.json()["header"]["revision"])

    def compact(self) -> int:
        """Compact etcd at its current revision (what the apiserver does every 5 minutes)."""
        revision = self.etcd_revision()
        answer = requests.post(
            f"{self.etcd_url}/v3/kv/compaction",
            json={"revision": revision, "physical": True},
            timeout=30,
        )
        answer.raise_for_status()
        return revision

    # -- audit log -------------------------------------------------------------------------------

    def audit_events(self) -> Iterator[dict[str, Any]]:
        if not self.audit_log.exists():
            return
        with self.audit_log.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)


def assets_folder() -> Path | None:
    """KUBEBUILDER_ASSETS when it holds both binaries."""
    folder = os.environ.get("KUBEBUILDER_ASSETS")
    if not folder:
        return None
    path = Path(folder)
    if (path / "etcd").is_file() and (path / "kube-apiserver").is_file():
        return path
    return None
