"""`k8smon keys`: list and revoke admin keys (the signed admin API's own keys)."""

from __future__ import annotations

from urllib.parse import quote

import click

from cli.client import AdminClient
from cli.output import Output, api_command

ADMIN_KEY_COLUMNS = [
    ("key_id", "key id"),
    ("name", "name"),
    ("role", "role"),
    ("fingerprint", "fingerprint"),
    ("created_at", "created"),
    ("revoked_at", "revoked"),
]


@click.group("keys")
def admin_keys() -> None:
    """List and revoke admin keys (signed admin API; `k8smon admin bootstrap` adds them)."""


@admin_keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="include revoked keys")
@api_command()
def list_(*, client: AdminClient, out: Output, include_revoked: bool) -> None:
    """List admin keys (active ones; `--all` adds revoked keys)."""
    keys = client.get("/v1/admin/keys", all="1" if include_revoked else None)["keys"]
    out.rows(
        keys,
        ADMIN_KEY_COLUMNS,
        title="Admin keys",
        empty="no admin keys",
        style=lambda k: "dim" if k.get("revoked_at") else None,
    )


@admin_keys.command()
@click.argument("key_id")
@api_command()
def revoke(*, client: AdminClient, out: Output, key_id: str) -> None:
    """Revoke the admin key KEY_ID: its requests are refused from now on."""
    key = client.delete(f"/v1/admin/keys/{quote(key_id, safe='')}")
    out.record(key, fields=ADMIN_KEY_COLUMNS)
