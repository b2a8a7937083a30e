"""`k8smon users`: local accounts of the admin pages (direct database access, run on the server)."""

from __future__ import annotations

import sys

import click

from cli.output import Col, Output, output_option
from cli.runtime import open_runtime
from store import accounts
from store.audit import record_action
from store.db import unit_of_work

COLUMNS = [Col("username", "account"), Col("role", "role"), Col("state", "state")]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group()
def users() -> None:
    """Accounts that sign in to the admin pages (roles: viewer, admin)."""


@users.command("add")
@click.argument("name")
@click.option(
    "--role", type=click.Choice(accounts.ACCOUNT_ROLES), default="viewer", show_default=True
)
@click.option(
    "--password-stdin", is_flag=True, help="read the password from the first line of standard input"
)
def add(name: str, role: str, password_stdin: bool) -> None:
    """Create the account NAME (asks for its password twice unless --password-stdin)."""
    password = _read_password(password_stdin)
    runtime = open_runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            accounts.create_account(session, name, password=password, role=role)
            record_action(
                session,
                actor="cli",
                action="account.create",
                target=name,
                details={"role": role},
                source="k8smon users add",
            )
    except ValueError as problem:
        raise click.ClickException(str(problem)) from None
    except accounts.AccountExists:
        raise click.ClickException(f"an account named {name!r} already exists") from None
    click.echo(f"account {name} created ({role})")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True)
def passwd(name: str, password_stdin: bool) -> None:
    """Set a new password for the account NAME."""
    password = _read_password(password_stdin)
    runtime = open_runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            accounts.set_password(session, name, password=password)
            record_action(
                session,
                actor="cli",
                action="account.password",
                target=name,
                source="k8smon users passwd",
            )
    except ValueError as problem:
        raise click.ClickException(str(problem)) from None
    except accounts.AccountNotFound:
        raise click.ClickException(f"no account named {name!r}") from None
    click.echo(f"password of {name} changed")


@users.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Disable the account NAME (its sessions end at their next request)."""
    runtime = open_runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            accounts.set_disabled(session, name, disabled=True)
            record_action(
                session,
                actor="cli",
                action="account.disable",
                target=name,
                source="k8smon users disable",
            )
    except accounts.AccountNotFound:
        raise click.ClickException(f"no account named {name!r}") from None
    click.echo(f"account {name} disabled")


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(accounts.ACCOUNT_ROLES))
def set_role(name: str, role: str) -> None:
    """Give the account NAME the role ROLE (its existing sessions end: it signs in again)."""
    runtime = open_runtime()
    try:
        with unit_of_work(runtime.sessions) as session:
            accounts.set_role(session, name, role=role)
            record_action(
                session,
                actor="cli",
                action="account.role",
                target=name,
                details={"role": role},
                source="k8smon users set-role",
            )
    except accounts.AccountNotFound:
        raise click.ClickException(f"no account named {name!r}") from None
    click.echo(f"account {name} is now {role} (its sessions ended)")


@users.command("list")
@output_option()
def list_(fmt: str) -> None:
    """List the accounts."""
    runtime = open_runtime()
    with unit_of_work(runtime.sessions) as session:
        rows = [
            {
                "username": user.username,
                "role": user.role,
                "state": "disabled" if user.disabled else "active",
            }
            for user in accounts.list_accounts(session)
        ]
    Output(fmt).rows(rows, COLUMNS, title="Accounts", empty="no accounts")
