"""`k8smon keygen`, `k8smon signature verify` (on the RFC 9421 example) and `admin bootstrap`."""

from __future__ import annotations

import stat
import time
from pathlib import Path

from click.testing import CliRunner
from nacl.signing import SigningKey
from sqlalchemy import select

from agent.signing import AgentKey
from cli.main import main
from contracts import httpsig
from contracts.httpsig import HttpRequest
from ingest.keys import parse_public_key, public_key_pem
from store.db import make_engine, make_session_factory
from store.models import AdminKey, AuditEntry
from tests.httpsig.test_rfc9421 import B14_PUBLIC, B26_INPUT, B26_SIGNATURE, TEST_REQUEST


def _rfc_request(tmp_path: Path, *, tamper: bool = False, lf: bool = False) -> Path:
    head, body = TEST_REQUEST.split(b"\r\n\r\n", 1)
    raw = (
        head
        + f"\r\nSignature-Input: {B26_INPUT}\r\nSignature: {B26_SIGNATURE}".encode()
        + b"\r\n\r\n"
        + body
    )
    if tamper:
        raw = raw.replace(b"POST /foo", b"POST /bar")
    if lf:
        raw = raw.replace(b"\r\n", b"\n")
    path = tmp_path / "request.http"
    path.write_bytes(raw)
    return path


def _public_pem(tmp_path: Path) -> Path:
    path = tmp_path / "rfc.pub"
    path.write_text(f"-----BEGIN PUBLIC KEY-----\n{B14_PUBLIC}\n-----END PUBLIC KEY-----\n")
    return path


def test_verify_rfc_example_with_time_check_off(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "signature",
            "verify",
            "--request",
            str(_rfc_request(tmp_path, lf=True)),
            "--public-key",
            str(_public_pem(tmp_path)),
            "--ignore-time",
        ],
    )
    assert result.exit_code == 0, result.output
    assert '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" ' in (
        result.output
    )
    assert '"@authority": example.com' in result.output
    assert "verdict: VERIFIED" in result.output
    # The RFC example covers neither content-digest nor a nonce: our server would refuse it.
    assert "server policy: would be REFUSED (missing_component)" in result.output


def test_verify_rfc_example_is_stale_with_the_clock_on(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "signature",
            "verify",
            "--request",
            str(_rfc_request(tmp_path)),
            "--public-key",
            B14_PUBLIC,
        ],
    )
    assert result.exit_code == 1
    assert "verdict: REFUSED (stale_signature)" in result.output


def test_verify_tampered_request_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "signature",
            "verify",
            "--request",
            str(_rfc_request(tmp_path, tamper=True)),
            "--public-key",
            str(_public_pem(tmp_path)),
            "--ignore-time",
        ],
    )
    assert result.exit_code == 1
    assert '"@path": /bar' in result.output
    assert "verdict: REFUSED (bad_signature)" in result.output


def test_verify_a_request_our_agent_signed_satisfies_the_policy(tmp_path: Path) -> None:
    key = SigningKey.generate()
    body = b'{"schema": "k8s-monitor/telemetry/v1", "agent_version": "1"}'
    request = HttpRequest(
        "POST",
        "https://ingest.example/v1/clusters/c1/telemetry",
        [("Host", "ingest.example"), ("Content-Type", "application/json")],
        body,
    )
    added = httpsig.sign_request(
        request, key_id="c1-k", sign=lambda b: key.sign(b).signature, created=int(time.time())
    )
    lines = [
        "POST /v1/clusters/c1/telemetry HTTP/1.1",
        "Host: ingest.example",
        "Content-Type: application/json",
        *(f"{k}: {v}" for k, v in added.items()),
    ]
    path = tmp_path / "push.http"
    path.write_bytes(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    pem = tmp_path / "agent.pub"
    pem.write_text(public_key_pem(bytes(key.verify_key)))
    result = CliRunner().invoke(
        main, ["signature", "verify", "--request", str(path), "--public-key", str(pem)]
    )
    assert result.exit_code == 0, result.output
    assert "server policy: would be accepted" in result.output


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    prefix = tmp_path / "agent"
    result = CliRunner().invoke(main, ["keygen", "--out", str(prefix)])
    assert result.exit_code == 0, result.output
    private = Path(f"{prefix}.key")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = AgentKey.load(private.read_text())
    assert parse_public_key(Path(f"{prefix}.pub").read_text()) == key.public_key
    assert key.fingerprint in result.output
    again = CliRunner().invoke(main, ["keygen", "--out", str(prefix)])
    assert again.exit_code != 0 and "exists" in again.output


def test_admin_bootstrap_creates_the_first_admin_key(
    tmp_path: Path, postgres_database, pg_engine
) -> None:
    env = {
        "DATABASE_URL": postgres_database.url,
        "K8SMON_INSTANCE_PATH": str(tmp_path),
        "K8SMON_ENV": "embedded",
        "REDIS_URL": "",
    }
    name = f"alice-{time.time_ns()}"
    result = CliRunner(env=env).invoke(
        main, ["admin", "bootstrap", "--name", name, "--out", str(tmp_path / "alice")]
    )
    assert result.exit_code == 0, result.output
    sessions = make_session_factory(make_engine(postgres_database.url))
    with sessions() as session:
        key = session.scalar(select(AdminKey).where(AdminKey.name == name))
        assert key is not None and key.role == "admin" and key.key_id == name
        private = AgentKey.load((tmp_path / "alice.key").read_text())
        assert key.public_key == private.public_key
        assert session.scalar(select(AuditEntry).where(AuditEntry.target == name)) is not None
    duplicate = CliRunner(env=env).invoke(
        main, ["admin", "bootstrap", "--name", name, "--public-key", str(tmp_path / "alice.pub")]
    )
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
