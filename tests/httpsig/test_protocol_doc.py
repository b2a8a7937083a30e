"""docs/protocol.md's worked example is re-signed here, so the page cannot drift from the code."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from click.testing import CliRunner
from nacl.signing import SigningKey

from cli.main import main
from contracts.httpsig import HttpRequest, parse_signature, rebuild_base, sign_request
from tests.httpsig.test_rfc9421 import B14_PRIVATE, B14_PUBLIC

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_worked_example_matches_the_signer() -> None:
    text = DOC.read_text(encoding="utf-8")
    raw_http = next(b for b in _blocks(text, "http") if "prod-eu-1" in b)
    head, body = raw_http.split("\n\n", 1)
    body_bytes = body.strip("\n").encode()
    documented = dict(line.split(": ", 1) for line in head.splitlines()[1:])

    key = SigningKey(base64.b64decode(B14_PRIVATE)[-32:])
    headers = [("Host", documented["Host"]), ("Content-Type", documented["Content-Type"])]
    request = HttpRequest(
        "POST", f"https://{documented['Host']}/v1/clusters/prod-eu-1/telemetry", headers, body_bytes
    )
    created = int(re.search(r"created=(\d+)", documented["Signature-Input"]).group(1))
    nonce = re.search(r'nonce="([^"]+)"', documented["Signature-Input"]).group(1)
    added = sign_request(
        request,
        key_id="prod-eu-1-2026a",
        sign=lambda b: key.sign(b).signature,
        created=created,
        nonce=nonce,
    )
    for name in ("Content-Digest", "Signature-Input", "Signature"):
        assert added[name] == documented[name], name

    signed = HttpRequest(request.method, request.url, [*headers, *added.items()], body_bytes)
    base = rebuild_base(signed, parse_signature(signed))
    assert f"```\n{base}\n```" in text


def test_worked_example_verifies_with_the_cli(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    raw_http = next(b for b in _blocks(text, "http") if "prod-eu-1" in b)
    head, body = raw_http.split("\n\n", 1)
    request_file = tmp_path / "example.http"
    request_file.write_bytes(head.encode() + b"\n\n" + body.strip("\n").encode())
    result = CliRunner().invoke(
        main,
        [
            "signature",
            "verify",
            "--request",
            str(request_file),
            "--public-key",
            B14_PUBLIC,
            "--ignore-time",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "verdict: VERIFIED" in result.output
    assert "server policy: would be accepted" in result.output
