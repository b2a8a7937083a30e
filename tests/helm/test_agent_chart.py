"""The agent chart: read-only RBAC that cannot read Secrets, egress-only network, and an
environment the agent itself accepts."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.config import AgentConfig
from agent.discovery import is_forbidden
from agent.keys import LoadedKey, log_public_key
from agent.logs import JsonFormatter, log_event
from agent.signing import AgentKey
from ingest.keys import parse_public_key
from rules import Engine
from tests.helm.charts import (
    AGENT,
    NAMESPACE,
    RELEASE,
    REPO_ROOT,
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
from tests.helm.rbac import allows, rule_allows
from tests.helm.security import assert_secure_pod

FULLNAME = f"{RELEASE}-{AGENT}"
SERVICE_ACCOUNT = FULLNAME
KEY_SECRET = "k8s-monitor-agent-key"
DEFAULT = load_values(chart_dir(AGENT) / "ci" / "default-values.yaml")
EXISTING_KEY = load_values(chart_dir(AGENT) / "ci" / "existing-key-values.yaml")
NO_PRECREATE = {**DEFAULT, "key": {"precreateSecret": False}}
CASES = {
    "default": DEFAULT,
    "existing-key": EXISTING_KEY,
    "no-precreate": NO_PRECREATE,
}
READ_VERBS = ("get", "list", "watch")
DANGEROUS_VERBS = ("escalate", "bind", "impersonate", "delete", "deletecollection", "patch")


def _render(case: str) -> Rendered:
    return render(AGENT, CASES[case])


def _agent_rules(rendered: Rendered) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(cluster-wide rules, rules in the agent's namespace) bound to the agent's ServiceAccount."""
    subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}
    cluster: list[dict[str, Any]] = []
    namespaced: list[dict[str, Any]] = []
    for binding in rendered.of_kind("ClusterRoleBinding") + rendered.of_kind("RoleBinding"):
        assert binding["subjects"] == [subject], "bindings name the agent and nobody else"
        ref = binding["roleRef"]
        role = rendered.named(ref["kind"], ref["name"])
        target = cluster if binding["kind"] == "ClusterRoleBinding" else namespaced
        target.extend(role["rules"])
        if ref["kind"] == "Role":
            assert role["metadata"]["namespace"] == NAMESPACE
    return cluster, namespaced


@pytest.mark.parametrize("case", sorted(CASES))
def test_agent_rbac_cannot_read_secrets(case: str) -> None:
    rendered = _render(case)
    cluster, namespaced = _agent_rules(rendered)
    assert cluster, "the agent needs its read-only ClusterRole"
    for verb in READ_VERBS:
        for name in (None, "db-password", "sh.helm.release.v1.mon.v1", KEY_SECRET):
            assert not allows(cluster, verb=verb, group="", resource="secrets", name=name)
        # In its own namespace: never list or watch, never get another Secret.
        assert not allows(namespaced, verb=verb, group="", resource="secrets", name="other")
        assert not allows(namespaced, verb=verb, group="", resource="secrets")
    own_key = allows(namespaced, verb="get", group="", resource="secrets", name=KEY_SECRET)
    assert own_key is (case != "existing-key"), "its own key Secret only when it manages it"


@pytest.mark.parametrize("case", sorted(CASES))
def test_agent_rbac_is_read_only_and_explicit(case: str) -> None:
    cluster, namespaced = _agent_rules(_render(case))
    for rule in cluster:
        assert rule["verbs"] == list(READ_VERBS)
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {field}: {rule}"
        assert "secrets" not in rule["resources"]
        assert "nonResourceURLs" not in rule
    for rule in cluster + namespaced:
        for verb in DANGEROUS_VERBS:
            assert not rule_allows(rule, verb=verb, group=rule["apiGroups"][0],
                                   resource=rule["resources"][0], name=None)
    for rule in namespaced:
        assert rule["resources"] == ["secrets"]
        assert set(rule["verbs"]) <= {"get", "update", "create"}
        if set(rule["verbs"]) & {"get", "update"}:
            assert rule["resourceNames"] == [KEY_SECRET]


def test_create_is_granted_only_without_a_precreated_secret() -> None:
    """`create` cannot be limited by name, so by default the chart creates the Secret itself."""
    for case, expect_create, expect_secret in [
        ("default", False, True), ("no-precreate", True, False), ("existing-key", False, False),
    ]:
        rendered = _render(case)
        _, namespaced = _agent_rules(rendered)
        assert allows(namespaced, verb="create", group="", resource="secrets") is expect_create
        secrets = rendered.of_kind("Secret")
        assert bool(secrets) is expect_secret, case
        for secret in secrets:
            assert secret["metadata"]["name"] == KEY_SECRET
            assert "data" not in secret and "stringData" not in secret, "an empty placeholder"
            assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_collected_types_are_exactly_the_readable_ones() -> None:
    rendered = _render("default")
    cluster, _ = _agent_rules(rendered)
    (deployment,) = rendered.of_kind("Deployment")
    env = env_of(pod_spec(deployment)["containers"][0])
    included = env["K8SMON_AGENT_INCLUDE_TYPES"]["value"].split(",")
    granted = {
        f"{resource}.{rule['apiGroups'][0]}" if rule["apiGroups"][0] else resource
        for rule in cluster
        for resource in rule["resources"]
    }
    assert set(included) == granted
    assert len(included) == len(granted), "no duplicates"
    for name in included:
        plural = name.split(".", 1)[0]
        assert not is_forbidden(plural=plural, kind=""), name
    for core in ("pods", "deployments.apps", "clusterrolebindings.rbac.authorization.k8s.io",
                 "networkpolicies.networking.k8s.io", "namespaces", "nodes"):
        assert core in included


def _environment(deployment: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet would set it (downward API resolved)."""
    resolved: dict[str, str] = {}
    for name, item in env_of(pod_spec(deployment)["containers"][0]).items():
        if "value" in item:
            resolved[name] = item["value"]
        else:
            assert item["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, name
            resolved[name] = NAMESPACE
    return resolved


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_agent_accepts_the_rendered_environment(case: str) -> None:
    rendered = _render(case)
    (deployment,) = rendered.of_kind("Deployment")
    config = AgentConfig.from_env(_environment(deployment))
    values = CASES[case]
    assert config.server_url == values["serverUrl"]
    assert config.cluster_id == values["clusterId"]
    assert config.namespace == NAMESPACE
    assert config.push_interval_s == 300.0 and config.full_push_interval_s == 21600.0
    assert "pods" in config.include_types
    if case == "existing-key":
        assert config.generate_key is False
        assert config.key_file == "/var/run/k8s-monitor/key/private-key.pem"
        mounts = pod_spec(deployment)["containers"][0]["volumeMounts"]
        key_mount = next(m for m in mounts if m["name"] == "key")
        assert key_mount["readOnly"] is True
        assert config.key_file.startswith(key_mount["mountPath"] + "/")
        (volume,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == "key"]
        assert volume["secret"]["secretName"] == "k8s-monitor-agent-key-precreated"
        assert volume["secret"]["defaultMode"] == 0o400
        assert pod_spec(deployment)["priorityClassName"] == "k8s-monitor-agent"
    else:
        assert config.generate_key is True
        assert config.key_secret_name == KEY_SECRET
    assert config.exclude_namespaces == frozenset(values.get("collect", {}).get(
        "excludeNamespaces", []))


def test_one_agent_replica_recreated() -> None:
    (deployment,) = _render("default").of_kind("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod_spec(deployment)["containers"][0]["command"] == ["python", "-m", "agent"]


@pytest.mark.parametrize("values_file", ci_values_files(AGENT), ids=lambda p: p.name)
def test_pods_are_locked_down(values_file: Path) -> None:
    rendered = render(AGENT, load_values(values_file))
    for doc in workloads(rendered):
        assert_secure_pod(doc)
        for container in containers(doc):
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    (account,) = rendered.of_kind("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    (deployment,) = rendered.of_kind("Deployment")
    assert pod_spec(deployment)["automountServiceAccountToken"] is True, "it reads the API"
    (test_pod,) = rendered.of_kind("Pod")
    assert pod_spec(test_pod)["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    ("case", "server_port"), [("default", 443), ("existing-key", 8443)]
)
def test_network_policy_allows_only_dns_api_server_and_monitor(
    case: str, server_port: int
) -> None:
    rendered = _render(case)
    (deployment,) = rendered.of_kind("Deployment")
    applying = [
        p for p in rendered.of_kind("NetworkPolicy")
        if selects(p["spec"]["podSelector"], pod_labels(deployment))
    ]
    assert len(applying) == 1
    spec = applying[0]["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in spec, "nothing may connect to the agent"
    ports = [sorted(p["port"] for p in rule["ports"]) for rule in spec["egress"]]
    assert ports == [[53, 53], [443, 6443], [server_port]]
    if case == "existing-key":
        assert spec["egress"][1]["to"] == [{"ipBlock": {"cidr": "10.0.0.10/32"}}]
        assert spec["egress"][2]["to"] == [{"ipBlock": {"cidr": "192.0.2.10/32"}}]
    (test_pod,) = rendered.of_kind("Pod")
    test_policies = [
        p for p in rendered.of_kind("NetworkPolicy")
        if selects(p["spec"]["podSelector"], pod_labels(test_pod))
    ]
    assert [p["metadata"]["name"] for p in test_policies] == [f"{FULLNAME}-test"]


def test_notes_tell_how_to_register_the_key() -> None:
    notes = _render("default").notes
    assert "k8smon clusters register ci-cluster --public-key" in notes
    assert KEY_SECRET in notes


def test_a_custom_key_secret_name_reaches_the_role_and_the_agent() -> None:
    rendered = render(AGENT, {**DEFAULT, "key": {"secretName": "agent-signing-key"}})
    _, namespaced = _agent_rules(rendered)
    assert allows(namespaced, verb="update", group="", resource="secrets",
                  name="agent-signing-key")
    assert not allows(namespaced, verb="get", group="", resource="secrets", name=KEY_SECRET)
    (deployment,) = rendered.of_kind("Deployment")
    assert AgentConfig.from_env(_environment(deployment)).key_secret_name == "agent-signing-key"
    assert rendered.one("Secret")["metadata"]["name"] == "agent-signing-key"


@pytest.mark.parametrize(
    ("server_url", "port"),
    [("http://monitor.internal", 80), ("https://monitor.internal/", 443),
     ("http://10.1.2.3:8000", 8000)],
)
def test_the_server_port_comes_from_the_url(server_url: str, port: int) -> None:
    rendered = render(AGENT, {**DEFAULT, "serverUrl": server_url})
    policy = rendered.named("NetworkPolicy", FULLNAME)
    assert policy["spec"]["egress"][-1]["ports"] == [{"port": port, "protocol": "TCP"}]
    explicit = render(AGENT, {**DEFAULT, "serverUrl": server_url,
                              "networkPolicy": {"server": {"port": 9443}}})
    egress = explicit.named("NetworkPolicy", FULLNAME)["spec"]["egress"]
    assert egress[-1]["ports"] == [{"port": 9443, "protocol": "TCP"}]


def test_the_notes_command_extracts_the_public_key_from_real_agent_logs(tmp_path: Path) -> None:
    """Run the NOTES' shell pipeline on the log lines the agent really writes."""
    key = AgentKey.generate()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())  # the agent's own log format
    logger = logging.getLogger("tests.helm.agent-notes")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    log_event(logger, "agent.starting", version="0.1.0")
    log_public_key(logger, LoadedKey(key, "generated"), key_id="ci-cluster-abc",
                   cluster_id="ci-cluster")
    log_event(logger, "push.done", objects=3)
    logger.removeHandler(handler)
    logs = tmp_path / "agent.log"
    logs.write_text(stream.getvalue(), encoding="utf-8")

    notes = _render("default").notes.splitlines()
    start = next(i for i, line in enumerate(notes) if "kubectl" in line and " logs " in line)
    end = next(i for i in range(start, len(notes)) if notes[i].strip().startswith(">"))
    pipeline = "\n".join(notes[start:end + 1])
    kubectl = pipeline.split("|", 1)[0]
    script = pipeline.replace(kubectl, f"cat {logs} ", 1).replace("agent-key.pub",
                                                                  str(tmp_path / "out.pub"))
    subprocess.run(["sh", "-c", script], check=True, timeout=60, cwd=tmp_path,
                   env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})
    saved = (tmp_path / "out.pub").read_text(encoding="ascii")
    assert saved == key.public_key_pem
    assert parse_public_key(saved) == key.public_key


# Built-in (and add-on) kinds our rules read, and where the API serves them (group, plural).
KIND_RESOURCES = {
    "Pod": ("", "pods"), "PodTemplate": ("", "podtemplates"), "Service": ("", "services"),
    "ServiceAccount": ("", "serviceaccounts"), "Namespace": ("", "namespaces"),
    "Node": ("", "nodes"), "ConfigMap": ("", "configmaps"),
    "ReplicationController": ("", "replicationcontrollers"),
    "LimitRange": ("", "limitranges"), "ResourceQuota": ("", "resourcequotas"),
    "Deployment": ("apps", "deployments"), "DaemonSet": ("apps", "daemonsets"),
    "StatefulSet": ("apps", "statefulsets"), "ReplicaSet": ("apps", "replicasets"),
    "Job": ("batch", "jobs"), "CronJob": ("batch", "cronjobs"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "Ingress": ("networking.k8s.io", "ingresses"),
    "Role": ("rbac.authorization.k8s.io", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
    "ClusterRole": ("rbac.authorization.k8s.io", "clusterroles"),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io", "clusterrolebindings"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "PriorityClass": ("scheduling.k8s.io", "priorityclasses"),
    "ValidatingWebhookConfiguration": ("admissionregistration.k8s.io",
                                       "validatingwebhookconfigurations"),
    "MutatingWebhookConfiguration": ("admissionregistration.k8s.io",
                                     "mutatingwebhookconfigurations"),
    "ValidatingAdmissionPolicy": ("admissionregistration.k8s.io",
                                  "validatingadmissionpolicies"),
    "ValidatingAdmissionPolicyBinding": ("admissionregistration.k8s.io",
                                         "validatingadmissionpolicybindings"),
    "CertificateSigningRequest": ("certificates.k8s.io", "certificatesigningrequests"),
    "DeploymentConfig": ("apps.openshift.io", "deploymentconfigs"),
    "ScaledObject": ("keda.sh", "scaledobjects"),
}
NEVER_COLLECTED = {"Secret"}  # rules about Secrets see them only in offline scans
# KM-608/KM-609 name every kind of the API removal tables as their applicability: they judge
# the apiVersion a manifest is written against, which on a live cluster is the version the
# agent lists, so the kinds in their tables are not kinds they need collected.
API_VERSION_RULES = {"KM-608", "KM-609"}


def _kinds_the_rules_read() -> set[str]:
    """Kinds named by rule metadata, plus kinds cluster rules look up by name."""
    from rules import default_rules  # noqa: PLC0415

    kinds = {
        kind
        for r in default_rules()
        if r.meta.id not in API_VERSION_RULES
        for kind in (r.meta.kinds or ())
    }
    pattern = re.compile(
        r"""(?:by_kind|in_namespace|select|cluster\.get)\(\s*(?:[^()]*?kind=)?"([A-Z]\w+)\""""
    )
    for source in (REPO_ROOT / "rules").rglob("*.py"):
        kinds |= set(pattern.findall(source.read_text(encoding="utf-8")))
    return kinds


def test_the_agent_may_read_every_kind_the_rules_evaluate() -> None:
    """A kind a rule needs but the ClusterRole does not grant would make that rule silently
    never fire on live clusters."""
    cluster, _ = _agent_rules(_render("default"))
    kinds = _kinds_the_rules_read() - NEVER_COLLECTED
    assert {"Pod", "Deployment", "ClusterRoleBinding", "NetworkPolicy"} <= kinds
    for kind in sorted(kinds):
        assert kind in KIND_RESOURCES, f"rules read {kind}: add where it is served to this table"
        group, plural = KIND_RESOURCES[kind]
        for verb in READ_VERBS:
            assert allows(cluster, verb=verb, group=group, resource=plural), f"{verb} {kind}"


def test_a_custom_key_secret_name_reaches_the_agent_without_looking_like_a_credential() -> None:
    rendered = render(AGENT, {**DEFAULT, "key": {**DEFAULT.get("key", {}),
                                                 "secretName": "team-a-agent-key"}})
    (deployment,) = rendered.of_kind("Deployment")
    environment = _environment(deployment)
    assert environment["K8SMON_AGENT_KEY_SECRET_NAME"] == "team-a-agent-key"
    assert AgentConfig.from_env(environment).key_secret_name == "team-a-agent-key"
    outcome = Engine.from_config(None).scan(rendered.documents, cluster="self-test")
    assert not [r for r in outcome.results if r.rule_id == "KM-402"]
