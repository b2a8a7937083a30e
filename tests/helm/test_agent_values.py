"""Agent chart values for a real install (issue 15 point 6): extraEnv, a private CA bundle from a
ConfigMap or Secret (K8SMON_AGENT_CA_FILE), an HTTPS proxy (HTTPS_PROXY/NO_PROXY plus egress to
it), and extraResources appended to the default resource list."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest

from agent.config import AgentConfig
from tests.helm.charts import (
    AGENT,
    NAMESPACE,
    chart_dir,
    env_of,
    load_values,
    pod_spec,
    render,
)

DEFAULT = load_values(chart_dir(AGENT) / "ci" / "default-values.yaml")
PROXY_CA = load_values(chart_dir(AGENT) / "ci" / "proxy-ca-values.yaml")


def _deployment(values: dict[str, Any]) -> dict[str, Any]:
    (deployment,) = render(AGENT, values).of_kind("Deployment")
    return deployment


def _environment(deployment: dict[str, Any]) -> dict[str, str]:
    resolved = {}
    for name, item in env_of(pod_spec(deployment)["containers"][0]).items():
        resolved[name] = item.get("value", NAMESPACE)
    return resolved


@pytest.mark.parametrize("source", ["configMap", "secret"])
def test_the_ca_bundle_is_mounted_where_the_agent_reads_it(source: str) -> None:
    values = {**DEFAULT, "caBundle": {source: "corp-ca", "key": "bundle.pem"}}
    deployment = _deployment(values)
    config = AgentConfig.from_env(_environment(deployment))
    assert config.ca_file is not None
    spec = pod_spec(deployment)
    (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "ca-bundle"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "ca-bundle"]
    assert mount["readOnly"] is True
    (item,) = volume[source]["items"]
    assert str(PurePosixPath(mount["mountPath"]) / item["path"]) == config.ca_file
    assert item["key"] == "bundle.pem"
    name = volume[source].get("name") or volume[source].get("secretName")
    assert name == "corp-ca"


def test_no_ca_bundle_means_system_cas() -> None:
    deployment = _deployment(DEFAULT)
    assert AgentConfig.from_env(_environment(deployment)).ca_file is None
    assert all(v["name"] != "ca-bundle" for v in pod_spec(deployment)["volumes"])


def test_a_configmap_and_a_secret_together_are_refused() -> None:
    with pytest.raises(Exception, match="configMap or secret, not both"):
        render(AGENT, {**DEFAULT, "caBundle": {"configMap": "a", "secret": "b"}})


def _egress_ports(rendered: Any) -> list[int]:
    """Ports the agent pod (not the helm test pod) may send to."""
    (policy,) = [
        p for p in rendered.of_kind("NetworkPolicy") if not p["metadata"]["name"].endswith("-test")
    ]
    return [port["port"] for rule in policy["spec"]["egress"] for port in rule.get("ports", [])]


def test_proxy_extra_env_and_egress_to_the_proxy() -> None:
    rendered = render(AGENT, PROXY_CA)
    (deployment,) = rendered.of_kind("Deployment")
    env = _environment(deployment)
    assert env["HTTPS_PROXY"] == "http://proxy.internal:3128"
    assert env["NO_PROXY"] == "10.0.0.0/8,.cluster.local"
    assert env["K8SMON_AGENT_LOG_LEVEL_HTTP"] == "WARNING"
    policy = next(
        p for p in rendered.of_kind("NetworkPolicy") if not p["metadata"]["name"].endswith("-test")
    )
    ports = [port["port"] for rule in policy["spec"]["egress"] for port in rule.get("ports", [])]
    assert 3128 in ports
    # Without a proxy there is no such egress.
    plain = render(AGENT, DEFAULT)
    policy = next(
        p for p in plain.of_kind("NetworkPolicy") if not p["metadata"]["name"].endswith("-test")
    )
    ports = [port["port"] for rule in policy["spec"]["egress"] for port in rule.get("ports", [])]
    assert 3128 not in ports


def test_extra_resources_are_appended_to_the_defaults() -> None:
    default_rules = render(AGENT, DEFAULT).one("ClusterRole")["rules"]
    rendered = render(AGENT, PROXY_CA)
    rules = rendered.one("ClusterRole")["rules"]
    assert rules[: len(default_rules)] == default_rules, "the defaults are kept, not replaced"
    assert rules[len(default_rules) :] == [
        {
            "apiGroups": ["cert-manager.io"],
            "resources": ["certificates", "issuers", "clusterissuers"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    (deployment,) = rendered.of_kind("Deployment")
    included = _environment(deployment)["K8SMON_AGENT_INCLUDE_TYPES"].split(",")
    assert included[-3:] == [
        "certificates.cert-manager.io",
        "issuers.cert-manager.io",
        "clusterissuers.cert-manager.io",
    ]
    assert f"can read {len(rules)} API groups" in rendered.notes


@pytest.mark.parametrize(
    "extra",
    [
        [{"apiGroup": "", "resources": ["secrets"]}],
        [{"apiGroup": "example.com", "resources": ["*"]}],
        [{"apiGroup": "*", "resources": ["things"]}],
    ],
)
def test_extra_resources_never_reach_secrets_or_wildcards(extra: list[dict[str, Any]]) -> None:
    with pytest.raises(Exception):
        render(AGENT, {**DEFAULT, "collect": {"extraResources": extra}})


def test_helm_test_takes_the_agents_way_out() -> None:
    """The `helm test` Pod reaches the server through the same proxy, trusting the same CA."""
    rendered = render(AGENT, PROXY_CA)
    (pod,) = rendered.of_kind("Pod")
    (container,) = pod_spec(pod)["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HTTPS_PROXY"] == "http://proxy.internal:3128"
    assert env["NO_PROXY"] == "10.0.0.0/8,.cluster.local"
    (mount,) = container["volumeMounts"]
    assert env["SSL_CERT_FILE"] == f"{mount['mountPath']}/ca.crt"
    (policy,) = [
        p for p in rendered.of_kind("NetworkPolicy") if p["metadata"]["name"].endswith("-test")
    ]
    ports = [port["port"] for rule in policy["spec"]["egress"] for port in rule.get("ports", [])]
    assert 3128 in ports
