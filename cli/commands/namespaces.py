"""`k8smon namespaces`: Pod Security Admission rollout report per namespace, offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cli.commands.scan import KUBERNETES_VERSION
from cli.output import visible as escape_text
from rules import ClusterContext, load_paths, parse_text
from rules.admission import NamespaceReport, WorkloadVerdict, namespace_reports
from rules.loading import Loaded
from rules.psa import Version, format_version


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


@click.command()
@click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True, path_type=Path)
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
def namespaces(paths: tuple[Path, ...], fmt: str, kubernetes_version: Version | None) -> None:
    """Judge every namespace in PATHS by its own Pod Security Admission labels.

    For each namespace (Namespace objects and namespaces workloads are in): its enforce,
    warn and audit level and version (`pod-security.kubernetes.io/*`; unlabelled means
    privileged), the workloads the enforce level would refuse (they predate the label or
    came in through an exemption), those that draw warn or audit, and the strictest level
    all its workloads already satisfy: the label it can take today. Inputs as for
    `k8smon scan`; objects that are not valid for their kind are left out.
    """
    loaded = Loaded([], [])
    files = [p for p in paths if str(p) != "-"]
    if len(files) < len(paths):
        loaded.extend(parse_text(sys.stdin.read(), source="<stdin>"))
    loaded.extend(load_paths(files))
    context = ClusterContext([d.manifest for d in loaded.documents if isinstance(d.manifest, dict)])
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
