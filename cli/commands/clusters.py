"""`k8smon clusters`: register clusters, list and show them, rotate and revoke agent keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from cli.client import AdminClient
from cli.output import Col, Output, api_command, parse_labels

CLUSTER_COLUMNS = [
    Col("id", "cluster"),
    Col("status", "status"),
    Col("team", "team"),
    Col("channel", "channel"),
    Col("labels", "labels", wide=True),
    Col("active_keys", "keys"),
    Col("last_telemetry_at", "last telemetry", age=True),
]
KEY_COLUMNS = [
    Col("key_id", "key id"),
    Col("fingerprint", "fingerprint"),
    Col("created_at", "created", age=True),
    Col("revoked_at", "revoked", age=True),
]


def _public_key(path: str) -> tuple[str, bytes]:
    """The PEM text of a public key file and its raw 32 bytes (checked locally first)."""
    from ingest.keys import KeyFormatError, parse_public_key  # noqa: PLC0415

    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError as problem:
        raise click.BadParameter(
            f"cannot read {path}: {problem.strerror}", param_hint="--public-key"
        ) from None
    try:
        return text, parse_public_key(text)
    except KeyFormatError as problem:
        raise click.BadParameter(f"{path}: {problem}", param_hint="--public-key") from None


def _key_spec(cluster_id: str, path: str, key_id: str | None) -> dict[str, str]:
    from agent.signing import default_key_id  # noqa: PLC0415

    text, raw = _public_key(path)
    return {"key_id": key_id or default_key_id(cluster_id, raw), "public_key": text}


def _row(cluster: dict[str, Any]) -> dict[str, Any]:
    keys = cluster.get("keys") or []
    return {**cluster, "active_keys": sum(1 for k in keys if not k.get("revoked_at"))}


def _path(cluster_id: str) -> str:
    return f"/v1/admin/clusters/{quote(cluster_id, safe='')}"


@click.group()
def clusters() -> None:
    """Register clusters and manage their agents' keys (signed admin API)."""


@clusters.command()
@click.argument("name")
@click.option(
    "--public-key",
    "public_key",
    required=True,
    type=click.Path(dir_okay=False),
    help="the agent's public key (PEM, from `k8smon keygen`)",
)
@click.option("--key-id", default=None, help="key id (default: NAME-<fingerprint prefix>)")
@click.option("--display-name", default=None)
@click.option("--team", default=None, help="owning team")
@click.option("--channel", default=None, help="Slack webhook URL or channel for reports")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="repeatable")
@api_command()
def register(
    *,
    client: AdminClient,
    out: Output,
    name: str,
    public_key: str,
    key_id: str | None,
    display_name: str | None,
    team: str | None,
    channel: str | None,
    labels: tuple[str, ...],
) -> None:
    """Register the cluster NAME with its agent's public key."""
    body: dict[str, Any] = {"id": name, "keys": [_key_spec(name, public_key, key_id)]}
    for field, value in (("display_name", display_name), ("team", team), ("channel", channel)):
        if value is not None:
            body[field] = value
    if labels:
        body["labels"] = parse_labels(labels)
    cluster = client.post("/v1/admin/clusters", body)
    if out.for_people:
        out.note(
            f"cluster {cluster['id']} registered; agent key id: {cluster['keys'][0]['key_id']}"
        )
    out.record(_row(cluster), fields=[*CLUSTER_COLUMNS, ("created_at", "created")])


@clusters.command("list")
@click.option("--status", type=click.Choice(["active", "disabled"]), default=None)
@api_command()
def list_(*, client: AdminClient, out: Output, status: str | None) -> None:
    """List registered clusters."""
    rows = [_row(c) for c in client.get("/v1/admin/clusters", status=status)["clusters"]]
    out.rows(
        rows,
        CLUSTER_COLUMNS,
        title="Clusters",
        empty="no clusters registered",
        style=lambda r: "dim" if r.get("status") == "disabled" else None,
    )


@clusters.command()
@click.argument("name")
@api_command()
def show(*, client: AdminClient, out: Output, name: str) -> None:
    """Show one cluster and its keys."""
    cluster = client.get(_path(name))
    if not out.for_people:
        out.record(_row(cluster))
        return
    out.record(
        _row(cluster),
        fields=[
            *CLUSTER_COLUMNS,
            ("display_name", "display name"),
            ("created_at", "created"),
            ("current_digest", "state digest"),
            ("state_updated_at", "state updated"),
        ],
    )
    out.rows(
        cluster.get("keys") or [],
        KEY_COLUMNS,
        title="Keys",
        style=lambda k: "dim" if k.get("revoked_at") else None,
    )


@clusters.command()
@click.argument("name")
@click.option("--display-name", default=None)
@click.option("--team", default=None)
@click.option("--channel", default=None)
@click.option(
    "--label", "labels", multiple=True, metavar="KEY=VALUE", help="replaces all labels; repeatable"
)
@api_command()
def update(
    *,
    client: AdminClient,
    out: Output,
    name: str,
    display_name: str | None,
    team: str | None,
    channel: str | None,
    labels: tuple[str, ...],
) -> None:
    """Change a cluster's display name, team, channel or labels."""
    changes: dict[str, Any] = {
        k: v
        for k, v in (("display_name", display_name), ("team", team), ("channel", channel))
        if v is not None
    }
    if labels:
        changes["labels"] = parse_labels(labels)
    if not changes:
        raise click.UsageError(
            "nothing to change: give --team, --channel, --label or --display-name"
        )
    out.record(_row(client.patch(_path(name), changes)), fields=CLUSTER_COLUMNS)


@clusters.command("add-key")
@click.argument("name")
@click.option("--public-key", "public_key", required=True, type=click.Path(dir_okay=False))
@click.option("--key-id", default=None)
@api_command()
def add_key(
    *, client: AdminClient, out: Output, name: str, public_key: str, key_id: str | None
) -> None:
    """Add a second agent key to NAME (key rotation: at most two active keys)."""
    key = client.post(f"{_path(name)}/keys", _key_spec(name, public_key, key_id))
    out.record(key, fields=KEY_COLUMNS)


@clusters.command("revoke-key")
@click.argument("name")
@click.argument("key_id")
@api_command()
def revoke_key(*, client: AdminClient, out: Output, name: str, key_id: str) -> None:
    """Revoke an agent key of NAME (its pushes are refused from now on)."""
    key = client.delete(f"{_path(name)}/keys/{quote(key_id, safe='')}")
    out.record(key, fields=KEY_COLUMNS)


@clusters.command()
@click.argument("name")
@api_command()
def disable(*, client: AdminClient, out: Output, name: str) -> None:
    """Disable NAME: its pushes are refused and it is no longer scanned."""
    out.record(_row(client.post(f"{_path(name)}/disable")), fields=CLUSTER_COLUMNS)
