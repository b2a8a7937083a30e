"""`k8smon keygen` (a new Ed25519 key pair) and `k8smon signature verify` (explain a refusal)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from contracts import httpsig
from contracts.httpsig import Policy, SignatureError
from settings import Settings


@click.command()
@click.option(
    "--out",
    "out",
    default="k8smon-ed25519",
    show_default=True,
    help="path prefix: writes PREFIX.key (private, mode 0600) and PREFIX.pub",
)
@click.option("--force", is_flag=True, help="overwrite existing files")
def keygen(out: str, force: bool) -> None:
    """Write a new Ed25519 key pair (PKCS#8 and SubjectPublicKeyInfo PEM)."""
    from agent.signing import AgentKey  # noqa: PLC0415 - PyNaCl only when used

    private_path, public_path = Path(f"{out}.key"), Path(f"{out}.pub")
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise click.ClickException(f"{path} exists (use --force to overwrite)")
    key = AgentKey.generate()
    if force and private_path.exists():
        private_path.unlink()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.private_key_pem)
    public_path.write_text(key.public_key_pem, encoding="ascii")
    click.echo(f"private key: {private_path} (keep it secret; mode 0600)")
    click.echo(f"public key:  {public_path}")
    click.echo(f"fingerprint: {key.fingerprint}")


@click.group()
def signature() -> None:
    """Inspect HTTP Message Signatures (RFC 9421)."""


def _load_public_key(value: str) -> bytes:
    from ingest.keys import KeyFormatError, parse_public_key  # noqa: PLC0415

    path = Path(value)
    text = path.read_text(encoding="ascii", errors="replace") if path.is_file() else value
    try:
        return parse_public_key(text)
    except KeyFormatError as problem:
        raise click.ClickException(f"public key: {problem}") from None


@signature.command()
@click.option(
    "--request",
    "request_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="raw HTTP/1.1 request: request line, headers, blank line, body ('-': stdin)",
)
@click.option(
    "--public-key",
    "public_key",
    required=True,
    help="PEM file (BEGIN PUBLIC KEY) or base64 of the raw 32-byte key",
)
@click.option("--ignore-time", is_flag=True, help="do not check created/expires against now")
@click.option("--label", default=None, help="signature label (default: the first one)")
@click.option(
    "--scheme",
    default="https",
    show_default=True,
    help="scheme of the target URI when the request line has a path only",
)
@click.option(
    "--window",
    default=Settings().signature_window_seconds,  # the server's default (settings.config)
    show_default=True,
    help="accepted clock skew, seconds",
)
def verify(
    request_file: str,
    public_key: str,
    ignore_time: bool,
    label: str | None,
    scheme: str,
    window: int,
) -> None:
    """Rebuild the signature base of a captured request and verify it.

    Exit 0 when the signature verifies as RFC 9421 defines it (whatever it covers), 1 when it
    is refused. Whether the server's policy (required components and parameters, Content-Digest,
    freshness) would also accept it is reported separately.
    """
    from ingest.keys import ed25519_verifier  # noqa: PLC0415

    raw = sys.stdin.buffer.read() if request_file == "-" else Path(request_file).read_bytes()
    try:
        message = httpsig.parse_raw_request(raw, scheme=scheme)
    except ValueError as problem:
        raise click.ClickException(f"cannot read the request: {problem}") from None
    key = _load_public_key(public_key)
    now = None if ignore_time else time.time()
    try:
        parsed = httpsig.parse_signature(message, label=label)
        click.echo(f"label:   {parsed.label}")
        click.echo(f"keyid:   {parsed.key_id}")
        click.echo(f"covers:  {' '.join(parsed.component_names)}")
        base = httpsig.rebuild_base(message, parsed)
        click.echo("signature base:")
        click.echo(base)
        click.echo("")
        httpsig.verify_signature(message, parsed, verify=ed25519_verifier(key))
        if now is not None:
            _time_only(parsed, window=window, now=now)
    except SignatureError as problem:
        click.echo(f"verdict: REFUSED ({problem.reason.value}) {problem.detail}")
        sys.exit(1)
    click.echo("verdict: VERIFIED" + (" (time not checked)" if ignore_time else ""))
    try:
        httpsig.check_policy(message, parsed, policy=Policy(window_seconds=window), now=now)
    except SignatureError as problem:
        click.echo(f"server policy: would be REFUSED ({problem.reason.value}) {problem.detail}")
    else:
        note = " (time not checked)" if ignore_time else ""
        click.echo(
            f"server policy: would be accepted{note}, given a registered key and a fresh nonce"
        )


def _time_only(parsed: httpsig.ParsedSignature, *, window: int, now: float) -> None:
    """Freshness alone: created within the window, expires not passed."""
    created = parsed.params.get("created")
    if isinstance(created, int) and abs(now - created) > window:
        raise SignatureError(
            httpsig.Reason.STALE_SIGNATURE,
            f"created is {int(now - created)} s from now (window ±{window} s)",
        )
    expires = parsed.params.get("expires")
    if isinstance(expires, int) and expires < now:
        raise SignatureError(httpsig.Reason.EXPIRED_SIGNATURE, "the signature has expired")
