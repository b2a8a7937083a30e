"""Cluster version rules: the Kubernetes minor a cluster runs, judged against the dated
end-of-support table of `rules.releases` (KM-619), and the objects its next minor upgrade
breaks (KM-620).

The release is the one the cluster's agent reports (telemetry) on the server, and
`k8smon scan --kubernetes-version` offline; with neither, clusters are judged as the newest
release the catalogue knows, which is supported.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from contracts.severity import Severity
from rules import psa, releases
from rules.catalogue.hygiene import REMOVED_APIS
from rules.cluster import ClusterContext
from rules.model import Violation, rule
from rules.view import ObjectView

CATEGORY = "hygiene"
# Who the finding is about: the cluster's kube-system Namespace (every cluster has one).
CLUSTER_SUBJECT: Mapping[str, Any] = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {"name": "kube-system"},
}


def cluster_release(cluster: ClusterContext) -> psa.Version | None:
    """The release the snapshot's objects are judged as (None: unknown, the newest); worked
    out once per context (two rules ask, and without a release it walks every object)."""
    return cluster.derived(_cluster_release)


def _cluster_release(cluster: ClusterContext) -> psa.Version | None:
    for obj in cluster.objects:
        if obj.kubernetes_version is not None:
            return obj.kubernetes_version
    return None


def _subject(cluster: ClusterContext) -> ObjectView | Mapping[str, Any]:
    found = cluster.get("Namespace", None, "kube-system")
    return found if found is not None else CLUSTER_SUBJECT


@rule(
    id="KM-619",
    title="Cluster runs a Kubernetes release past its end of support",
    severity=Severity.HIGH,
    category=CATEGORY,
    scope="cluster",
    references=(releases.RELEASES_DOC,),
    # The table's date is part of the rule's metadata, so refreshing the table changes the
    # catalogue version and cached results are re-evaluated.
    remediation="Upgrade the cluster one minor release at a time to a supported release; "
    "fix the objects KM-608/KM-609 report for each release on the way first (support dates "
    f"as of {releases.AS_OF.isoformat()}).",
    kinds=("Namespace",),
)
def unsupported_release(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags clusters running a Kubernetes minor release upstream no longer supports.

    ## What it does
    Looks the cluster's minor release up in the dated end-of-support table of the
    catalogue (`rules/releases.py`, refreshed with every Kubernetes release) and reports it
    when support ended before the table's date. The release is the one the cluster's agent
    reports in its telemetry (server) or `k8smon scan --kubernetes-version` (offline).
    The finding is reported on the cluster's `kube-system` Namespace.

    ## Why is this bad?
    A release past its end of support gets no more patch releases: no security fixes for
    the API server, kubelet or their dependencies. Upgrades must then cross several minors
    in a row, each with its API removals.

    ## Example
    ```text
    k8smon scan --kubernetes-version 1.30 manifests/
    ```

    ## Use instead
    ```text
    k8smon scan --kubernetes-version 1.36 manifests/
    ```

    ## References
    - https://kubernetes.io/releases/
    """
    version = cluster_release(cluster)
    if version is None or releases.is_supported(version):
        return
    ended = releases.end_of_support(version)
    when = f"on {ended.isoformat()}" if ended else "before 2021"
    supported = sorted(v for v in releases.RELEASES if releases.is_supported(v))
    oldest = releases.format_release(supported[0]) if supported else "the newest release"
    yield Violation(
        f"the cluster runs Kubernetes {releases.format_release(version)}, whose upstream "
        f"support ended {when}; upgrade to {oldest} or newer (table as of "
        f"{releases.AS_OF.isoformat()})",
        path="kubernetesVersion",
        subject=_subject(cluster),
    )


@rule(
    id="KM-620",
    title="Objects break at the cluster's next minor upgrade",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    scope="cluster",
    references=("https://kubernetes.io/docs/reference/using-api/deprecation-guide/",),
    remediation="Migrate the listed objects to the replacement API versions (KM-609 names "
    "each one's replacement) before upgrading the cluster.",
    kinds=("Namespace",),
)
def next_upgrade_breaks(cluster: ClusterContext) -> Iterator[Violation]:
    """Counts, per cluster, the objects that stop working at its next minor release.

    ## What it does
    When the cluster's release is known (the agent's telemetry on the server,
    `k8smon scan --kubernetes-version` offline), collects every object whose `apiVersion`
    the next minor release stops serving (the API removals table of KM-608) and reports
    them once for the cluster, on its `kube-system` Namespace: "3 objects will break when
    the cluster upgrades to Kubernetes 1.32". Each object is also reported by KM-609.

    ## Why is this bad?
    An upgrade is planned per cluster: the number and names of the objects to migrate first
    tell whether the next upgrade is ready, without reading every per-object finding.

    ## Example
    ```yaml
    # on a 1.31 cluster
    apiVersion: flowcontrol.apiserver.k8s.io/v1beta3
    kind: FlowSchema
    ```

    ## Use instead
    ```yaml
    apiVersion: flowcontrol.apiserver.k8s.io/v1
    kind: FlowSchema
    ```

    ## References
    - https://kubernetes.io/docs/reference/using-api/deprecation-guide/
    """
    version = cluster_release(cluster)
    if version is None:
        return
    upcoming = releases.next_minor(version)
    breaking = []
    for obj in cluster.objects:
        change = REMOVED_APIS.get((obj.api_version, obj.kind))
        if change is None:
            continue
        try:
            removed_in = psa.parse_version(change.release)
        except psa.VersionError:
            continue
        if removed_in == upcoming:
            breaking.append(obj)
    if not breaking:
        return
    names = sorted(f"{o.kind} {o.namespace + '/' if o.namespace else ''}{o.name}" for o in breaking)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    count = f"{len(names)} object{'s' if len(names) != 1 else ''}"
    yield Violation(
        f"{count} will break when the cluster upgrades to Kubernetes "
        f"{releases.format_release(upcoming)}, which stops serving their API versions: {shown}",
        path="kubernetesVersion",
        subject=_subject(cluster),
    )
