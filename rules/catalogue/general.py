"""General policies (KM-5xx): an active pod policy mechanism (CIS 5.2.1), security contexts
applied (CIS 5.6.3) and the default namespace left unused (CIS 5.6.4).

CIS 5.6.2 (seccomp RuntimeDefault in pod definitions) is KM-502: one finding per pod
definition, where the pod-security rules KM-118 (explicit Unconfined) and KM-119 (profile
unset) judge each container against the Pod Security Standards; an operator who wants only
one view disables the other.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from contracts.severity import Severity
from rules.cluster import ClusterContext
from rules.model import Violation, rule
from rules.view import POD_KINDS, ObjectView, is_map

CATEGORY = "general"
PSA_DOC = "https://kubernetes.io/docs/concepts/security/pod-security-admission/"
NSA = "NSA/CISA Kubernetes Hardening Guidance v1.2, Pod security"
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
ENFORCING_LEVELS = frozenset({"baseline", "restricted"})
WEBHOOK_KINDS = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
# Policy engines recognised by the names of their webhook configurations, webhooks or
# webhook services.
POLICY_ENGINES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Kyverno", re.compile(r"kyverno", re.IGNORECASE)),
    ("OPA Gatekeeper", re.compile(r"gatekeeper", re.IGNORECASE)),
    ("Kubewarden", re.compile(r"kubewarden", re.IGNORECASE)),
    ("jsPolicy", re.compile(r"jspolicy", re.IGNORECASE)),
    ("k-rail", re.compile(r"k-rail", re.IGNORECASE)),
    ("OPA kube-mgmt", re.compile(r"\bopa\b|open-policy-agent|kube-mgmt", re.IGNORECASE)),
    ("Polaris", re.compile(r"polaris", re.IGNORECASE)),
    ("Datree", re.compile(r"datree", re.IGNORECASE)),
)


def _webhook_texts(config: ObjectView) -> Iterator[str]:
    yield config.name
    hooks = config.manifest.get("webhooks")
    for hook in hooks if isinstance(hooks, list) else ():
        if not is_map(hook):
            continue
        yield str(hook.get("name") or "")
        client = hook.get("clientConfig")
        service = client.get("service") if is_map(client) else None
        if is_map(service):
            yield f"{service.get('namespace') or ''}/{service.get('name') or ''}"


def policy_mechanisms(cluster: ClusterContext) -> list[str]:
    """Descriptions of the pod policy mechanisms visible in the cluster state."""
    found = []
    enforced = sorted(
        ns.name
        for ns in cluster.by_kind("Namespace")
        if str(ns.labels.get(ENFORCE_LABEL, "")).lower() in ENFORCING_LEVELS
    )
    if enforced:
        found.append(f"Pod Security Admission enforced in {', '.join(enforced[:3])}")
    for kind in WEBHOOK_KINDS:
        for config in cluster.by_kind(kind):
            texts = list(_webhook_texts(config))
            for engine, pattern in POLICY_ENGINES:
                if any(pattern.search(t) for t in texts):
                    found.append(f"{engine} ({kind} {config.name})")
                    break
    bindings = cluster.by_kind("ValidatingAdmissionPolicyBinding")
    if any(_denies(b.spec.get("validationActions")) for b in bindings):
        found.append("ValidatingAdmissionPolicy with Deny bindings")
    return found


def _denies(actions: Any) -> bool:
    if actions is None:
        return False
    return isinstance(actions, list) and "Deny" in actions


def _anchor(namespaces: Iterable[ObjectView]) -> ObjectView | None:
    by_name = {ns.name: ns for ns in namespaces}
    for preferred in ("default", "kube-system"):
        if preferred in by_name:
            return by_name[preferred]
    return by_name[min(by_name)] if by_name else None


@rule(
    id="KM-501",
    title="No active pod policy mechanism in the cluster",
    severity=Severity.HIGH,
    category=CATEGORY,
    scope="cluster",
    cis=("5.2.1",),
    references=(PSA_DOC, NSA),
    remediation="Label namespaces with `pod-security.kubernetes.io/enforce: baseline` (or "
    "`restricted`), or deploy a policy engine such as Kyverno or Gatekeeper.",
    kinds=("Namespace", *WEBHOOK_KINDS, "ValidatingAdmissionPolicyBinding"),
)
def no_policy_mechanism(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags clusters where nothing restricts which pods may be created.

    ## What it does
    Looks for an active admission control mechanism for pods: a Namespace labelled
    `pod-security.kubernetes.io/enforce` with `baseline` or `restricted` (`privileged`
    enforces nothing), a validating or mutating webhook configuration of a known policy
    engine (Kyverno, Gatekeeper, Kubewarden, jsPolicy, k-rail, OPA kube-mgmt, Polaris,
    Datree; recognised by configuration, webhook or service names), or a
    ValidatingAdmissionPolicyBinding with the `Deny` action. When none exists, it reports
    once for the cluster, on the `default` Namespace (else `kube-system`, else the first).
    Input without any Namespace object (a chart scanned offline) is not judged.
    Cluster-wide defaults set in the API server's admission configuration are invisible in
    the cluster state: exempt this rule for such clusters.

    ## Why is this bad?
    Without admission policy, anyone who can create a pod can create a privileged one, with
    host namespaces and host paths — root on a node. The other pod-security rules then only
    report after the fact.

    ## Example
    ```yaml
    apiVersion: v1
    kind: Namespace
    metadata: {name: shop}
    ```

    ## Use instead
    ```yaml
    apiVersion: v1
    kind: Namespace
    metadata:
      name: shop
      labels:
        pod-security.kubernetes.io/enforce: restricted
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.1
    """
    namespaces = cluster.by_kind("Namespace")
    anchor = _anchor(namespaces)
    if anchor is None or policy_mechanisms(cluster):
        return
    yield Violation(
        f"no namespace enforces Pod Security Admission (baseline/restricted) and no policy "
        f"engine webhook or denying ValidatingAdmissionPolicy exists in the cluster "
        f"({len(namespaces)} namespaces checked); label namespaces with {ENFORCE_LABEL} or "
        "deploy a policy engine",
        path=f'metadata.labels["{ENFORCE_LABEL}"]',
        subject=anchor,
    )


SECCOMP_OK = frozenset({"RuntimeDefault", "Localhost"})
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"


def _annotation_ok(value: Any) -> bool | None:
    """A legacy seccomp annotation value: True when confining, None when absent."""
    if value is None:
        return None
    text = str(value)
    return text in ("runtime/default", "docker/default") or text.startswith("localhost/")


def _unconfined_containers(obj: ObjectView) -> list[str]:
    """Containers whose effective seccomp profile is not RuntimeDefault or Localhost."""
    w = obj.workload
    assert w is not None
    annotations = w.annotations
    pod_annotation = _annotation_ok(annotations.get(SECCOMP_POD_ANNOTATION))
    out = []
    for c in w.containers:
        value, _ = c.effective("seccompProfile")
        if is_map(value):
            if str(value.get("type")) in SECCOMP_OK:
                continue
            out.append(c.name)
            continue
        legacy = _annotation_ok(annotations.get(SECCOMP_CONTAINER_ANNOTATION + c.name))
        if legacy is None:
            legacy = pod_annotation
        if not legacy:
            out.append(c.name)
    return out


@rule(
    id="KM-502",
    title="Pod definition does not set the RuntimeDefault seccomp profile",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    cis=("5.6.2",),
    references=("https://kubernetes.io/docs/tutorials/security/seccomp/", NSA),
    remediation="Set `securityContext.seccompProfile.type: RuntimeDefault` in the pod spec "
    "(or `Localhost` with a reviewed profile).",
    kinds=POD_KINDS,
)
def seccomp_not_default(obj: ObjectView) -> Iterator[Violation]:
    """Flags pod definitions in which some container is not confined by seccomp.

    ## What it does
    Resolves every container's effective seccomp profile (container over pod, as the
    kubelet does; legacy `seccomp.security.alpha.kubernetes.io` annotations count when no
    field is set) and reports the pod definition once, at its pod-level `seccompProfile`,
    when any container ends up neither `RuntimeDefault` nor `Localhost`. Windows pods are
    skipped. KM-118 and KM-119 report the same gap per container under the Pod Security
    Standards.

    ## Why is this bad?
    Unless every kubelet runs with `--seccomp-default`, an unset profile is `Unconfined`:
    the container can make every system call, including the ones most kernel exploits need.

    ## Example
    ```yaml
    spec:
      containers:
        - name: app
          image: registry.example/app:1.4.2
    ```

    ## Use instead
    ```yaml
    spec:
      securityContext:
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: app
          image: registry.example/app:1.4.2
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.6.2
    """
    w = obj.workload
    assert w is not None
    if w.is_windows or not w.containers:
        return
    names = _unconfined_containers(obj)
    if names:
        shown = ", ".join(repr(n) for n in names[:3]) + (" ..." if len(names) > 3 else "")
        yield Violation(
            f"{obj.kind} {obj.name} does not run {shown} with the RuntimeDefault (or a "
            "Localhost) seccomp profile; set it in the pod securityContext",
            path=f"{w.pod_sc_path}.seccompProfile",
        )


def _has_settings(value: Any) -> bool:
    return is_map(value) and any(v is not None for v in value.values())


@rule(
    id="KM-503",
    title="No security context on pod or container",
    severity=Severity.LOW,
    category=CATEGORY,
    cis=("5.6.3",),
    references=("https://kubernetes.io/docs/tasks/configure-pod-container/security-context/", NSA),
    remediation="Set a pod `securityContext` (runAsNonRoot, seccompProfile) and a container "
    "`securityContext` (allowPrivilegeEscalation: false, capabilities.drop: "
    "[ALL], readOnlyRootFilesystem: true).",
    kinds=POD_KINDS,
)
def no_security_context(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers that run with no security context at all.

    ## What it does
    Reports each container, init container and ephemeral container when neither it nor its
    pod sets any `securityContext` field. Which settings are required is checked by the
    pod-security rules; this rule finds workloads that have not been hardened at all.

    ## Why is this bad?
    Without a security context a container runs with the image's user (often root), the
    runtime's default capabilities, privilege escalation allowed and a writable root
    filesystem.

    ## Example
    ```yaml
    containers:
      - name: app
        image: registry.example/app:1.4.2
    ```

    ## Use instead
    ```yaml
    securityContext:
      runAsNonRoot: true
      seccompProfile: {type: RuntimeDefault}
    containers:
      - name: app
        image: registry.example/app:1.4.2
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: ["ALL"]}
          readOnlyRootFilesystem: true
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.6.3
    """
    w = obj.workload
    assert w is not None
    if _has_settings(w.pod_sc):
        return
    for c in w.containers:
        if not _has_settings(c.sc):
            yield Violation(
                f"container {c.name!r} of {obj.kind} {obj.name} has no securityContext and "
                "neither has its pod; set one (non-root, no privilege escalation, drop ALL "
                "capabilities)",
                path=c.sc_path,
                container=c.name,
            )


# Objects the API server and controllers create in `default` themselves.
BUILTIN_DEFAULT_OBJECTS = frozenset(
    {
        ("Service", "kubernetes"),
        ("Endpoints", "kubernetes"),
        ("EndpointSlice", "kubernetes"),
        ("ServiceAccount", "default"),
        ("ConfigMap", "kube-root-ca.crt"),
    }
)
# Events are records the control plane writes about other objects. Endpoints and
# EndpointSlices are exempt only when the control plane maintains them: the `kubernetes`
# ones above, slices owned by their Service (ownerReferences), and Endpoints the endpoints
# controller labels as its own; hand-written ones (and Leases) are reported like anything else.
GENERATED_KINDS = frozenset({"Event"})
ENDPOINTS_MANAGED_BY = ("endpoints.kubernetes.io/managed-by", "endpoint-controller")


@rule(
    id="KM-504",
    title="Object in the default namespace",
    severity=Severity.LOW,
    category=CATEGORY,
    cis=("5.6.4",),
    references=("https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/",),
    remediation="Create a namespace per application or team and move the object there.",
)
def default_namespace(obj: ObjectView) -> Iterator[Violation]:
    """Flags objects placed in the `default` namespace.

    ## What it does
    Reports objects whose `metadata.namespace` is `default`, except what Kubernetes itself
    keeps there (the `kubernetes` Service and its `kubernetes` Endpoints and EndpointSlice,
    the `default` ServiceAccount, the `kube-root-ca.crt` ConfigMap, legacy `default-token-*`
    Secrets), Events, Endpoints labelled as the endpoints controller's, and objects owned by
    another object (their owner is reported instead). Everything else is reported whatever
    its kind: hand-written Endpoints, EndpointSlices and Leases are not exempt. Manifests
    without a namespace are not reported: where they land depends on how they are applied.

    ## Why is this bad?
    `default` is where everything lands by accident; RBAC, quotas, network policies and
    Pod Security labels are rarely set there, and separating workloads by namespace is the
    basis of every other isolation control.

    ## Example
    ```yaml
    kind: Deployment
    metadata: {name: web, namespace: default}
    ```

    ## Use instead
    ```yaml
    kind: Deployment
    metadata: {name: web, namespace: shop}
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.6.4
    """
    if obj.namespace != "default" or obj.kind in GENERATED_KINDS:
        return
    if (obj.kind, obj.name) in BUILTIN_DEFAULT_OBJECTS or obj.metadata.get("ownerReferences"):
        return
    if obj.kind == "Secret" and obj.name.startswith("default-token-"):
        return
    key, value = ENDPOINTS_MANAGED_BY
    if obj.kind == "Endpoints" and obj.labels.get(key) == value:
        return
    yield Violation(
        f"{obj.kind} {obj.name} is in the default namespace; move it to a dedicated one",
        path="metadata.namespace",
    )
