"""Keys: formats, signatures the httpsig verifier accepts, and the agent's own key Secret."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from nacl.signing import VerifyKey

from agent.keys import PRIVATE_KEY_FIELD, KeyUnavailable, load_or_create_key
from agent.kube import KubeClient
from agent.signing import AgentKey, KeyFormatError, signed_headers
from contracts.httpsig import HttpRequest, Policy, parse_signature, verify_request
from tests.fakes.kube_api import FakeCluster, KubeApiEmulator


def test_key_formats_round_trip(agent_key: AgentKey) -> None:
    seed = bytes(agent_key.signing_key)
    for form in (agent_key.private_key_pem, base64.b64encode(seed).decode(), seed):
        assert AgentKey.load(form).public_key == agent_key.public_key
    with pytest.raises(KeyFormatError):
        AgentKey.load("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyFormatError):
        AgentKey.load("not a key")
    assert agent_key.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA")
    assert agent_key.fingerprint.startswith("SHA256:") and len(agent_key.fingerprint) == 50


def test_signed_request_covers_the_required_components(agent_key: AgentKey) -> None:
    url = "https://monitor.internal:8443/v1/clusters/prod-eu/snapshots"
    headers = [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]
    body = b"\x1f\x8b fake gzip bytes"
    added = signed_headers(
        agent_key, key_id="prod-eu-1", method="POST", url=url, headers=headers, body=body
    )
    request = HttpRequest("POST", url, headers=[*headers, *added.items()], body=body)
    verify_key = VerifyKey(agent_key.public_key)
    parsed = verify_request(
        request,
        verify=lambda base, sig: verify_key.verify(base, sig) is not None,
        policy=Policy(window_seconds=300),
        now=time.time(),
    )
    assert parsed.key_id == "prod-eu-1"
    assert parsed.component_names == (
        "@method",
        "@authority",
        "@path",
        "content-type",
        "content-digest",
    )
    assert parsed.params["alg"] == "ed25519"
    assert set(parsed.params) >= {"created", "keyid", "nonce"}
    again = signed_headers(
        agent_key, key_id="prod-eu-1", method="POST", url=url, headers=headers, body=body
    )
    second = parse_signature(HttpRequest("POST", url, [*headers, *again.items()], body))
    assert second.params["nonce"] != parsed.params["nonce"]


def test_key_file_wins(key_file: Path, agent_key: AgentKey) -> None:
    loaded = load_or_create_key(
        key_file=str(key_file), kube=None, namespace=None, secret_name="k", generate=True
    )
    assert loaded.source == "file"
    assert loaded.key.public_key == agent_key.public_key


def test_generated_once_then_read_back_from_its_own_secret(
    kube: KubeClient, emulator: KubeApiEmulator, cluster: FakeCluster, tmp_path: Path
) -> None:
    args = dict(
        key_file=str(tmp_path / "absent.pem"),
        kube=kube,
        namespace="monitoring",
        secret_name="k8s-monitor-agent-key",
        generate=True,
    )
    first = load_or_create_key(**args)
    assert first.source == "generated"
    second = load_or_create_key(**args)
    assert second.source == "secret"
    assert second.key.public_key == first.key.public_key

    res = cluster.resource("", "v1", "secrets")
    stored = cluster.get(res, "monitoring", "k8s-monitor-agent-key")
    assert stored is not None
    assert AgentKey.load(base64.b64decode(stored["data"][PRIVATE_KEY_FIELD])).public_key == (
        first.key.public_key
    )
    touched = {(r.method, r.path) for r in emulator.requests}
    assert touched == {
        ("GET", "/api/v1/namespaces/monitoring/secrets/k8s-monitor-agent-key"),
        ("POST", "/api/v1/namespaces/monitoring/secrets"),
    }


def test_an_empty_precreated_secret_is_filled_in(
    kube: KubeClient, emulator: KubeApiEmulator, cluster: FakeCluster, tmp_path: Path
) -> None:
    cluster.add(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "agent-key", "namespace": "monitoring"},
            "type": "Opaque",
        }
    )
    loaded = load_or_create_key(
        key_file=None, kube=kube, namespace="monitoring", secret_name="agent-key", generate=True
    )
    assert loaded.source == "generated"
    assert ("PUT", "/api/v1/namespaces/monitoring/secrets/agent-key") in {
        (r.method, r.path) for r in emulator.requests
    }
    again = load_or_create_key(
        key_file=None, kube=kube, namespace="monitoring", secret_name="agent-key", generate=False
    )
    assert again.key.public_key == loaded.key.public_key


def test_no_key_and_generation_off_is_an_error(kube: KubeClient, tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailable):
        load_or_create_key(
            key_file=str(tmp_path / "absent.pem"),
            kube=kube,
            namespace="monitoring",
            secret_name="agent-key",
            generate=False,
        )


def test_a_corrupt_key_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "private-key.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyUnavailable, match="cannot use the key file"):
        load_or_create_key(
            key_file=str(bad), kube=None, namespace=None, secret_name="k", generate=True
        )
