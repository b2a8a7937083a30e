"""The server chart renders what the Procfile runs, securely, with credentials only by reference."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path
from typing import Any

import pytest

from cli import wsgi
from settings.config import VARIABLES
from tests.helm.charts import (
    NAMESPACE,
    RELEASE,
    REPO_ROOT,
    SERVER,
    Rendered,
    chart_dir,
    ci_values_files,
    containers,
    env_of,
    load_values,
    pod_labels,
    pod_spec,
    render,
    selects,
    workloads,
)
from tests.helm.security import assert_secure_pod

FULLNAME = f"{RELEASE}-{SERVER}"
DEFAULT = load_values(chart_dir(SERVER) / "ci" / "default-values.yaml")
FULL = load_values(chart_dir(SERVER) / "ci" / "full-values.yaml")
CREDENTIALS = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SLACK_SIGNING_SECRET",
               "SLACK_BOT_TOKEN", "K8SMON_WEBHOOK_SECRET", "FLOWER_BASIC_AUTH"}
# Variables read outside settings/config.py: by notifiers, Flower, and the broker options
# (workers.celery_app.BrokerOptions, set through config.extraEnv in the CI values).
NOT_SETTINGS = {"SLACK_BOT_TOKEN", "FLOWER_BASIC_AUTH", "K8SMON_FLOWER_URL", "K8SMON_TASK_QUEUE",
                "K8SMON_REDIS_KEY_PREFIX", "K8SMON_VISIBILITY_TIMEOUT"}


@pytest.fixture(scope="module")
def default() -> Rendered:
    return render(SERVER, DEFAULT)


@pytest.fixture(scope="module")
def full() -> Rendered:
    return render(SERVER, FULL)


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(doc)["containers"]
    return only


def test_default_components(default: Rendered) -> None:
    deployments = {d["metadata"]["name"] for d in default.of_kind("Deployment")}
    assert deployments == {
        f"{FULLNAME}-web",
        f"{FULLNAME}-worker",
        f"{FULLNAME}-snapshots",
        f"{FULLNAME}-beat",
    }
    assert not default.of_kind("HorizontalPodAutoscaler")
    assert not default.of_kind("Ingress")
    assert not default.of_kind("ServiceMonitor")
    assert not default.of_kind("Secret"), "the chart never carries credentials itself"


def test_full_components(full: Rendered) -> None:
    deployments = {d["metadata"]["name"] for d in full.of_kind("Deployment")}
    assert f"{FULLNAME}-flower" in deployments
    hpa = full.one("HorizontalPodAutoscaler", "-worker")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{FULLNAME}-worker"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    worker = full.named("Deployment", f"{FULLNAME}-worker")
    assert "replicas" not in worker["spec"], "the HPA owns the replica count"
    monitor = full.one("ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_processes_match_the_procfile(default: Rendered) -> None:
    procfile = (REPO_ROOT / "Procfile").read_text(encoding="utf-8")
    web = _container(default.named("Deployment", f"{FULLNAME}-web"))
    assert web["command"][0] == "gunicorn" and web["command"][-1] == "cli.wsgi:app"
    assert "--no-control-socket" in web["command"], "no writable $HOME for gunicorn's socket"
    # The same gunicorn tuning as the Procfile's web line.
    web_line = next(line for line in procfile.splitlines() if line.startswith("web:"))
    procfile_args = shlex.split(web_line.split(":", 1)[1])
    for flag in ("--workers", "--worker-class", "--threads"):
        if flag in procfile_args:
            expected = procfile_args[procfile_args.index(flag) + 1]
            assert web["command"][web["command"].index(flag) + 1] == expected, flag
    assert "'cli.wsgi:app'" in procfile
    worker = _container(default.named("Deployment", f"{FULLNAME}-worker"))
    assert worker["command"][:4] == ["celery", "-A", "workers.celery_app:app", "worker"]
    assert "-E" in worker["command"]
    assert "--lane" not in worker["command"], "the worker consumes every queue"
    # The snapshots queue has workers of its own, as the Procfile's `snapshots` line.
    snapshots = _container(default.named("Deployment", f"{FULLNAME}-snapshots"))
    command = snapshots["command"]
    assert command[:4] == ["celery", "-A", "workers.celery_app:app", "worker"]
    assert command[command.index("--lane") + 1] == "snapshots" and "-E" in command
    snapshots_line = next(line for line in procfile.splitlines() if line.startswith("snapshots:"))
    assert "--lane snapshots" in snapshots_line
    beat = _container(default.named("Deployment", f"{FULLNAME}-beat"))
    assert beat["command"][:4] == ["celery", "-A", "workers.celery_app:app", "beat"]
    job = default.named("Job", f"{FULLNAME}-migrate")
    assert _container(job)["command"] == ["k8smon", "db", "upgrade"]
    assert "k8smon db upgrade" in procfile
    # The modules the commands name exist in this repository.
    for target in ("cli.wsgi", "workers.celery_app"):
        spec = importlib.util.find_spec(target)
        assert spec is not None and spec.origin, target
        assert Path(spec.origin).is_relative_to(REPO_ROOT)


def test_beat_is_a_single_recreated_replica(full: Rendered) -> None:
    beat = full.named("Deployment", f"{FULLNAME}-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    # The schedule file lives on the writable scratch volume, not the read-only root.
    command = _container(beat)["command"]
    assert command[command.index("--schedule") + 1].startswith("/tmp/")


def test_migrations_run_as_pre_install_and_pre_upgrade_hooks(default: Rendered) -> None:
    job = default.named("Job", f"{FULLNAME}-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    # Its ServiceAccount is a hook too, created first: the release's own does not exist yet.
    account = default.named("ServiceAccount", f"{FULLNAME}-migrate")
    assert account["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(account["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        annotations["helm.sh/hook-weight"]
    )
    assert pod_spec(job)["serviceAccountName"] == f"{FULLNAME}-migrate"
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert render(SERVER, {**DEFAULT, "migrations": {"enabled": False}}).of_kind("Job") == []


def test_web_probes_service_and_pdb(full: Rendered) -> None:
    web = full.named("Deployment", f"{FULLNAME}-web")
    container = _container(web)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    service = full.named("Service", FULLNAME)
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(web))
    pdb = full.one("PodDisruptionBudget", "-web")
    assert selects(pdb["spec"]["selector"], pod_labels(web))
    assert pdb["spec"]["maxUnavailable"] == 1
    worker = full.named("Deployment", f"{FULLNAME}-worker")
    assert selects(full.one("PodDisruptionBudget", "-worker")["spec"]["selector"],
                   pod_labels(worker))
    assert not selects(pdb["spec"]["selector"], pod_labels(worker))


def test_ingress_serves_the_web_service_over_tls(full: Rendered) -> None:
    ingress = full.named("Ingress", FULLNAME)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["k8s-monitor.example.org"], "secretName": "k8s-monitor-tls"}
    ]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": FULLNAME, "port": {"name": "http"}}


@pytest.mark.parametrize("values_file", ci_values_files(SERVER), ids=lambda p: p.name)
def test_every_pod_is_locked_down(values_file: Path) -> None:
    rendered = render(SERVER, load_values(values_file))
    for doc in workloads(rendered):
        assert_secure_pod(doc)
        spec = pod_spec(doc)
        assert spec["automountServiceAccountToken"] is False, doc["metadata"]["name"]
        assert spec["enableServiceLinks"] is False, doc["metadata"]["name"]
    for account in rendered.of_kind("ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_credentials_come_only_from_the_existing_secret(full: Rendered) -> None:
    for doc in workloads(full):
        for container in containers(doc):
            env = env_of(container)
            for name in CREDENTIALS & env.keys():
                assert "value" not in env[name], f"{name} in clear in {doc['metadata']['name']}"
                ref = env[name]["valueFrom"]["secretKeyRef"]
                flower = name == "FLOWER_BASIC_AUTH"
                assert ref["name"] == ("k8s-monitor-flower" if flower else "k8s-monitor-env")
            for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY"):
                if doc["kind"] != "Pod":  # the helm test pod needs no credentials
                    assert name in env, f"{name} missing in {doc['metadata']['name']}"
                    assert "optional" not in env[name]["valueFrom"]["secretKeyRef"]


def test_environment_names_are_ones_the_server_reads(full: Rendered) -> None:
    known = {variable.env for variable in VARIABLES} | NOT_SETTINGS
    for doc in workloads(full):
        for container in containers(doc):
            unknown = set(env_of(container)) - known
            assert not unknown, f"{doc['metadata']['name']} sets unknown variables {unknown}"
            if doc["kind"] != "Pod":
                assert env_of(container)["K8SMON_ENV"]["value"] == "production"


def test_flower_requires_basic_auth(full: Rendered) -> None:
    flower = _container(full.named("Deployment", f"{FULLNAME}-flower"))
    auth = env_of(flower)["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    assert auth == {"name": "k8s-monitor-flower", "key": "FLOWER_BASIC_AUTH"}
    service = full.named("Service", f"{FULLNAME}-flower")
    assert service["spec"]["type"] == "ClusterIP"
    web = _container(full.named("Deployment", f"{FULLNAME}-web"))
    assert env_of(web)["K8SMON_FLOWER_URL"]["value"] == "http://localhost:5555"
    assert wsgi.flower_url({"K8SMON_FLOWER_URL": "http://localhost:5555"})  # accepted as is


def test_no_flower_link_without_flower(default: Rendered) -> None:
    web = _container(default.named("Deployment", f"{FULLNAME}-web"))
    assert "K8SMON_FLOWER_URL" not in env_of(web)


def test_rules_config_is_mounted_where_the_setting_points(full: Rendered) -> None:
    configmap = full.one("ConfigMap", "-rules")
    assert "config.yaml" in configmap["data"]
    for doc in full.of_kind("Deployment"):
        container = _container(doc)
        path = env_of(container)["K8SMON_RULES_CONFIG"]["value"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        mount = mounts[str(Path(path).parent)]
        assert mount["readOnly"] is True
        volumes = {v["name"]: v for v in pod_spec(doc)["volumes"]}
        assert volumes[mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"]
        assert "checksum/rules-config" in doc["spec"]["template"]["metadata"]["annotations"]


def test_resources_have_requests_and_limits(full: Rendered) -> None:
    for doc in workloads(full):
        for container in containers(doc):
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= resources[bound].keys(), doc["metadata"]["name"]


def test_image_digest_overrides_the_tag(default: Rendered, full: Rendered) -> None:
    images = {c["image"] for d in workloads(default) for c in containers(d)}
    assert images == {"k8s-monitor/server:0.1.0"}
    digest = FULL["image"]["digest"]
    images = {c["image"] for d in workloads(full) for c in containers(d)}
    assert images == {f"k8s-monitor/server@{digest}"}


def test_every_pod_is_isolated_by_network_policies(full: Rendered) -> None:
    policies = full.of_kind("NetworkPolicy")
    for doc in workloads(full):
        labels = pod_labels(doc)
        applying = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        assert any(p["metadata"]["name"].endswith("-default-deny") for p in applying)
        types = {t for p in applying for t in p["spec"]["policyTypes"]}
        assert types == {"Ingress", "Egress"}, doc["metadata"]["name"]
        ports = {
            port["port"]
            for p in applying
            for rule in p["spec"].get("egress", [])
            for port in rule.get("ports", [])
        }
        assert 53 in ports, f"{doc['metadata']['name']} cannot resolve names"
        for p in applying:
            for rule in p["spec"].get("egress", []):
                assert rule.get("ports"), f"{p['metadata']['name']}: egress without a port"
    worker = full.one("NetworkPolicy", "-worker")
    assert "ingress" not in worker["spec"], "nothing may connect to a worker"
    web = full.one("NetworkPolicy", "-web")
    (rule,) = web["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]


def test_helm_test_hook_checks_readiness(default: Rendered) -> None:
    (pod,) = default.of_kind("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = _container(pod)["command"][-1]
    assert f"http://{FULLNAME}.{NAMESPACE}.svc:8000/readyz" in script
    assert_secure_pod(pod)


def test_notes_tell_the_next_step(full: Rendered) -> None:
    assert "k8smon admin bootstrap" in full.notes
    assert "k8smon clusters register" in full.notes
    assert "https://k8s-monitor.example.org" in full.notes


def test_notification_credentials_reach_only_web_and_worker(full: Rendered) -> None:
    notification = {"SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "K8SMON_WEBHOOK_SECRET"}
    for doc in workloads(full):
        component = pod_labels(doc)["app.kubernetes.io/component"]
        for container in containers(doc):
            present = notification & env_of(container).keys()
            if component in {"web", "worker"}:
                assert present == notification, component
            else:
                assert not present, f"{component} gets {present}"


def test_priority_class_reaches_every_server_pod(default: Rendered, full: Rendered) -> None:
    for doc in workloads(full):
        if doc["kind"] != "Pod":  # the helm test pod is short-lived
            assert pod_spec(doc)["priorityClassName"] == "k8s-monitor", doc["metadata"]["name"]
    assert all("priorityClassName" not in pod_spec(doc) for doc in workloads(default))


def test_extra_env_reaches_every_long_running_container(full: Rendered) -> None:
    for doc in full.of_kind("Deployment"):
        (container,) = pod_spec(doc)["containers"]
        assert env_of(container)["K8SMON_VISIBILITY_TIMEOUT"] == {
            "name": "K8SMON_VISIBILITY_TIMEOUT", "value": "1800"}
