"""Configuration from `K8SMON_AGENT_*` variables: defaults, parsing and clear errors."""

from __future__ import annotations

import pytest

from agent.config import DEFAULT_EXCLUDED_TYPES, AgentConfig, ConfigError

BASE = {"K8SMON_AGENT_SERVER_URL": "https://monitor.internal/", "K8SMON_AGENT_CLUSTER_ID": "prod"}


def test_defaults() -> None:
    config = AgentConfig.from_env({**BASE, "K8SMON_AGENT_NAMESPACE": "monitoring"})
    assert config.server_url == "https://monitor.internal"
    assert config.cluster_id == "prod"
    assert config.namespace == "monitoring"
    assert config.exclude_types == DEFAULT_EXCLUDED_TYPES
    assert config.include_types == frozenset()
    assert config.generate_key is True
    assert config.push_interval_s == 300 and config.full_push_interval_s == 6 * 3600
    assert config.page_size == 500


def test_everything_set() -> None:
    config = AgentConfig.from_env(
        {
            **BASE,
            "K8SMON_AGENT_INCLUDE_TYPES": "pods, Deployments.apps ,",
            "K8SMON_AGENT_EXCLUDE_TYPES": "",
            "K8SMON_AGENT_INCLUDE_NAMESPACES": "shop,web",
            "K8SMON_AGENT_EXCLUDE_NAMESPACES": "kube-system",
            "K8SMON_AGENT_GENERATE_KEY": "false",
            "K8SMON_AGENT_PUSH_INTERVAL": "120",
            "K8SMON_AGENT_FULL_PUSH_INTERVAL": "3600",
            "K8SMON_AGENT_PAGE_SIZE": "250",
            "K8SMON_AGENT_KEY_ID": "prod-k2",
            "K8SMON_AGENT_CA_FILE": "/etc/ca.pem",
        }
    )
    assert config.include_types == {"pods", "deployments.apps"}
    assert config.exclude_types == frozenset()  # set but empty: nothing excluded
    assert config.include_namespaces == {"shop", "web"}
    assert config.exclude_namespaces == {"kube-system"}
    assert config.generate_key is False
    assert config.push_interval_s == 120 and config.full_push_interval_s == 3600
    assert config.page_size == 250
    assert config.key_id == "prod-k2" and config.ca_file == "/etc/ca.pem"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"K8SMON_AGENT_CLUSTER_ID": "x"}, "K8SMON_AGENT_SERVER_URL is required"),
        ({"K8SMON_AGENT_SERVER_URL": "https://x"}, "K8SMON_AGENT_CLUSTER_ID is required"),
        ({**BASE, "K8SMON_AGENT_PUSH_INTERVAL": "soon"}, "PUSH_INTERVAL must be a number"),
        ({**BASE, "K8SMON_AGENT_PING_INTERVAL": "-1"}, "PING_INTERVAL must be positive"),
        ({**BASE, "K8SMON_AGENT_GENERATE_KEY": "maybe"}, "GENERATE_KEY must be true or false"),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AgentConfig.from_env(env)
