"""`k8smon scan`: scan manifest files and directories offline with the rules engine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from cli.advisory_files import read_advisories
from contracts.severity import Severity
from reports.formats import FORMATS, NO_TOOL_VERSION, OFFLINE_FORMATS, ReportInput
from rules import ConfigError, Engine, ScanConfig, gc_paused, load_paths, parse_text
from rules.loading import Loaded
from rules.psa import LATEST, Version, VersionError, format_version, parse_version

FAIL_ON = (*(s.value for s in Severity), "none")


def tool_version() -> str:
    # importlib.metadata costs more to import than reading all the rules: only when needed.
    from importlib import metadata  # noqa: PLC0415

    try:
        return metadata.version("k8s-monitor")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def kubernetes_version_option(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> Version | None:
    """`--kubernetes-version X.Y` (or `latest`): a usage error (exit 2) when malformed."""
    try:
        return parse_version(value)
    except VersionError as problem:
        raise click.BadParameter(str(problem)) from None


KUBERNETES_VERSION = click.option(
    "--kubernetes-version",
    callback=kubernetes_version_option,
    default=None,
    metavar="X.Y",
    help="Judge the input as a cluster of this release would: the Pod Security policy "
    "version of namespaces that pin none, and API removals. Default: latest "
    f"({format_version(LATEST)}).",
)


def write_output(output: str | bytes) -> None:
    """Write a rendered report to standard output; bytes (UTF-8) as they are."""
    if isinstance(output, str):
        sys.stdout.write(output)
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(output)
    sys.stdout.buffer.flush()


def exit_without_teardown(code: int) -> None:
    """End the `k8smon` process now with `code`, its output flushed; in process, return.

    A scan leaves hundreds of thousands of objects alive (parsed manifests, results, the
    report) that the interpreter would otherwise free one by one on its way out, a twentieth
    of a 2,000-manifest run for nothing (mypy ends its runs the same way). Only when standard
    output and error are the process's own: a caller that runs the command in its process
    (click's CliRunner, a test) replaces them, and gets a normal return.
    """
    if sys.stdout is not sys.__stdout__ or sys.stderr is not sys.__stderr__:
        return
    for stream in (sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()
    os._exit(code)


def load_engine(config_file: Path | None) -> Engine:
    """The engine for a `--config` file; a bad file is a usage error (exit 2)."""
    try:
        return Engine.from_config(ScanConfig.from_file(config_file))
    except ConfigError as problem:
        raise click.BadParameter(str(problem), param_hint="--config") from None


@click.command()
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True, path_type=Path)
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(OFFLINE_FORMATS),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Scan configuration YAML (severity overrides, disabled rules, exemptions).",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON, case_sensitive=False),
    default="none",
    show_default=True,
    help="Exit 1 when an open finding is at least this severe.",
)
@click.option("--cluster", default=None, help="Cluster id, for cluster-scoped exemptions.")
@click.option("--hide-exempted", is_flag=True, help="Table format: omit exempted findings.")
@click.option(
    "--advisories",
    "advisories_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Image advisories (YAML/JSON, as `k8smon advisories load` takes): KM-622 reports "
    "the input's images they affect.",
)
@KUBERNETES_VERSION
def scan(
    paths: tuple[Path, ...],
    fmt: str,
    config_file: Path | None,
    fail_on: str,
    cluster: str | None,
    hide_exempted: bool,
    kubernetes_version: Version | None,
    advisories_file: Path | None,
) -> None:
    """Scan manifests in PATHS (YAML, multi-document YAML, JSON, `kind: List`, directories;
    `-` reads standard input, e.g. `kubectl get deploy -A -o yaml | k8smon scan -`).

    Exit status: 0 when no open finding reaches --fail-on, 1 when one does, 2 on usage
    errors. Unreadable files are reported as errors and the rest is still scanned.
    """
    engine = load_engine(config_file)
    advisories = (
        read_advisories(advisories_file, param_hint="--advisories")[1] if advisories_file else []
    )
    report_format = FORMATS[fmt]
    # Parsing, scanning and rendering build no reference cycles: the cyclic collector would
    # only traverse the parsed manifests again and again (a quarter of the run).
    with gc_paused():
        loaded = Loaded([], [])
        files = [p for p in paths if str(p) != "-"]
        if len(files) < len(paths):
            loaded.extend(parse_text(sys.stdin.read(), source="<stdin>"))
        loaded.extend(load_paths(files))
        outcome = engine.scan(
            loaded.documents,
            cluster=cluster,
            load_errors=[e.to_dict() for e in loaded.errors],
            kubernetes_version=kubernetes_version,
            advisories=advisories,
        )
        data = ReportInput(
            outcome.to_report(),
            rules=[r.meta.to_info() for r in engine.all_rules],
            show_exempted=not hide_exempted,
            terminal=True,
            tool_version=tool_version() if report_format.names_tool else NO_TOOL_VERSION,
        )
        write_output(report_format.render(data))
    failed = fail_on != "none" and outcome.reaches(Severity.parse(fail_on))
    exit_without_teardown(1 if failed else 0)
    if failed:
        sys.exit(1)
