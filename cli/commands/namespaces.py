"""`k8smon namespaces`: Pod Security Admission rollout report per namespace, offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from cli.commands.scan import KUBERNETES_VERSION
from cli.output import visible as escape_text
from rules import ClusterContext, ObjectView, load_paths, parse_text
from rules.admission import NamespaceReport, WorkloadVerdict, namespace_reports
from rules.loading import Loaded
from rules.psa import Version, VersionError, assign_versions, format_version, parse_version


def _verdicts(title: str, verdicts: list[WorkloadVerdict]) -> list[str]:
    return [f"  {title}: {escape_text(str(v.ref))} ({', '.join(v.controls)})" for v in verdicts]


def render_namespace_table(reports: list[NamespaceReport]) -> str:
    """One line per namespace, then each workload its own labels refuse, warn or audit."""
    lines = [
        f"{'NAMESPACE':<24} {'ENFORCE':<18} {'WARN':<18} {'AUDIT':<18} {'WORKLOADS':>9} "
        f"{'REFUSED':>7} {'WARNED':>6} {'AUDITED':>7}  SATISFIES"
    ]
    for report in reports:
        modes = [
            f"{m.level.value}@{format_version(m.version)}" if m.labelled else "-"
            for m in (report.modes["enforce"], report.modes["warn"], report.modes["audit"])
        ]
        lines.append(
            f"{escape_text(report.namespace):<24} {modes[0]:<18} {modes[1]:<18} {modes[2]:<18} "
            f"{report.workloads:>9} {len(report.refused):>7} {len(report.warned):>6} "
            f"{len(report.audited):>7}  {report.satisfies.value}"
        )
    for report in reports:
        details = [
            *_verdicts("refused", report.refused),
            *_verdicts("warn", report.warned),
            *_verdicts("audit", report.audited),
        ]
        errors = [
            f"  {mode} label: {setting.label_error}"
            for mode, setting in report.modes.items()
            if setting.label_error
        ]
        if details or errors:
            lines += ["", f"{escape_text(report.namespace)}:", *errors, *details]
    return "\n".join(lines) + "\n"


def _stored_cluster(cluster_id: str) -> tuple[list[dict[str, Any]], Version | None]:
    """A cluster's live manifests from the server's database, and the Kubernetes release its
    agent last reported (None when unknown)."""
    from cli.runtime import open_runtime  # noqa: PLC0415 - only --cluster needs the database
    from store.clusters import get_cluster  # noqa: PLC0415
    from store.errors import ClusterNotFound  # noqa: PLC0415
    from store.manifests import current_manifests  # noqa: PLC0415
    from store.telemetry import latest_ping  # noqa: PLC0415

    runtime = open_runtime()
    try:
        with runtime.sessions() as session:
            try:
                get_cluster(session, cluster_id)
            except ClusterNotFound:
                raise click.BadParameter(
                    f"no cluster {cluster_id!r}", param_hint="--cluster"
                ) from None
            bodies = [m.body for m in current_manifests(session, cluster_id=cluster_id)]
            ping = latest_ping(session, cluster_id)
            try:
                release = parse_version(ping.kubernetes_version if ping else None)
            except VersionError:
                release = None
    finally:
        runtime.engine.dispose()
    return bodies, release


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, allow_dash=True, path_type=Path))
@click.option(
    "--cluster",
    "cluster_id",
    default=None,
    help="Report on a cluster the server stores (its live objects, judged as the release its "
    "agent reports) instead of PATHS; reads the database like `k8smon db`.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("table", "json")),
    default="table",
    show_default=True,
    help="Output format.",
)
@KUBERNETES_VERSION
def namespaces(
    paths: tuple[Path, ...], cluster_id: str | None, fmt: str, kubernetes_version: Version | None
) -> None:
    """Judge every namespace in PATHS by its own Pod Security Admission labels.

    For each namespace (Namespace objects and namespaces workloads are in): its enforce,
    warn and audit level and version (`pod-security.kubernetes.io/*`; unlabelled means
    privileged), the workloads the enforce level would refuse (they predate the label or
    came in through an exemption), those that draw warn or audit, and the strictest level
    all its workloads already satisfy: the label it can take today. Inputs as for
    `k8smon scan`, or `--cluster ID` for a cluster the server stores (judged as the release
    its agent last reported unless --kubernetes-version says otherwise); objects that are not
    valid for their kind are left out.
    """
    if bool(paths) == bool(cluster_id):
        raise click.UsageError("give PATHS or --cluster (one of them)")
    loaded = Loaded([], [])
    if cluster_id:
        manifests, reported = _stored_cluster(cluster_id)
        kubernetes_version = kubernetes_version or reported
    else:
        files = [p for p in paths if str(p) != "-"]
        if len(files) < len(paths):
            loaded.extend(parse_text(sys.stdin.read(), source="<stdin>"))
        loaded.extend(load_paths(files))
        manifests = [d.manifest for d in loaded.documents if isinstance(d.manifest, dict)]
    views = [ObjectView(m) for m in manifests]
    assign_versions(views, kubernetes_version)
    context = ClusterContext(views)
    reports = namespace_reports(context, kubernetes_version=kubernetes_version)
    if fmt == "json":
        document = {
            "kubernetes_version": format_version(kubernetes_version),
            "namespaces": [r.to_dict() for r in reports],
            "errors": [e.to_dict() for e in loaded.errors],
        }
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_namespace_table(reports))
