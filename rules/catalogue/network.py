"""Network exposure rules (KM-3xx): namespaces without NetworkPolicies (CIS 5.3.2), Services
published outside the cluster, and Ingresses that serve plain HTTP.

CIS 5.3.2 asks for a NetworkPolicy in *every* namespace, and so does KM-301, including
`kube-system`, `kube-public` and `kube-node-lease`; operators who accept the gap for a
namespace record an exemption (namespace glob) rather than have the rule guess. Namespaces
covered by CNI-specific policies are not reported: a namespaced `NetworkPolicy` of any API
group (Kubernetes, Calico) or `CiliumNetworkPolicy`, an `AdminNetworkPolicy` /
`BaselineAdminNetworkPolicy` whose subject selects the namespace, and cluster-wide Calico
`GlobalNetworkPolicy` / `CiliumClusterwideNetworkPolicy` objects that select every endpoint.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from contracts.selectors import SelectorError, calico_selector_matches, parse_selector
from contracts.severity import Severity
from rules.cluster import ClusterContext
from rules.model import Violation, rule
from rules.view import ObjectView, is_map

CATEGORY = "network"
NETPOL_DOC = "https://kubernetes.io/docs/concepts/services-networking/network-policies/"
SERVICE_DOC = "https://kubernetes.io/docs/concepts/services-networking/service/"
INGRESS_DOC = "https://kubernetes.io/docs/concepts/services-networking/ingress/#tls"
NSA = "NSA/CISA Kubernetes Hardening Guidance v1.2, Network separation and hardening"

NAMESPACED_POLICY_KINDS = ("NetworkPolicy", "CiliumNetworkPolicy")
ADMIN_POLICY_KINDS = ("AdminNetworkPolicy", "BaselineAdminNetworkPolicy")
NAME_LABEL = "kubernetes.io/metadata.name"

# Annotations that make a cloud load balancer internal (annotation -> values meaning "yes";
# an empty set means any value other than "false").
INTERNAL_LB_ANNOTATIONS: Mapping[str, frozenset[str]] = {
    "service.beta.kubernetes.io/aws-load-balancer-internal": frozenset(),
    "service.beta.kubernetes.io/aws-load-balancer-scheme": frozenset({"internal"}),
    "networking.gke.io/load-balancer-type": frozenset({"internal"}),
    "cloud.google.com/load-balancer-type": frozenset({"internal"}),
    "service.beta.kubernetes.io/azure-load-balancer-internal": frozenset({"true"}),
    "service.beta.kubernetes.io/oci-load-balancer-internal": frozenset({"true"}),
    "service.beta.kubernetes.io/openstack-internal-load-balancer": frozenset({"true"}),
    "service.kubernetes.io/ibm-load-balancer-cloud-provider-ip-type": frozenset({"private"}),
    "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type": frozenset({"intranet"}),
}
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"


def _host_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _namespace_labels(ns: ObjectView) -> dict[str, Any]:
    return {**ns.labels, NAME_LABEL: ns.name}


CLUSTER_POLICY_KINDS = ("GlobalNetworkPolicy", "CiliumClusterwideNetworkPolicy")
CILIUM_NAMESPACE_KEYS = ("io.kubernetes.pod.namespace", "k8s:io.kubernetes.pod.namespace")
CILIUM_NAMESPACE_LABEL_PREFIXES = (
    "io.cilium.k8s.namespace.labels.",
    "k8s:io.cilium.k8s.namespace.labels.",
)


def _cilium_endpoint_labels(ns: ObjectView) -> dict[str, Any]:
    """The labels every endpoint of namespace `ns` carries in Cilium (pod labels aside)."""
    labels: dict[str, Any] = {key: ns.name for key in CILIUM_NAMESPACE_KEYS}
    for key, value in _namespace_labels(ns).items():
        for prefix in CILIUM_NAMESPACE_LABEL_PREFIXES:
            labels[prefix + str(key)] = value
    return labels


def _cilium_selects(selector: Any, ns: ObjectView) -> bool:
    """Whether a Cilium endpointSelector selects every endpoint of `ns` (`{}` and
    `{matchLabels: {}}` select all; selectors on namespace labels select that namespace;
    anything constraining pod labels selects only some pods, so it does not count)."""
    if not is_map(selector):
        return False
    try:
        return parse_selector(selector).matches(_cilium_endpoint_labels(ns))
    except (SelectorError, TypeError, AttributeError):
        return False


def _calico_selects(spec: Mapping[str, Any], ns: ObjectView) -> bool:
    """Whether a Calico GlobalNetworkPolicy applies to every endpoint of `ns`: its
    `namespaceSelector` selects the namespace's labels and its `selector` selects the
    namespace's endpoints whatever their own labels (`all()`, or namespace terms only)."""
    labels = _namespace_labels(ns)
    endpoint = {
        "projectcalico.org/namespace": ns.name,
        **{f"pcns.{key}": value for key, value in labels.items()},
    }
    try:
        return calico_selector_matches(
            spec.get("namespaceSelector"), labels
        ) and calico_selector_matches(spec.get("selector"), endpoint)
    except SelectorError:
        return False


def _cluster_policy_covers(policy: ObjectView, ns: ObjectView) -> bool:
    """Cluster-wide Calico/Cilium policies that apply to every endpoint of namespace `ns`."""
    spec = policy.spec
    if policy.kind == "GlobalNetworkPolicy":
        return _calico_selects(spec, ns)
    if policy.kind == "CiliumClusterwideNetworkPolicy":
        specs = [spec] if "endpointSelector" in spec else []
        listed = policy.manifest.get("specs")
        if isinstance(listed, list):
            specs += [s for s in listed if is_map(s)]
        return any(_cilium_selects(s.get("endpointSelector"), ns) for s in specs)
    return False


def _admin_policy_selects(obj: ObjectView, labels: Mapping[str, Any]) -> bool:
    subject = obj.spec.get("subject")
    if not is_map(subject):
        return False
    selector: Any = subject.get("namespaces")
    if selector is None:
        pods = subject.get("pods")
        selector = pods.get("namespaceSelector") if is_map(pods) else None
    if not is_map(selector):
        return False
    try:
        return parse_selector(selector).matches(labels)
    except (SelectorError, TypeError, AttributeError):
        return False


@rule(
    id="KM-301",
    title="Namespace has no NetworkPolicy",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    scope="cluster",
    cis=("5.3.2",),
    references=(NETPOL_DOC, NSA),
    remediation="Add a default-deny NetworkPolicy to the namespace, then allow the traffic "
    "its workloads need.",
    kinds=("Namespace",),
)
def namespace_without_network_policy(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags namespaces that no network policy applies to.

    ## What it does
    Reports every Namespace object with no namespaced NetworkPolicy (any API group, so
    Calico's count) or CiliumNetworkPolicy in it, and not selected by an AdminNetworkPolicy
    or BaselineAdminNetworkPolicy subject, or by a cluster-wide policy that selects every
    endpoint of the namespace: a Calico GlobalNetworkPolicy whose `namespaceSelector`
    selects it and whose `selector` is `all()` (or names only namespace terms), or a
    CiliumClusterwideNetworkPolicy whose `endpointSelector` (in `spec` or any entry of the
    `specs` list) is `{}`, `{matchLabels: {}}` or selects the namespace's labels. All
    namespaces are checked, `kube-system` included, as CIS 5.3.2 asks; exempt a namespace
    by configuration when the gap is accepted.

    ## Why is this bad?
    Without a policy, every pod accepts connections from every other pod in the cluster and
    may connect anywhere: one compromised workload can reach every database and internal
    API.

    ## Example
    ```yaml
    apiVersion: v1
    kind: Namespace
    metadata: {name: shop}
    ```

    ## Use instead
    ```yaml
    apiVersion: networking.k8s.io/v1
    kind: NetworkPolicy
    metadata: {name: default-deny, namespace: shop}
    spec:
      podSelector: {}
      policyTypes: ["Ingress", "Egress"]
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.3.2
    """
    covered = {
        p.namespace
        for kind in NAMESPACED_POLICY_KINDS
        for p in cluster.by_kind(kind)
        if p.namespace
    }
    cluster_wide = [p for kind in CLUSTER_POLICY_KINDS for p in cluster.by_kind(kind)]
    admin = [p for kind in ADMIN_POLICY_KINDS for p in cluster.by_kind(kind)]
    for ns in cluster.by_kind("Namespace"):
        if ns.name in covered:
            continue
        # (The namespace's labels are read only when a policy could select them: a rescan
        # whose only changes are labels no rule read reuses the cluster rules' results.)
        if admin and any(_admin_policy_selects(p, _namespace_labels(ns)) for p in admin):
            continue
        if any(_cluster_policy_covers(p, ns) for p in cluster_wide):
            continue
        yield Violation(
            f"namespace {ns.name} has no NetworkPolicy: its pods accept traffic from "
            "anywhere in the cluster; add a default-deny policy",
            path="metadata.name",
            subject=ns,
        )


@rule(
    id="KM-302",
    title="Service of type NodePort",
    severity=Severity.LOW,
    category=CATEGORY,
    references=(SERVICE_DOC, NSA),
    remediation="Use a ClusterIP Service behind an Ingress or an internal load balancer; "
    "if a node port is unavoidable, restrict node access with firewalls.",
    kinds=("Service",),
)
def node_port_service(obj: ObjectView) -> Iterator[Violation]:
    """Flags Services of type NodePort.

    ## What it does
    Reports Services with `spec.type: NodePort`.

    ## Why is this bad?
    A node port opens the service on every node's address, bypassing the ingress layer
    (TLS, authentication, WAF) and any restriction on which nodes are reachable. Node
    ports are often forgotten when the service is "really" reached another way.

    ## Example
    ```yaml
    kind: Service
    spec:
      type: NodePort
      ports: [{port: 80, nodePort: 30080}]
    ```

    ## Use instead
    ```yaml
    kind: Service
    spec:
      type: ClusterIP
      ports: [{port: 80}]
    ```

    ## References
    - https://kubernetes.io/docs/concepts/services-networking/service/#type-nodeport
    """
    if obj.spec.get("type") == "NodePort":
        yield Violation(
            f"Service {obj.name} is published on a port of every node (type NodePort); use "
            "ClusterIP behind an Ingress or an internal load balancer",
            path="spec.type",
        )


def _is_internal(obj: ObjectView) -> bool:
    for name, values in INTERNAL_LB_ANNOTATIONS.items():
        value = obj.annotations.get(name)
        if value is None:
            continue
        text = str(value).strip().lower()
        if (not values and text not in ("", "false")) or text in values:
            return True
    return False


def _open_ranges(ranges: list[str]) -> list[str]:
    out = []
    for item in ranges:
        try:
            if ipaddress.ip_network(item.strip(), strict=False).prefixlen == 0:
                out.append(item.strip())
        except ValueError:
            continue
    return out


@rule(
    id="KM-303",
    title="Service exposed through a public load balancer",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    references=(SERVICE_DOC, NSA),
    remediation="Make the load balancer internal (cloud annotation), restrict "
    "`loadBalancerSourceRanges`, or publish through an Ingress.",
    kinds=("Service",),
)
def public_load_balancer(obj: ObjectView) -> Iterator[Violation]:
    """Flags LoadBalancer Services reachable from any address.

    ## What it does
    Reports Services with `spec.type: LoadBalancer` that are not marked internal by a known
    cloud annotation (AWS, GKE, Azure, OCI, OpenStack, IBM, Alibaba) and whose
    `loadBalancerSourceRanges` (or the equivalent annotation) are absent or include
    `0.0.0.0/0` / `::/0`.

    ## Why is this bad?
    The service gets an internet-facing address open to everyone, usually without the TLS,
    authentication and rate limits an ingress layer provides.

    ## Example
    ```yaml
    kind: Service
    spec:
      type: LoadBalancer
      ports: [{port: 5432}]
    ```

    ## Use instead
    ```yaml
    kind: Service
    metadata:
      annotations:
        networking.gke.io/load-balancer-type: Internal
    spec:
      type: LoadBalancer
      loadBalancerSourceRanges: ["10.0.0.0/8"]
    ```

    ## References
    - https://kubernetes.io/docs/concepts/services-networking/service/#loadbalancer
    """
    if obj.spec.get("type") != "LoadBalancer" or _is_internal(obj):
        return
    ranges = obj.spec.get("loadBalancerSourceRanges")
    path = "spec.loadBalancerSourceRanges"
    if not isinstance(ranges, list) or not ranges:
        annotated = obj.annotations.get(SOURCE_RANGES_ANNOTATION)
        ranges = [r for r in str(annotated).split(",") if r.strip()] if annotated else []
        path = f'metadata.annotations["{SOURCE_RANGES_ANNOTATION}"]' if ranges else "spec.type"
    if not ranges:
        yield Violation(
            f"Service {obj.name} gets a public load balancer open to every address; make it "
            "internal or set loadBalancerSourceRanges",
            path="spec.type",
        )
        return
    wide = _open_ranges([str(r) for r in ranges])
    if wide:
        yield Violation(
            f"Service {obj.name} is a public load balancer whose source ranges include "
            f"{', '.join(wide)}; restrict them to the clients that need it",
            path=path,
        )


def _host_covered(host: str, tls_hosts: set[str]) -> bool:
    if host in tls_hosts:
        return True
    head, _, rest = host.partition(".")
    return bool(rest) and f"*.{rest}" in tls_hosts and bool(head)


@rule(
    id="KM-304",
    title="Ingress serves hosts without TLS",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    references=(INGRESS_DOC, NSA),
    remediation="Add a `spec.tls` entry (with a certificate Secret) covering every host of "
    "the Ingress.",
    kinds=("Ingress",),
)
def ingress_without_tls(obj: ObjectView) -> Iterator[Violation]:
    """Flags Ingresses with no TLS, or with hosts their TLS section does not cover.

    ## What it does
    Reports an Ingress that has no `spec.tls` at all, and each rule host not listed in any
    `spec.tls[].hosts` (a `*.example.com` entry covers exactly one extra label; a TLS entry
    without hosts covers every host, as controllers use it as the default certificate).

    ## Why is this bad?
    Plain HTTP exposes credentials, session cookies and data to anyone on the path, and lets
    them alter responses.

    ## Example
    ```yaml
    kind: Ingress
    spec:
      rules:
        - host: shop.example.com
          http:
            paths:
              - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
    ```

    ## Use instead
    ```yaml
    kind: Ingress
    spec:
      tls:
        - hosts: ["shop.example.com"]
          secretName: shop-tls
      rules:
        - host: shop.example.com
          # ...
    ```

    ## References
    - https://kubernetes.io/docs/concepts/services-networking/ingress/#tls
    """
    tls = obj.spec.get("tls")
    entries = [t for t in tls if is_map(t)] if isinstance(tls, list) else []
    if not entries:
        yield Violation(
            f"Ingress {obj.name} has no spec.tls: it serves plain HTTP; add a TLS entry",
            path="spec.tls",
        )
        return
    if any(not t.get("hosts") for t in entries):
        return
    tls_hosts = {str(h).lower() for t in entries for h in _host_list(t.get("hosts"))}
    rules = obj.spec.get("rules")
    for index, item in enumerate(rules if isinstance(rules, list) else ()):
        if not is_map(item) or not item.get("host"):
            continue
        host = str(item["host"]).lower()
        if not _host_covered(host, tls_hosts):
            yield Violation(
                f"Ingress {obj.name} serves host {host} without TLS (no spec.tls entry lists "
                "it); add it to a TLS entry",
                path=f"spec.rules[{index}].host",
            )


def _policy_types(spec: Mapping[str, Any]) -> set[str]:
    types = spec.get("policyTypes")
    if isinstance(types, list) and types:
        return {str(t) for t in types}
    # Defaulting: Ingress always; Egress only when egress rules are present.
    return {"Ingress", "Egress"} if spec.get("egress") else {"Ingress"}


def _peer_is_anywhere(peer: Any) -> bool:
    if not is_map(peer):
        return False
    block = peer.get("ipBlock")
    if not is_map(block) or block.get("except"):
        return False
    return bool(_open_ranges([str(block.get("cidr") or "")]))


@rule(
    id="KM-305",
    title="NetworkPolicy allows ingress from anywhere",
    severity=Severity.LOW,
    category=CATEGORY,
    references=(NETPOL_DOC, NSA),
    remediation="List the namespaces, pods or address ranges that may connect, and the ports "
    "they use.",
    kinds=("NetworkPolicy",),
    api_versions=("networking.k8s.io/v1",),
)
def allow_all_ingress(obj: ObjectView) -> Iterator[Violation]:
    """Flags NetworkPolicies with an ingress rule that admits every source on every port.

    ## What it does
    Reports each ingress rule of a `networking.k8s.io/v1` NetworkPolicy (one that applies to
    ingress) with no `ports` and either no `from` (every source) or a `from` peer that is
    an `ipBlock` of `0.0.0.0/0` or `::/0` without exceptions. Rules are ORed, so one such
    rule opens the selected pods completely, whatever the other rules say.

    ## Why is this bad?
    The namespace looks protected (CIS 5.3.2 is satisfied by the policy's existence) while
    the selected pods accept connections from every pod of the cluster and, through node
    ports and load balancers, from outside.

    ## Example
    ```yaml
    kind: NetworkPolicy
    spec:
      podSelector: {}
      ingress:
        - {}
    ```

    ## Use instead
    ```yaml
    kind: NetworkPolicy
    spec:
      podSelector: {matchLabels: {app: api}}
      ingress:
        - from:
            - podSelector: {matchLabels: {app: web}}
          ports: [{port: 8080}]
    ```

    ## References
    - https://kubernetes.io/docs/concepts/services-networking/network-policies/
    """
    spec = obj.spec
    if "Ingress" not in _policy_types(spec):
        return
    rules = spec.get("ingress")
    for index, item in enumerate(rules if isinstance(rules, list) else ()):
        if not is_map(item) or item.get("ports"):
            continue
        peers = item.get("from")
        if peers is not None and not isinstance(peers, list):
            continue  # malformed: leave it to the API server's validation
        if not peers or any(_peer_is_anywhere(p) for p in peers):
            selector = spec.get("podSelector")
            which = "every pod of the namespace" if not selector else "the selected pods"
            yield Violation(
                f"NetworkPolicy {obj.name} ingress[{index}] admits every source on every "
                f"port to {which}; restrict from and ports",
                path=f"spec.ingress[{index}]",
            )
