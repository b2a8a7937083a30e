"""`k8smon admin bootstrap`: create the first admin key with direct database access."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def admin() -> None:
    """Server administration that needs direct database access."""


@admin.command()
@click.option("--name", required=True, help="who holds the key (recorded in the audit log)")
@click.option(
    "--public-key",
    "public_key",
    default=None,
    help="PEM file or base64 of an existing Ed25519 public key",
)
@click.option(
    "--out", default=None, help="generate a key pair instead, writing OUT.key and OUT.pub"
)
@click.option("--key-id", default=None, help="key id (default: the name)")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="admin", show_default=True)
def bootstrap(
    name: str, public_key: str | None, out: str | None, key_id: str | None, role: str
) -> None:
    """Register an admin key (the first one, or a break-glass one) straight in the database.

    Every later key and cluster is managed through the signed admin API.
    """
    from cli.runtime import open_runtime  # noqa: PLC0415
    from ingest.keys import KeyFormatError, fingerprint, parse_public_key  # noqa: PLC0415
    from store import admin_keys, audit  # noqa: PLC0415
    from store.errors import KeyExists  # noqa: PLC0415

    if (public_key is None) == (out is None):
        raise click.UsageError("give exactly one of --public-key and --out")
    if out is not None:
        from agent.signing import AgentKey  # noqa: PLC0415

        private_path, public_path = Path(f"{out}.key"), Path(f"{out}.pub")
        if private_path.exists() or public_path.exists():
            raise click.ClickException(f"{private_path} or {public_path} exists")
        generated = AgentKey.generate()
        private_path.touch(mode=0o600)
        private_path.write_text(generated.private_key_pem, encoding="ascii")
        public_path.write_text(generated.public_key_pem, encoding="ascii")
        raw = generated.public_key
        click.echo(f"wrote {private_path} (mode 0600) and {public_path}")
    else:
        assert public_key is not None
        path = Path(public_key)
        text = (
            path.read_text(encoding="ascii", errors="replace") if path.is_file() else (public_key)
        )
        try:
            raw = parse_public_key(text)
        except KeyFormatError as problem:
            raise click.ClickException(f"public key: {problem}") from None
    runtime = open_runtime()
    with runtime.sessions() as session:
        try:
            key = admin_keys.create_admin_key(
                session, name, role=role, key_id=key_id or name, public_key=raw
            )
        except KeyExists as clash:
            raise click.ClickException(f"an admin key named {clash} already exists") from None
        audit.record_action(
            session,
            actor="bootstrap",
            action="admin_keys.create",
            target=name,
            details={"key_id": key.key_id, "role": role},
            source="cli",
        )
        session.commit()
    click.echo(f"admin key {key.key_id!r} for {name} ({role}), fingerprint {fingerprint(raw)}")
