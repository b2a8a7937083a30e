"""Entry point of `k8smon`: a click group whose sub-commands are imported only when used."""

from __future__ import annotations

import importlib
import importlib.metadata

import click

# name -> "module:attribute". Explicit, so nothing registers itself on import and
# `k8smon --help` stays fast (each command's heavy imports happen only when it runs).
COMMANDS: dict[str, str] = {
    "db": "cli.commands.db:db",
    "users": "cli.commands.users:users",
    "clusters": "cli.commands.clusters:clusters",
    "telemetry": "cli.commands.telemetry:telemetry",
    "search": "cli.commands.search:search",
    "findings": "cli.commands.findings:findings",
    "exemptions": "cli.commands.exemptions:exemptions",
    "rescan": "cli.commands.rescan:rescan",
    "report": "cli.commands.report:report",
    "scans": "cli.commands.scans:scans",
    "keys": "cli.commands.admin_keys:admin_keys",
    "keygen": "cli.commands.keys:keygen",
    "signature": "cli.commands.keys:signature",
    "admin": "cli.commands.admin_bootstrap:admin",
    "scan": "cli.commands.scan:scan",
    "namespaces": "cli.commands.namespaces:namespaces",
    "rules": "cli.commands.rules_cmd:rules",
    "serve": "cli.commands.serve:serve",
    "audit": "cli.commands.audit:audit",
    "completion": "cli.commands.completion:completion",
    "images": "cli.commands.images:images",
    "timeline": "cli.commands.timeline:timeline",
    "advisories": "cli.commands.advisories:advisories",
}


class LazyGroup(click.Group):
    """A click group that imports a sub-command's module the first time it is needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":", 1)
        return getattr(importlib.import_module(module_name), attribute)


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """`--version`: the release, and whether the rule engine runs compiled (mypyc) and why."""
    if not value or ctx.resilient_parsing:
        return
    mode = importlib.import_module("rules").ENGINE_MODE  # imported here only: --help stays fast
    click.echo(f"k8smon, version {importlib.metadata.version('k8s-monitor')}")
    click.echo(f"rule engine: {mode}")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version,
    help="Show the version, and whether the rule engine runs compiled, and exit.",
)
def main() -> None:
    """k8s-monitor: security posture of every Kubernetes cluster, from one place."""


if __name__ == "__main__":
    main()
