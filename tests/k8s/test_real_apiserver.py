"""The agent against a real etcd + kube-apiserver (issue 19): installed with its chart's RBAC,
ServiceAccount token and key Secret, pushing into the real ingest server on PostgreSQL.

Run with `make test-k8s` (it builds or reuses the binaries; see docs/agent.md).
"""

from __future__ import annotations

import base64
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import requests
from sqlalchemy import select

from agent.collect import CollectOptions, collect
from agent.kube import KubeClient
from agent.signing import AgentKey
from store.models import TelemetryPing
from store.telemetry import collection_gaps
from tests.agent.test_e2e_ingest import Ingest, _register, _stored_state
from tests.helm.charts import NAMESPACE
from tests.k8s.apiserver import ApiServer
from tests.k8s.objects import BULK_CONFIG_MAPS, BULK_NAMESPACE, CRD_GROUP, SECRET_LIKE_GROUP
from tests.k8s.rig import AgentInstall, cluster_state

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.k8s]


def wait_until(probe: Callable[[], Any], what: str, *, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def agent_key_pem(install: AgentInstall) -> str | None:
    secret = install.api.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{install.key_secret}")
    data = secret.get("data") or {}
    return base64.b64decode(data["public-key.pem"]).decode() if "public-key.pem" in data else None


def registered_cluster(install: AgentInstall, ingest: Ingest) -> str:
    """A cluster id registered with the agent's key (generated into its Secret on first run)."""
    cluster_id = f"real-{uuid.uuid4().hex[:8]}"
    pem = agent_key_pem(install)
    if pem is None:
        env = install.process_env(server_url=ingest.url, cluster_id=cluster_id)
        first = install.run("once", env)
        assert first.returncode == 1  # a key the server does not know yet: 401
        pem = first.event("agent.key")["public_key_pem"]
        assert pem == agent_key_pem(install)
    # _register reads only the key's public PEM.
    _register(ingest, cluster_id, cast(AgentKey, SimpleNamespace(public_key_pem=pem)))
    return cluster_id


def agent_client(install: AgentInstall) -> KubeClient:
    return KubeClient.connect(kubeconfig=str(install.kubeconfig), timeout_s=30)


def agent_audit(api: ApiServer, install: AgentInstall) -> list[dict[str, Any]]:
    """The agent's requests in the audit log (discovery requests have an empty objectRef)."""
    return [
        {"objectRef": {}, **e} for e in api.audit_events() if e["user"]["username"] == install.user
    ]


def latest_gaps(ingest: Ingest, cluster_id: str) -> dict[str, Any]:
    with ingest.sessions() as session:
        ping = session.scalars(
            select(TelemetryPing)
            .where(TelemetryPing.cluster_id == cluster_id)
            .order_by(TelemetryPing.id.desc())
            .limit(1)
        ).first()
        return collection_gaps(ping) if ping else {}


# -- the whole path -------------------------------------------------------------------------------


def test_the_agent_process_pushes_exactly_what_the_cluster_holds(
    apiserver: ApiServer, agent_install: AgentInstall, ingest: Ingest, tmp_path: Path
) -> None:
    # First start: the agent generates its key into the chart's empty key Secret; the server
    # refuses the push (unknown key) until the operator registers the logged public key.
    cluster_id = registered_cluster(agent_install, ingest)
    env = agent_install.process_env(server_url=ingest.url, cluster_id=cluster_id, PAGE_SIZE="50")
    run = agent_install.run("once", env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.event("agent.key")["source"] == "secret"  # read back by name, not regenerated

    stored = _stored_state(ingest, cluster_id)
    expected = cluster_state(apiserver, agent_install.include_types, tmp_path)
    by_kind = Counter(key.split("|")[1] for key in stored)
    assert by_kind == Counter(key.split("|")[1] for key in expected)
    assert stored == expected  # object for object, content hash for content hash
    assert by_kind["ConfigMap"] >= BULK_CONFIG_MAPS
    for kind in ("Deployment", "StatefulSet", "DaemonSet", "Pod", "Service", "Job", "Ingress",
                 "NetworkPolicy", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
                 "CustomResourceDefinition", "Widget", "Namespace", "ServiceAccount"):  # fmt: skip
        assert by_kind[kind] > 0, kind
    # Served only at a non-preferred version on v1.20 (batch/v1beta1) or by design (a CRD
    # version that is not its group's preferred one): found all the same (defect 3).
    assert by_kind["CronJob"] == 3 and by_kind["Legacy"] == 3
    cron_version = "batch/v1" if apiserver.serves("batch/v1", "CronJob") else "batch/v1beta1"
    assert f"{cron_version}|CronJob|shop|shop-nightly" in stored
    assert f"{CRD_GROUP}/v1beta1|Legacy|shop|shop-legacy" in stored
    assert not [key for key in stored if key.split("|")[1] == "Secret"]

    done = run.event("collection.done")
    assert done["not_collected"] == {}
    assert "validatingadmissionpolicies.admissionregistration.k8s.io" in done["unserved_types"]
    gaps = latest_gaps(ingest, cluster_id)
    assert gaps["not_collected"] == {}
    assert "validatingadmissionpolicies.admissionregistration.k8s.io" in gaps["unserved_types"]

    # Pagination: 50 objects a page, continue tokens followed to the end.
    pages = [
        e
        for e in agent_audit(apiserver, agent_install)
        if e["verb"] == "list"
        and e["objectRef"].get("resource") == "configmaps"
        and "limit=50" in e["requestURI"]
    ]
    assert len(pages) >= BULK_CONFIG_MAPS // 50
    assert sum("continue=" in e["requestURI"] for e in pages) >= BULK_CONFIG_MAPS // 50 - 1


def test_the_audit_log_shows_no_secret_read_but_the_agents_own_key(
    apiserver: ApiServer, agent_install: AgentInstall, ingest: Ingest
) -> None:
    cluster_id = registered_cluster(agent_install, ingest)
    env = agent_install.process_env(server_url=ingest.url, cluster_id=cluster_id)
    assert agent_install.run("once", env).returncode == 0
    events = agent_audit(apiserver, agent_install)
    assert len(events) > 30
    secret_access = {
        (
            e["verb"],
            e["objectRef"].get("apiGroup", ""),
            e["objectRef"].get("namespace"),
            e["objectRef"].get("name"),
        )
        for e in events
        if e["objectRef"].get("resource") == "secrets"
    }
    assert ("get", "", NAMESPACE, agent_install.key_secret) in secret_access
    assert secret_access <= {
        ("get", "", NAMESPACE, agent_install.key_secret),
        ("update", "", NAMESPACE, agent_install.key_secret),
    }
    # Nothing of the CRD whose kind is Secret either.
    assert not [e for e in events if e["objectRef"].get("apiGroup") == SECRET_LIKE_GROUP]


def test_rbac_denies_secrets_to_the_agents_token(
    apiserver: ApiServer, agent_install: AgentInstall
) -> None:
    user, groups = agent_install.user, agent_install.groups
    assert not apiserver.can(user, groups, verb="list", resource="secrets")
    assert not apiserver.can(user, groups, verb="list", resource="secrets", namespace=NAMESPACE)
    assert not apiserver.can(user, groups, verb="watch", resource="secrets")
    assert not apiserver.can(
        user, groups, verb="get", resource="secrets", namespace="shop", name="shop-db-password"
    )
    assert not apiserver.can(
        user, groups, verb="get", resource="secrets", namespace=NAMESPACE, name="another"
    )
    assert not apiserver.can(user, groups, verb="list", resource="secrets", group=SECRET_LIKE_GROUP)
    assert apiserver.can(
        user, groups, verb="get", resource="secrets", namespace=NAMESPACE,
        name=agent_install.key_secret,
    )  # fmt: skip
    assert apiserver.can(user, groups, verb="list", resource="configmaps")
    # And the token itself, on the wire.
    token = agent_install.api.service_account_token(NAMESPACE, agent_install.service_account)
    answer = requests.get(
        f"{apiserver.url}/api/v1/secrets",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(apiserver.ca_file),
        timeout=30,
    )
    assert answer.status_code == 403


# -- list mechanics -------------------------------------------------------------------------------


def test_a_continue_token_expired_by_compaction_restarts_the_list(
    apiserver: ApiServer, agent_install: AgentInstall
) -> None:
    kube = agent_client(agent_install)
    original = kube.get
    compacted: list[int] = []

    def get(path: str, *, query: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        paging = any(k == "continue" for k, _ in query or [])
        if path == "/api/v1/configmaps" and paging and not compacted:
            # Between two pages: a write, then etcd compaction past the token's revision.
            churn = {"name": f"churn-{uuid.uuid4().hex[:6]}", "namespace": BULK_NAMESPACE}
            apiserver.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": churn})
            compacted.append(apiserver.compact())
        return original(path, query=query)

    kube.get = get  # type: ignore[method-assign]
    try:
        collection = collect(
            kube, CollectOptions(include_types=frozenset({"configmaps"}), page_size=100)
        )
    finally:
        kube.close()
    assert compacted
    assert collection.list_restarts == 1
    assert collection.not_collected == {}
    listed = {item["metadata"]["name"] for item in apiserver.list_all("/api/v1/configmaps")}
    assert {key.rsplit("|", 1)[1] for key in collection.entries} == listed
    expired = [
        e
        for e in agent_audit(apiserver, agent_install)
        if e["objectRef"].get("resource") == "configmaps"
        and e.get("responseStatus", {}).get("code") == 410
    ]
    assert expired  # the server really answered 410 Gone


# -- issue 19, defects 1-3, on a real server ------------------------------------------------------


def test_an_api_server_lost_mid_first_collection_pushes_nothing(
    apiserver: ApiServer, agent_install: AgentInstall, ingest: Ingest
) -> None:
    cluster_id = registered_cluster(agent_install, ingest)
    # One object a page: the 600 ConfigMaps alone take hundreds of requests, time enough to
    # see the agent paging in the audit log (written before each request is answered).
    env = agent_install.process_env(server_url=ingest.url, cluster_id=cluster_id, PAGE_SIZE="1")
    audit = apiserver.audit_log.open(encoding="utf-8")
    audit.seek(0, 2)
    proc = agent_install.start("once", env)
    try:
        deadline = time.monotonic() + 60
        paging = False
        while not paging and time.monotonic() < deadline and proc.poll() is None:
            for line in audit.readlines():
                paging = paging or (
                    agent_install.user in line and "/api/v1/configmaps?" in line
                    and "continue=" in line
                )  # fmt: skip
            time.sleep(0.01)
        assert paging, "the agent was never seen paging through ConfigMaps"
        apiserver.stop_apiserver(kill=True)
        _stdout, stderr = proc.communicate(timeout=400)
    finally:
        audit.close()
        if proc.poll() is None:
            proc.kill()
        apiserver.start_apiserver()
    assert proc.returncode == 1, stderr[-3000:]
    events = [line for line in stderr.splitlines() if '"once.incomplete"' in line]
    assert events and "configmaps" in events[0]
    assert _stored_state(ingest, cluster_id) == {}  # no snapshot at all, let alone a full one
    gaps = latest_gaps(ingest, cluster_id)
    assert "configmaps" in gaps["not_collected"]
    assert set(gaps["not_collected"].values()) == {"failed"}


def test_removing_a_types_rbac_keeps_its_objects(
    apiserver: ApiServer, agent_install: AgentInstall, ingest: Ingest, tmp_path: Path
) -> None:
    cluster_id = registered_cluster(agent_install, ingest)
    env = agent_install.process_env(
        server_url=ingest.url,
        cluster_id=cluster_id,
        PUSH_INTERVAL="2",
        PING_INTERVAL="2",
        PAGE_SIZE="250",
    )
    role_path = (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/"
        + agent_install.cluster_role["metadata"]["name"]
    )
    original_role = apiserver.get(role_path)
    doomed = "/apis/apps/v1/namespaces/payments/statefulsets/payments-db"
    proc = agent_install.start("run", env)
    try:
        before = wait_until(
            lambda: (
                (state := _stored_state(ingest, cluster_id))
                and any("|ConfigMap|" in k for k in state)
                and state
            ),
            "the first full snapshot",
        )
        config_maps = {k: v for k, v in before.items() if k.split("|")[1] == "ConfigMap"}
        assert len(config_maps) >= BULK_CONFIG_MAPS

        narrowed = {**original_role, "rules": []}
        for rule in original_role["rules"]:
            kept = [r for r in rule["resources"] if r != "configmaps"]
            if kept:
                narrowed["rules"].append({**rule, "resources": kept})
        apiserver.request("PUT", role_path, body=narrowed)
        apiserver.request("DELETE", doomed)  # a real change that must still arrive
        after = wait_until(
            lambda: (
                (state := _stored_state(ingest, cluster_id))
                and "apps/v1|StatefulSet|payments|payments-db" not in state
                and state
            ),
            "the delta without the StatefulSet",
        )
        # Every ConfigMap is still there, unchanged: unknown, not deleted (defect 2).
        assert {k: after.get(k) for k in config_maps} == config_maps
        assert wait_until(
            lambda: (
                latest_gaps(ingest, cluster_id).get("not_collected") == {"configmaps": "forbidden"}
            ),
            "telemetry naming configmaps as not collected",
        )
    finally:
        current = apiserver.get(role_path)
        apiserver.request("PUT", role_path, body={**original_role, "metadata": current["metadata"]})
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=120)
        except Exception:
            proc.kill()
            raise
    assert proc.returncode == 0


def test_an_included_type_served_only_at_a_non_preferred_version_is_collected(
    apiserver: ApiServer, agent_install: AgentInstall
) -> None:
    groups = {g["name"]: g for g in apiserver.get("/apis")["groups"]}
    assert groups[CRD_GROUP]["preferredVersion"]["version"] == "v1"
    include = frozenset(
        {
            f"legacies.{CRD_GROUP}",
            "cronjobs.batch",
            "validatingadmissionpolicies.admissionregistration.k8s.io",
        }
    )
    kube = agent_client(agent_install)
    try:
        collection = collect(kube, CollectOptions(include_types=include))
    finally:
        kube.close()
    versions = {tuple(key.split("|")[:2]) for key in collection.entries}
    cron_version = "batch/v1" if apiserver.serves("batch/v1", "CronJob") else "batch/v1beta1"
    assert versions == {(f"{CRD_GROUP}/v1beta1", "Legacy"), (cron_version, "CronJob")}
    if not apiserver.serves("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"):
        assert collection.unserved_types == [
            "validatingadmissionpolicies.admissionregistration.k8s.io"
        ]
