"""KubeClient: in-cluster configuration (service-account token and CA) and error mapping."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kubernetes.config import incluster_config

from agent.collect import CollectOptions, collect
from agent.kube import KubeClient, KubeError
from tests.fakes.kube_api import KubeApiEmulator
from tests.fakes.kube_objects import small_cluster


def test_in_cluster_configuration_uses_the_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, ca = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("sa-token-123", encoding="ascii")
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    client = KubeClient.connect(kubeconfig=None, timeout_s=5)
    assert client.host == "https://10.96.0.1:443"
    configuration = client._api.configuration
    assert configuration.ssl_ca_cert == str(ca)
    assert configuration.auth_settings()["BearerToken"]["value"].lower() == "bearer sa-token-123"


def test_errors_carry_status_and_reason(kube: KubeClient, emulator: KubeApiEmulator) -> None:
    with pytest.raises(KubeError) as missing:
        kube.get("/api/v1/namespaces/shop/configmaps/nope")
    assert missing.value.status == 404
    assert missing.value.reason == "NotFound"
    emulator.forbid("pods")
    with pytest.raises(KubeError) as forbidden:
        kube.get("/api/v1/pods", query=[("limit", "1")])
    assert forbidden.value.status == 403
    assert "cannot list resource" in forbidden.value.message


def test_a_wrong_token_is_a_401(kubeconfig: Path, emulator: KubeApiEmulator) -> None:
    text = kubeconfig.read_text().replace(emulator.token, "stolen")
    kubeconfig.write_text(text)
    client = KubeClient.connect(kubeconfig=str(kubeconfig), timeout_s=5)
    with pytest.raises(KubeError) as refused:
        client.get("/version")
    assert refused.value.status == 401


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_collects_in_cluster_over_tls_with_the_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with KubeApiEmulator(small_cluster(), tls_dir=tmp_path) as api:
        token = tmp_path / "token"
        token.write_text(api.token, encoding="ascii")
        monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
        monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(api.port))
        client = KubeClient.connect(kubeconfig=None, timeout_s=10)
        collection = collect(client, CollectOptions())
    assert collection.object_counts["Pod"] == 2
    assert collection.errors == {}


def test_throttled_lists_are_retried_after_the_retry_after(
    kubeconfig: Path, emulator: KubeApiEmulator
) -> None:
    slept: list[float] = []
    client = KubeClient.connect(kubeconfig=str(kubeconfig), timeout_s=5, sleep=slept.append)
    emulator.throttle("configmaps", times=2, retry_after=3)
    collection = collect(client, CollectOptions(include_types=frozenset({"configmaps"})))
    assert collection.object_counts["ConfigMap"] == 2
    assert collection.errors == {}
    assert slept == [3, 3]


def test_a_type_throttled_for_good_fails_alone(kubeconfig: Path, emulator: KubeApiEmulator) -> None:
    slept: list[float] = []
    client = KubeClient.connect(kubeconfig=str(kubeconfig), timeout_s=5, sleep=slept.append)
    emulator.throttle("configmaps", times=100, retry_after=60)
    options = CollectOptions(include_types=frozenset({"configmaps", "pods"}))
    collection = collect(client, options)
    assert collection.errors["configmaps"].startswith("429 TooManyRequests")
    assert ("v1", "ConfigMap") in collection.failed_kinds
    assert collection.object_counts["Pod"] == 2
    assert slept == [10, 10]  # Retry-After capped, 3 attempts in all
