"""Pod Security Standards (baseline and restricted) and CIS 5.2.2-5.2.12 rules (KM-1xx).

Every rule tagged with a Pod Security Standards control (`pss=`) reports exactly what Pod
Security Admission refuses for that control at the object's policy version
(`rules.psa.policy_version`: the namespace's `enforce-version` pin, else the cluster's release,
else the newest release known); the controls' history is declared in `rules.psa.CONTROLS`.
Where PSA checks a pod-level field on its own (runAsNonRoot=false, runAsUser=0, seLinuxOptions,
seccomp and AppArmor types, hostProcess), so do these rules, even when every container
overrides it. Elsewhere container settings are evaluated after the kubelet's pod/container
precedence (`rules.view.ContainerView.effective`); the path of each violation names the field
that actually takes effect.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from contracts.severity import Severity
from rules import psa
from rules.model import Violation, rule
from rules.psa import (
    BASELINE_CAPABILITIES,
    PROFILE_TYPES,
    RESTRICTED_ADDABLE_CAPABILITIES,
    RESTRICTED_VOLUME_TYPES,
    SAFE_SYSCTLS,
    SELINUX_TYPES,
    VOLUME_SOURCES,
)
from rules.view import POD_KINDS, ContainerView, ObjectView

NSA = "NSA/CISA Kubernetes Hardening Guidance v1.2, Pod security"
PSS_DOC = "https://kubernetes.io/docs/concepts/security/pod-security-standards/"


def _where(obj: ObjectView) -> str:
    return f"{obj.kind} {obj.name}"


def _windows_exempt(obj: ObjectView) -> bool:
    """Windows pods skip the restricted Linux-only checks from policy v1.25 on."""
    assert obj.workload is not None
    return obj.workload.is_windows and psa.policy_version(obj) >= (1, 25)


@rule(
    id="KM-101",
    title="Privileged container",
    severity=Severity.CRITICAL,
    category="pod-security",
    cis=("5.2.2",),
    pss=("baseline/privileged-containers",),
    references=(PSS_DOC, NSA),
    remediation="Remove `securityContext.privileged: true`; grant only the specific "
    "capabilities the container needs.",
    kinds=POD_KINDS,
)
def privileged_container(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers that run privileged.

    ## What it does
    Reports every container, init container and ephemeral container whose
    `securityContext.privileged` is `true`.

    ## Why is this bad?
    A privileged container has every capability, sees all host devices and is not confined
    by seccomp or AppArmor: it is root on the node. One compromised privileged container
    compromises the node and everything scheduled on it.

    ## Example
    ```yaml
    containers:
      - name: app
        image: registry.example/app:1.4.2
        securityContext:
          privileged: true
    ```

    ## Use instead
    ```yaml
    containers:
      - name: app
        image: registry.example/app:1.4.2
        securityContext:
          privileged: false
          capabilities:
            drop: ["ALL"]
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.2
    - Pod Security Standards, baseline, "Privileged Containers"
    """
    assert obj.workload is not None
    for c in obj.workload.containers:
        if c.sc.get("privileged") is True:
            yield Violation(
                f"container {c.name!r} of {_where(obj)} runs privileged; set "
                "securityContext.privileged to false",
                path=f"{c.sc_path}.privileged",
                container=c.name,
            )


# Allowed values live in `rules.psa`, with the version each one changed in.
APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"
PROBE_FIELDS = ("livenessProbe", "readinessProbe", "startupProbe")
LIFECYCLE_FIELDS = ("postStart", "preStop")
HANDLER_FIELDS = ("httpGet", "tcpSocket")
# KM-121's handlers in the order it reports them: (path, under `lifecycle`, field).
_PROBES: tuple[tuple[tuple[str, ...], bool, str], ...] = tuple(
    ((name,), False, name) for name in PROBE_FIELDS
)
_HANDLERS = _PROBES + tuple((("lifecycle", name), True, name) for name in LIFECYCLE_FIELDS)


def _host_namespace(obj: ObjectView, field: str, what: str) -> Iterator[Violation]:
    w = obj.workload
    assert w is not None
    if w.spec.get(field) is True:
        yield Violation(
            f"{_where(obj)} shares the node's {what} (spec.{field}: true); remove it",
            path=f"{w.spec_path}.{field}",
        )


@rule(
    id="KM-102",
    title="Pod shares the host PID namespace",
    severity=Severity.HIGH,
    category="pod-security",
    cis=("5.2.3",),
    pss=("baseline/host-namespaces",),
    references=(PSS_DOC, NSA),
    remediation="Remove `hostPID: true` from the pod spec.",
    kinds=POD_KINDS,
)
def host_pid(obj: ObjectView) -> Iterator[Violation]:
    """Flags pods that share the node's process ID namespace.

    ## What it does
    Reports pod templates with `hostPID: true`.

    ## Why is this bad?
    With the host PID namespace a container sees every process on the node, can read their
    environment and `/proc` entries, and (with ptrace or signals) interfere with them,
    including the kubelet and other pods' processes.

    ## Example
    ```yaml
    spec:
      hostPID: true
    ```

    ## Use instead
    ```yaml
    spec:
      hostPID: false   # or leave it unset
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.3
    - Pod Security Standards, baseline, "Host Namespaces"
    """
    return _host_namespace(obj, "hostPID", "process ID namespace")


@rule(
    id="KM-103",
    title="Pod shares the host IPC namespace",
    severity=Severity.HIGH,
    category="pod-security",
    cis=("5.2.4",),
    pss=("baseline/host-namespaces",),
    references=(PSS_DOC, NSA),
    remediation="Remove `hostIPC: true` from the pod spec.",
    kinds=POD_KINDS,
)
def host_ipc(obj: ObjectView) -> Iterator[Violation]:
    """Flags pods that share the node's IPC namespace.

    ## What it does
    Reports pod templates with `hostIPC: true`.

    ## Why is this bad?
    Sharing the host IPC namespace exposes shared memory segments and message queues of
    every process on the node, which can leak data or be used to tamper with them.

    ## Example
    ```yaml
    spec:
      hostIPC: true
    ```

    ## Use instead
    ```yaml
    spec:
      hostIPC: false   # or leave it unset
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.4
    - Pod Security Standards, baseline, "Host Namespaces"
    """
    return _host_namespace(obj, "hostIPC", "IPC namespace")


@rule(
    id="KM-104",
    title="Pod uses the host network",
    severity=Severity.HIGH,
    category="pod-security",
    cis=("5.2.5",),
    pss=("baseline/host-namespaces",),
    references=(PSS_DOC, NSA),
    remediation="Remove `hostNetwork: true` from the pod spec; expose the workload with a "
    "Service instead.",
    kinds=POD_KINDS,
)
def host_network(obj: ObjectView) -> Iterator[Violation]:
    """Flags pods that share the node's network namespace.

    ## What it does
    Reports pod templates with `hostNetwork: true`.

    ## Why is this bad?
    A pod on the host network can bind any node port, sniff traffic on node interfaces,
    reach services listening on localhost (the kubelet's read-only port, node-local
    metadata endpoints) and bypasses NetworkPolicy.

    ## Example
    ```yaml
    spec:
      hostNetwork: true
    ```

    ## Use instead
    ```yaml
    spec:
      hostNetwork: false   # or leave it unset; publish ports through a Service
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.5
    - Pod Security Standards, baseline, "Host Namespaces"
    """
    return _host_namespace(obj, "hostNetwork", "network namespace")


@rule(
    id="KM-105",
    title="Container allows privilege escalation",
    severity=Severity.MEDIUM,
    category="pod-security",
    cis=("5.2.6",),
    pss=("restricted/privilege-escalation",),
    references=(PSS_DOC, NSA),
    remediation="Set `securityContext.allowPrivilegeEscalation: false` on every container.",
    kinds=POD_KINDS,
)
def privilege_escalation(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers that do not set `allowPrivilegeEscalation: false`.

    ## What it does
    Reports every (init, ephemeral) container whose `securityContext.allowPrivilegeEscalation`
    is not explicitly `false`. The field defaults to allowing escalation, so leaving it unset
    fails. Part of the restricted profile since policy v1.8; Windows pods
    (`spec.os.name: windows`) are skipped from v1.25 on, as the restricted profile does.

    ## Why is this bad?
    Without `no_new_privs`, a process can gain more privileges than its parent through setuid
    binaries or file capabilities, turning a foothold into root inside the container.

    ## Example
    ```yaml
    containers:
      - name: app
        image: registry.example/app:1.4.2
    ```

    ## Use instead
    ```yaml
    containers:
      - name: app
        image: registry.example/app:1.4.2
        securityContext:
          allowPrivilegeEscalation: false
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.6
    - Pod Security Standards, restricted, "Privilege Escalation"
    """
    w = obj.workload
    assert w is not None
    if not psa.in_force(obj, "allowPrivilegeEscalation") or _windows_exempt(obj):
        return
    for c in w.containers:
        value = c.sc.get("allowPrivilegeEscalation")
        if value is not False:
            state = "allows" if value is True else "does not forbid"
            yield Violation(
                f"container {c.name!r} of {_where(obj)} {state} privilege escalation; set "
                "securityContext.allowPrivilegeEscalation to false",
                path=f"{c.sc_path}.allowPrivilegeEscalation",
                container=c.name,
            )


@rule(
    id="KM-106",
    title="Container may run as root (runAsNonRoot not enforced)",
    severity=Severity.MEDIUM,
    category="pod-security",
    cis=("5.2.7",),
    pss=("restricted/running-as-non-root",),
    references=(PSS_DOC, NSA),
    remediation="Set `securityContext.runAsNonRoot: true` at pod level (and do not override "
    "it with false in any container).",
    kinds=POD_KINDS,
)
def run_as_non_root(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers for which the kubelet does not enforce a non-root user.

    ## What it does
    Resolves `runAsNonRoot` and `runAsUser` as the kubelet does (a container's own setting
    wins, otherwise the pod's applies) and reports every container that may run as root:
    its effective `runAsNonRoot` is not `true` and it has no explicit non-zero `runAsUser`.
    `runAsNonRoot: true` on the pod and not overridden passes; `false` on a container fails
    even when the pod says `true`. A container with an explicit non-zero UID is not a root
    container (CIS 5.2.7); that the restricted profile still wants `runAsNonRoot: true` for
    it is reported by KM-124. Pods with `hostUsers: false` run in a user namespace (root in
    the container is unprivileged on the node) and are not reported.

    ## Why is this bad?
    Without `runAsNonRoot: true` a container runs as whatever user its image declares, often
    root. Root in a container is one kernel bug or misconfiguration away from root on the
    node, and it can modify anything in the container's filesystem.

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
        runAsNonRoot: true
        runAsUser: 10001
      containers:
        - name: app
          image: registry.example/app:1.4.2
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.7
    - Pod Security Standards, restricted, "Running as Non-root"
    """
    w = obj.workload
    assert w is not None
    if psa.relaxed_for_user_namespace(obj):
        return
    for c in w.containers:
        value, path = c.effective("runAsNonRoot")
        if value is True or _explicit_uid(c) is not None:
            continue
        if value is False:
            message = (
                f"container {c.name!r} of {_where(obj)} sets runAsNonRoot to false; set it to true"
            )
        else:
            message = (
                f"container {c.name!r} of {_where(obj)} may run as root: neither it nor "
                "the pod sets securityContext.runAsNonRoot: true"
            )
        yield Violation(message, path=path, container=c.name)


@rule(
    id="KM-107",
    title="Container runs as UID 0",
    severity=Severity.HIGH,
    category="pod-security",
    cis=("5.2.7",),
    pss=("restricted/running-as-non-root-user",),
    references=(PSS_DOC, NSA),
    remediation="Set `runAsUser` to a non-zero UID (or remove it and build the image with a "
    "non-root USER).",
    kinds=POD_KINDS,
)
def run_as_user_root(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers whose effective `runAsUser` is 0 (root).

    ## What it does
    Resolves `runAsUser` with the kubelet's precedence (container over pod) and reports
    containers that end up with UID 0: `runAsUser: 0` on a container fails even if the pod
    says non-root, and a pod-level `runAsUser: 0` fails for every container that does not
    set its own UID. Pods with `hostUsers: false` (user namespaces) are not reported.

    ## Why is this bad?
    UID 0 in the container is root on the node's kernel unless user namespaces are in use;
    any container escape is then a node compromise.

    ## Example
    ```yaml
    containers:
      - name: app
        image: registry.example/app:1.4.2
        securityContext:
          runAsUser: 0
    ```

    ## Use instead
    ```yaml
    containers:
      - name: app
        image: registry.example/app:1.4.2
        securityContext:
          runAsUser: 10001
          runAsNonRoot: true
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.7
    - Pod Security Standards, restricted, "Running as Non-root user"
    """
    w = obj.workload
    assert w is not None
    if psa.relaxed_for_user_namespace(obj) or not psa.in_force(obj, "runAsUser"):
        return
    inherited = False
    for c in w.containers:
        value, path = c.effective("runAsUser")
        if _is_uid(value) and value == 0:
            inherited = inherited or c.sc.get("runAsUser") is None
            yield Violation(
                f"container {c.name!r} of {_where(obj)} runs as UID 0 (root); set runAsUser "
                "to a non-zero UID",
                path=path,
                container=c.name,
            )
    pod_value = w.pod_sc.get("runAsUser")
    if _is_uid(pod_value) and pod_value == 0 and not inherited:
        yield Violation(
            f"{_where(obj)} sets runAsUser 0 at pod level; every container overrides it, but "
            "Pod Security admission (restricted) refuses runAsUser=0 anywhere: remove it",
            path=f"{w.pod_sc_path}.runAsUser",
        )


def _is_uid(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _explicit_uid(c: ContainerView) -> int | None:
    """The container's effective runAsUser when it is an explicit non-zero UID."""
    value, _ = c.effective("runAsUser")
    return value if _is_uid(value) and value != 0 else None


@rule(
    id="KM-124",
    title="runAsNonRoot not set for a container with a non-root UID",
    severity=Severity.LOW,
    category="pod-security",
    pss=("restricted/running-as-non-root",),
    references=(PSS_DOC,),
    remediation="Set `securityContext.runAsNonRoot: true` at pod level (and never false on "
    "the pod or a container).",
    kinds=POD_KINDS,
)
def run_as_non_root_not_declared(obj: ObjectView) -> Iterator[Violation]:
    """Flags what the restricted profile's runAsNonRoot control refuses beyond root containers.

    ## What it does
    Reports containers that run with an explicit non-zero `runAsUser` (so they are not root
    containers, see KM-106) but whose effective `runAsNonRoot` is not `true`, and a pod-level
    `runAsNonRoot: false` that every container overrides: Pod Security admission refuses
    both at the restricted level. Pods with `hostUsers: false` are not reported.

    ## Why is this bad?
    `runAsNonRoot: true` makes the kubelet refuse to start the container as UID 0 whatever
    the image or a later edit says; an explicit UID alone is one edit away from root, and
    namespaces enforcing the restricted profile refuse the pod.

    ## Example
    ```yaml
    spec:
      containers:
        - name: app
          image: registry.example/app:1.4.2
          securityContext:
            runAsUser: 10001
    ```

    ## Use instead
    ```yaml
    spec:
      securityContext:
        runAsNonRoot: true
      containers:
        - name: app
          image: registry.example/app:1.4.2
          securityContext:
            runAsUser: 10001
    ```

    ## References
    - Pod Security Standards, restricted, "Running as Non-root"
    """
    w = obj.workload
    assert w is not None
    if psa.relaxed_for_user_namespace(obj):
        return
    inherited = False
    for c in w.containers:
        value, path = c.effective("runAsNonRoot")
        own = c.sc.get("runAsNonRoot")
        inherited = inherited or own is None
        uid = _explicit_uid(c)
        if value is True or uid is None:
            continue
        setting = "sets runAsNonRoot to false" if value is False else "does not set runAsNonRoot"
        yield Violation(
            f"container {c.name!r} of {_where(obj)} runs as UID {uid}, not root, but {setting}:"
            " the restricted Pod Security Standard requires securityContext.runAsNonRoot: true",
            path=path,
            container=c.name,
        )
    if w.pod_sc.get("runAsNonRoot") is False and not inherited:
        yield Violation(
            f"{_where(obj)} sets runAsNonRoot: false at pod level; every container overrides "
            "it, but the restricted Pod Security Standard refuses false anywhere: remove it",
            path=f"{w.pod_sc_path}.runAsNonRoot",
        )


def _has_cap(caps: list[tuple[int, str]], name: str) -> tuple[int, str] | None:
    for index, cap in caps:
        if cap in (name, "ALL"):
            return index, cap
    return None


@rule(
    id="KM-108",
    title="Container keeps the NET_RAW capability",
    severity=Severity.MEDIUM,
    category="pod-security",
    cis=("5.2.8",),
    references=(NSA,),
    remediation="Add `NET_RAW` (or `ALL`) to `securityContext.capabilities.drop`; never add it.",
    kinds=POD_KINDS,
)
def net_raw(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers that add or do not drop `NET_RAW`.

    ## What it does
    Reports containers that add `NET_RAW` (or `ALL`) to their capabilities, and containers
    that drop neither `NET_RAW` nor `ALL` — most container runtimes grant `NET_RAW` by
    default. Windows pods are skipped (Linux capabilities do not apply).

    ## Why is this bad?
    `NET_RAW` lets a process craft arbitrary packets: ARP and DNS spoofing of other pods on
    the node, and a long list of kernel exploits start from raw sockets.

    ## Example
    ```yaml
    securityContext:
      capabilities:
        drop: ["MKNOD"]
    ```

    ## Use instead
    ```yaml
    securityContext:
      capabilities:
        drop: ["ALL"]
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.8
    """
    w = obj.workload
    assert w is not None
    if w.is_windows:
        return
    for c in w.containers:
        added = _has_cap(c.capability_list("add"), "NET_RAW")
        if added is not None:
            yield Violation(
                f"container {c.name!r} of {_where(obj)} adds capability {added[1]} (which "
                "includes NET_RAW); remove it",
                path=f"{c.sc_path}.capabilities.add[{added[0]}]",
                container=c.name,
            )
        elif _has_cap(c.capability_list("drop"), "NET_RAW") is None:
            yield Violation(
                f"container {c.name!r} of {_where(obj)} keeps the runtime's default NET_RAW "
                "capability; add NET_RAW or ALL to securityContext.capabilities.drop",
                path=f"{c.sc_path}.capabilities.drop",
                container=c.name,
            )


@rule(
    id="KM-109",
    title="Container adds capabilities beyond the baseline set",
    severity=Severity.HIGH,
    category="pod-security",
    cis=("5.2.9",),
    pss=("baseline/capabilities", "restricted/capabilities"),
    references=(PSS_DOC, NSA),
    remediation="Remove the capability from `securityContext.capabilities.add`; if the "
    "workload truly needs it, exempt it explicitly with a reason and an owner.",
    kinds=POD_KINDS,
)
def capabilities_beyond_baseline(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers that add a capability outside the Pod Security baseline set.

    ## What it does
    Reports each entry of `securityContext.capabilities.add` that is not one of
    `AUDIT_WRITE, CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, MKNOD, NET_BIND_SERVICE,
    SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT`, compared verbatim as Pod Security
    admission does (`CAP_CHOWN` or `chown` is not in the list). Such an addition violates
    both the baseline and the restricted profile.

    ## Why is this bad?
    Capabilities such as `SYS_ADMIN`, `NET_ADMIN`, `SYS_PTRACE` or `SYS_MODULE` are
    near-equivalents of root on the node and are the usual path of container escapes.

    ## Example
    ```yaml
    securityContext:
      capabilities:
        add: ["SYS_ADMIN"]
    ```

    ## Use instead
    ```yaml
    securityContext:
      capabilities:
        drop: ["ALL"]
        add: ["NET_BIND_SERVICE"]   # only if it must bind a port below 1024
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.9
    - Pod Security Standards, baseline, "Capabilities"
    """
    assert obj.workload is not None
    for c in obj.workload.containers:
        for index, cap in c.raw_capabilities("add"):
            if cap in BASELINE_CAPABILITIES:
                continue
            normal = cap.upper().removeprefix("CAP_")
            how = (
                f" (written {cap!r}: Pod Security admission accepts only the exact name {normal})"
                if normal in BASELINE_CAPABILITIES
                else ""
            )
            yield Violation(
                f"container {c.name!r} of {_where(obj)} adds capability {cap}, which the "
                f"baseline Pod Security Standard forbids{how}; remove it",
                path=f"{c.sc_path}.capabilities.add[{index}]",
                container=c.name,
            )


@rule(
    id="KM-110",
    title="Container does not drop all capabilities",
    severity=Severity.MEDIUM,
    category="pod-security",
    cis=("5.2.9",),
    pss=("restricted/capabilities",),
    references=(PSS_DOC, NSA),
    remediation='Set `securityContext.capabilities.drop: ["ALL"]` and add back only '
    "NET_BIND_SERVICE if needed.",
    kinds=POD_KINDS,
)
def capabilities_not_dropped(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers whose `capabilities.drop` does not include `ALL`.

    ## What it does
    Reports every container whose `capabilities.drop` does not contain `ALL` (verbatim, as
    Pod Security admission compares it: `all` does not count). Windows pods are skipped, as
    the restricted profile does.

    ## Why is this bad?
    Container runtimes grant a default set of capabilities (CHOWN, DAC_OVERRIDE, FOWNER,
    SETUID, NET_RAW, ...). Few applications need any of them; each one left enlarges what
    an attacker can do after compromising the process.

    ## Example
    ```yaml
    securityContext:
      capabilities:
        drop: ["NET_RAW"]
    ```

    ## Use instead
    ```yaml
    securityContext:
      capabilities:
        drop: ["ALL"]
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.9
    - Pod Security Standards, restricted, "Capabilities"
    """
    w = obj.workload
    assert w is not None
    if not psa.in_force(obj, "capabilities_restricted") or _windows_exempt(obj):
        return
    for c in w.containers:
        drops = c.raw_capabilities("drop")
        if any(cap == "ALL" for _, cap in drops):
            continue
        spelled = next((cap for _, cap in drops if cap.upper() == "ALL"), None)
        how = (
            f' (it lists {spelled!r}; Pod Security admission accepts only "ALL")' if spelled else ""
        )
        yield Violation(
            f"container {c.name!r} of {_where(obj)} does not drop all capabilities{how}; set "
            'securityContext.capabilities.drop to ["ALL"]',
            path=f"{c.sc_path}.capabilities.drop",
            container=c.name,
        )


@rule(
    id="KM-111",
    title="Container adds a capability the restricted profile forbids",
    severity=Severity.LOW,
    category="pod-security",
    cis=("5.2.9",),
    pss=("restricted/capabilities",),
    references=(PSS_DOC,),
    remediation="Remove the capability from `capabilities.add`; only NET_BIND_SERVICE may be "
    "added under the restricted profile.",
    kinds=POD_KINDS,
)
def capabilities_beyond_restricted(obj: ObjectView) -> Iterator[Violation]:
    """Flags baseline-allowed capabilities that the restricted profile still forbids.

    ## What it does
    Reports entries of `capabilities.add` other than `NET_BIND_SERVICE` that are within the
    baseline set (e.g. `CHOWN`, `SETUID`, `KILL`). Capabilities outside the baseline set are
    reported by KM-109 instead, so one addition is never reported twice. Windows pods are
    skipped, as the restricted profile does.

    ## Why is this bad?
    The restricted profile allows adding only `NET_BIND_SERVICE`. Capabilities such as
    `SETUID`/`SETGID`, `DAC_OVERRIDE` or `CHOWN` let a compromised process switch users or
    bypass file permissions inside the container.

    ## Example
    ```yaml
    securityContext:
      capabilities:
        drop: ["ALL"]
        add: ["CHOWN"]
    ```

    ## Use instead
    ```yaml
    securityContext:
      capabilities:
        drop: ["ALL"]
    ```

    ## References
    - Pod Security Standards, restricted, "Capabilities"
    """
    w = obj.workload
    assert w is not None
    if not psa.in_force(obj, "capabilities_restricted") or _windows_exempt(obj):
        return
    for c in w.containers:
        for index, cap in c.raw_capabilities("add"):
            if cap in BASELINE_CAPABILITIES and cap not in RESTRICTED_ADDABLE_CAPABILITIES:
                yield Violation(
                    f"container {c.name!r} of {_where(obj)} adds capability {cap}; the "
                    "restricted profile allows adding only NET_BIND_SERVICE",
                    path=f"{c.sc_path}.capabilities.add[{index}]",
                    container=c.name,
                )


@rule(
    id="KM-112",
    title="Windows HostProcess container",
    severity=Severity.CRITICAL,
    category="pod-security",
    cis=("5.2.10",),
    pss=("baseline/host-process",),
    references=(PSS_DOC,),
    remediation="Remove `windowsOptions.hostProcess: true` from the pod and its containers.",
    kinds=POD_KINDS,
)
def host_process(obj: ObjectView) -> Iterator[Violation]:
    """Flags Windows HostProcess containers.

    ## What it does
    Resolves `securityContext.windowsOptions.hostProcess` field by field (container over
    pod, as the kubelet merges `windowsOptions`) and reports containers for which it is
    `true`.

    ## Why is this bad?
    A HostProcess container runs directly on the Windows node as a host process, with
    access to the host's filesystem, network and (typically) SYSTEM privileges: there is no
    container isolation at all.

    ## Example
    ```yaml
    spec:
      securityContext:
        windowsOptions:
          hostProcess: true
          runAsUserName: "NT AUTHORITY\\SYSTEM"
      hostNetwork: true
    ```

    ## Use instead
    ```yaml
    spec:
      securityContext:
        windowsOptions:
          runAsUserName: ContainerUser
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.10
    - Pod Security Standards, baseline, "HostProcess"
    """
    w = obj.workload
    assert w is not None
    inherited = False
    for c in w.containers:
        value, path = c.effective_windows("hostProcess")
        if value is True:
            inherited = inherited or not path.startswith(c.sc_path)
            yield Violation(
                f"container {c.name!r} of {_where(obj)} is a Windows HostProcess container; "
                "remove windowsOptions.hostProcess",
                path=path,
                container=c.name,
            )
    pod_options = w.pod_sc.get("windowsOptions")
    if isinstance(pod_options, dict) and pod_options.get("hostProcess") is True and not inherited:
        yield Violation(
            f"{_where(obj)} sets windowsOptions.hostProcess: true at pod level; Pod Security "
            "admission refuses it even when every container overrides it: remove it",
            path=f"{w.pod_sc_path}.windowsOptions.hostProcess",
        )


@rule(
    id="KM-113",
    title="Pod mounts a hostPath volume",
    severity=Severity.HIGH,
    category="pod-security",
    cis=("5.2.11",),
    pss=("baseline/hostpath-volumes", "restricted/volume-types"),
    references=(PSS_DOC, NSA),
    remediation="Replace the hostPath volume with an emptyDir, a ConfigMap/Secret or a "
    "PersistentVolumeClaim.",
    kinds=POD_KINDS,
)
def host_path_volume(obj: ObjectView) -> Iterator[Violation]:
    """Flags pods that mount directories or files of the node (`hostPath`).

    ## What it does
    Reports every volume of the pod spec that has a `hostPath` source.

    ## Why is this bad?
    hostPath volumes expose the node's filesystem: mounting `/`, `/var/run/docker.sock`,
    `/var/lib/kubelet` or `/etc` is a direct route to node takeover, and even read-only
    mounts leak credentials of other pods.

    ## Example
    ```yaml
    volumes:
      - name: docker
        hostPath:
          path: /var/run/docker.sock
    ```

    ## Use instead
    ```yaml
    volumes:
      - name: scratch
        emptyDir: {}
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.11
    - Pod Security Standards, baseline, "HostPath Volumes"
    """
    w = obj.workload
    assert w is not None
    for index, volume in w.volumes:
        if volume.get("hostPath") is not None:
            host = volume["hostPath"]
            where = host.get("path") if isinstance(host, dict) else None
            yield Violation(
                f"volume {volume.get('name')!r} of {_where(obj)} mounts the node path "
                f"{where!r}; use emptyDir, a ConfigMap/Secret or a PersistentVolumeClaim",
                path=w.path("volumes", index, "hostPath"),
            )


@rule(
    id="KM-114",
    title="Container binds a host port",
    severity=Severity.MEDIUM,
    category="pod-security",
    cis=("5.2.12",),
    pss=("baseline/host-ports",),
    references=(PSS_DOC, NSA),
    remediation="Remove `hostPort` from the container ports and publish them with a Service.",
    kinds=POD_KINDS,
)
def host_port(obj: ObjectView) -> Iterator[Violation]:
    """Flags container ports mapped to a port of the node (`hostPort`).

    ## What it does
    Reports every `ports[*].hostPort` that is set and not 0, in every container.

    ## Why is this bad?
    A host port opens the node's own interface to the pod, bypasses NetworkPolicy-based
    isolation, pins the pod to nodes where the port is free, and exposes the workload to
    whatever networks reach the node.

    ## Example
    ```yaml
    ports:
      - containerPort: 8080
        hostPort: 8080
    ```

    ## Use instead
    ```yaml
    ports:
      - containerPort: 8080   # and a Service in front
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.2.12
    - Pod Security Standards, baseline, "Host Ports"
    """
    assert obj.workload is not None
    for c in obj.workload.containers:
        ports = c.raw.get("ports")
        if not isinstance(ports, list):
            continue
        for index, port in enumerate(ports):
            if isinstance(port, dict) and port.get("hostPort") not in (None, 0):
                yield Violation(
                    f"container {c.name!r} of {_where(obj)} binds host port "
                    f"{port['hostPort']}; remove hostPort and use a Service",
                    path=c.field_path("ports", index, "hostPort"),
                    container=c.name,
                )


def _one_of(value: object, allowed: frozenset[str]) -> bool:
    """Whether a manifest value is one of the allowed strings (never raises: lists and
    mappings where the API wants a string are simply not allowed)."""
    return isinstance(value, str) and value in allowed


def _profile_type(value: object) -> object:
    return value.get("type") if isinstance(value, dict) else value


def _own_settings(obj: ObjectView, field: str) -> Iterator[tuple[object, str, str | None, str]]:
    """`(value, path, container, who)` for the pod's own securityContext field and each
    container's own, as Pod Security admission checks them: separately, so that an empty
    container setting never masks a forbidden pod-level one."""
    w = obj.workload
    assert w is not None
    pod_value = w.pod_sc.get(field)
    if pod_value is not None:
        yield pod_value, f"{w.pod_sc_path}.{field}", None, f"{_where(obj)} (pod level)"
    for c in w.containers:
        value = c.sc.get(field)
        if value is not None:
            yield value, f"{c.sc_path}.{field}", c.name, f"container {c.name!r} of {_where(obj)}"


@rule(
    id="KM-115",
    title="AppArmor profile disabled or overridden",
    severity=Severity.HIGH,
    category="pod-security",
    pss=("baseline/apparmor",),
    references=(PSS_DOC,),
    remediation="Use `appArmorProfile.type: RuntimeDefault` (or `Localhost`), or leave it "
    "unset; remove `unconfined` AppArmor annotations.",
    kinds=POD_KINDS,
)
def apparmor(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers whose AppArmor profile is not the runtime default or a local profile.

    ## What it does
    Checks the pod's `securityContext.appArmorProfile` and each container's on its own (as
    Pod Security admission does) and reports types other than `RuntimeDefault` and
    `Localhost` (e.g. `Unconfined`).
    Also reports the legacy annotations
    `container.apparmor.security.beta.kubernetes.io/<container>` with values other than
    empty, `runtime/default` or `localhost/<profile>`.

    ## Why is this bad?
    AppArmor confines what a container may do (mounts, raw access to /proc and /sys files);
    running unconfined removes one of the few layers between a compromised process and the
    node.

    ## Example
    ```yaml
    securityContext:
      appArmorProfile:
        type: Unconfined
    ```

    ## Use instead
    ```yaml
    securityContext:
      appArmorProfile:
        type: RuntimeDefault
    ```

    ## References
    - Pod Security Standards, baseline, "AppArmor"
    """
    w = obj.workload
    assert w is not None
    for value, path, container, who in _own_settings(obj, "appArmorProfile"):
        kind = _profile_type(value)
        if not _one_of(kind, PROFILE_TYPES):
            yield Violation(
                f"{who} sets AppArmor profile type {kind!r}; use RuntimeDefault or Localhost",
                path=f"{path}.type" if isinstance(value, dict) else path,
                container=container,
            )
    for key, profile in w.annotations.items():
        if not key.startswith(APPARMOR_ANNOTATION_PREFIX):
            continue
        text = str(profile or "")
        if text and text != "runtime/default" and not text.startswith("localhost/"):
            container = key[len(APPARMOR_ANNOTATION_PREFIX) :]
            yield Violation(
                f"annotation {key} of {_where(obj)} sets AppArmor profile {text!r}; use "
                "runtime/default or localhost/<profile>",
                path=f"{w.meta_path}.annotations[{key!r}]",
                container=container or None,
            )


@rule(
    id="KM-116",
    title="Custom SELinux type, user or role",
    severity=Severity.HIGH,
    category="pod-security",
    pss=("baseline/selinux",),
    references=(PSS_DOC,),
    remediation="Remove `seLinuxOptions.user`/`role`; use a standard container type "
    "(container_t, container_init_t, container_kvm_t, container_engine_t).",
    kinds=POD_KINDS,
)
def selinux(obj: ObjectView) -> Iterator[Violation]:
    """Flags SELinux options that escape the standard container confinement.

    ## What it does
    Checks the pod's `securityContext.seLinuxOptions` and each container's on its own, as
    Pod Security admission does (so a container's empty `seLinuxOptions: {}` does not hide a
    forbidden pod-level type), and reports a `type` other than empty, `container_t`,
    `container_init_t`, `container_kvm_t` or (from policy v1.31) `container_engine_t`, and
    any non-empty `user` or `role`.

    ## Why is this bad?
    The SELinux type decides what the container's processes may touch; types such as
    `spc_t` (super-privileged container) or `unconfined_t` turn confinement off, and custom
    users or roles can grant access to host resources.

    ## Example
    ```yaml
    securityContext:
      seLinuxOptions:
        type: spc_t
    ```

    ## Use instead
    ```yaml
    securityContext:
      seLinuxOptions:
        level: "s0:c123,c456"   # levels are fine; leave type, user and role unset
    ```

    ## References
    - Pod Security Standards, baseline, "SELinux"
    """
    allowed: frozenset[str] | None = None
    for value, path, container, who in _own_settings(obj, "seLinuxOptions"):
        if not isinstance(value, dict):
            continue
        if allowed is None:
            allowed = psa.at(SELINUX_TYPES, psa.policy_version(obj))
        problems = []
        selinux_type = value.get("type") or ""
        if not _one_of(selinux_type, allowed):
            problems.append((f"type {selinux_type!r}", "type"))
        for field in ("user", "role"):
            if value.get(field):
                problems.append((f"{field} {value[field]!r}", field))
        for what, field in problems:
            yield Violation(
                f"{who} sets SELinux {what}; only the standard container types are allowed "
                "and user/role must be unset",
                path=f"{path}.{field}",
                container=container,
            )


@rule(
    id="KM-117",
    title="Container unmasks /proc",
    severity=Severity.HIGH,
    category="pod-security",
    pss=("baseline/proc-mount-type", "restricted/proc-mount-type"),
    references=(PSS_DOC,),
    remediation="Remove `securityContext.procMount` or set it to `Default`.",
    kinds=POD_KINDS,
)
def proc_mount(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers with a `procMount` other than `Default`.

    ## What it does
    Reports containers whose `securityContext.procMount` is set to anything but `Default`
    (i.e. `Unmasked`). From policy v1.35 on, the baseline profile allows any procMount in a
    pod that runs in its own user namespace (`hostUsers: false`); such pods are reported by
    KM-125 (restricted profile) instead.

    ## Why is this bad?
    The default /proc mount masks and makes read-only paths such as `/proc/sys`,
    `/proc/sysrq-trigger` and `/proc/kcore`; unmasking them exposes kernel tunables and
    memory of the node.

    ## Example
    ```yaml
    securityContext:
      procMount: Unmasked
    ```

    ## Use instead
    ```yaml
    securityContext: {}   # procMount defaults to Default
    ```

    ## References
    - Pod Security Standards, baseline, "/proc Mount Type"
    """
    if not _user_namespace_proc_mount(obj):
        yield from _unmasked_proc(obj, "")


def _user_namespace_proc_mount(obj: ObjectView) -> bool:
    """Whether the pod is in the baseline's user-namespace procMount allowance (v1.35+)."""
    return psa.relaxed_for_user_namespace(obj) and psa.policy_version(obj) >= (1, 35)


def _unmasked_proc(obj: ObjectView, note: str) -> Iterator[Violation]:
    assert obj.workload is not None
    for c in obj.workload.containers:
        value = c.sc.get("procMount")
        if value is not None and value != "Default":
            yield Violation(
                f"container {c.name!r} of {_where(obj)} sets procMount {value!r}{note}; "
                "remove it or use Default",
                path=f"{c.sc_path}.procMount",
                container=c.name,
            )


@rule(
    id="KM-125",
    title="Container unmasks /proc in a user-namespaced pod",
    severity=Severity.LOW,
    category="pod-security",
    pss=("restricted/proc-mount-type",),
    references=(PSS_DOC,),
    remediation="Remove `securityContext.procMount` or set it to `Default`.",
    kinds=POD_KINDS,
)
def proc_mount_user_namespace(obj: ObjectView) -> Iterator[Violation]:
    """Flags unmasked /proc in pods with `hostUsers: false` (restricted profile, v1.35+).

    ## What it does
    From policy v1.35 on, the baseline profile allows any `procMount` in a pod that runs in
    its own user namespace (`hostUsers: false`), and the restricted profile still requires
    `Default`. Reports containers of such pods whose `securityContext.procMount` is not
    `Default`. (Other pods are reported by KM-117.)

    ## Why is this bad?
    Inside a user namespace an unmasked /proc exposes far less of the node, but still more
    than the default masks: namespaces enforcing the restricted profile refuse the pod.

    ## Example
    ```yaml
    spec:
      hostUsers: false
      containers:
        - name: builder
          securityContext:
            procMount: Unmasked
    ```

    ## Use instead
    ```yaml
    spec:
      hostUsers: false
      containers:
        - name: builder
          securityContext: {}
    ```

    ## References
    - Pod Security Standards, restricted, "/proc Mount Type"
    """
    if _user_namespace_proc_mount(obj):
        yield from _unmasked_proc(
            obj, " (baseline allows it in a user namespace, the restricted profile does not)"
        )


@rule(
    id="KM-118",
    title="Seccomp explicitly disabled",
    severity=Severity.HIGH,
    category="pod-security",
    pss=("baseline/seccomp", "restricted/seccomp"),
    references=(PSS_DOC, NSA),
    remediation="Set `seccompProfile.type: RuntimeDefault` (or `Localhost`); never `Unconfined`.",
    kinds=POD_KINDS,
)
def seccomp_unconfined(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers whose seccomp profile is set to `Unconfined` (or anything invalid).

    ## What it does
    Checks the pod's `securityContext.seccompProfile` and each container's on its own, as
    Pod Security admission does (from policy v1.19): a type other than `RuntimeDefault` or
    `Localhost` (i.e. `Unconfined`) fails wherever it is set, even when every container
    overrides a pod-level one. Under policy versions before v1.19, when profiles were set by
    annotation, reports `seccomp.security.alpha.kubernetes.io/pod` and
    `container.seccomp.security.alpha.kubernetes.io/<container>` set to `unconfined`.

    ## Why is this bad?
    Seccomp blocks the system calls most kernel exploits rely on; turning it off exposes
    the whole kernel attack surface to the container.

    ## Example
    ```yaml
    spec:
      securityContext:
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: app
          securityContext:
            seccompProfile:
              type: Unconfined
    ```

    ## Use instead
    ```yaml
    spec:
      securityContext:
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: app
    ```

    ## References
    - Pod Security Standards, baseline and restricted, "Seccomp"
    """
    w = obj.workload
    assert w is not None
    if psa.policy_version(obj) >= (1, 19):
        for value, path, container, who in _own_settings(obj, "seccompProfile"):
            kind = _profile_type(value)
            if not _one_of(kind, PROFILE_TYPES):
                yield Violation(
                    f"{who} sets seccomp profile type {kind!r}; use RuntimeDefault or Localhost",
                    path=f"{path}.type" if isinstance(value, dict) else path,
                    container=container,
                )
        return
    annotations = w.annotations
    if not annotations:
        return
    keys = [(SECCOMP_POD_ANNOTATION, None)] + [
        (SECCOMP_CONTAINER_ANNOTATION_PREFIX + c.name, c.name) for c in w.containers
    ]
    for key, container in keys:
        profile = annotations.get(key)
        if profile is None:
            continue
        text = str(profile)
        if text == "unconfined":
            yield Violation(
                f"annotation {key} of {_where(obj)} sets seccomp profile {text!r}; use "
                "runtime/default or localhost/<profile>",
                path=f"{w.meta_path}.annotations[{key!r}]",
                container=container,
            )


@rule(
    id="KM-119",
    title="Seccomp profile not set",
    severity=Severity.MEDIUM,
    category="pod-security",
    pss=("restricted/seccomp",),
    references=(PSS_DOC, NSA),
    remediation="Set `securityContext.seccompProfile.type: RuntimeDefault` at pod level.",
    kinds=POD_KINDS,
)
def seccomp_unset(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers for which neither the container nor the pod sets a seccomp profile.

    ## What it does
    Reports containers whose effective `seccompProfile` (container, else pod) is unset, as
    the restricted profile does from policy v1.19 on (a pod-level profile counts only when
    its type is valid). Explicitly bad values are KM-118's. Windows pods are skipped from
    v1.25 on, as the restricted profile does.

    ## Why is this bad?
    Unless the kubelet runs with `--seccomp-default`, an unset profile means `Unconfined`:
    every system call is available to the container.

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
    - Pod Security Standards, restricted, "Seccomp"
    """
    w = obj.workload
    assert w is not None
    if not psa.in_force(obj, "seccompProfile_restricted") or _windows_exempt(obj):
        return
    pod_set = _one_of(_profile_type(w.pod_sc.get("seccompProfile")), PROFILE_TYPES)
    for c in w.containers:
        if c.sc.get("seccompProfile") is None and not pod_set:
            yield Violation(
                f"container {c.name!r} of {_where(obj)} has no seccomp profile; set "
                "securityContext.seccompProfile.type to RuntimeDefault on the pod",
                path=f"{w.pod_sc_path}.seccompProfile",
                container=c.name,
            )


@rule(
    id="KM-120",
    title="Unsafe sysctl",
    severity=Severity.HIGH,
    category="pod-security",
    pss=("baseline/sysctls",),
    references=(PSS_DOC,),
    remediation="Remove the sysctl, or tune it on the node instead of from a pod.",
    kinds=POD_KINDS,
)
def unsafe_sysctl(obj: ObjectView) -> Iterator[Violation]:
    """Flags pods that set sysctls outside the safe, namespaced set.

    ## What it does
    Reports entries of `spec.securityContext.sysctls` whose name is not in the safe set of
    the object's policy version: `kernel.shm_rmid_forced`, `net.ipv4.ip_local_port_range`,
    `net.ipv4.ip_unprivileged_port_start`, `net.ipv4.tcp_syncookies`,
    `net.ipv4.ping_group_range` (v1.0); `net.ipv4.ip_local_reserved_ports` (v1.27);
    `net.ipv4.tcp_keepalive_time`, `net.ipv4.tcp_fin_timeout`,
    `net.ipv4.tcp_keepalive_intvl`, `net.ipv4.tcp_keepalive_probes` (v1.29);
    `net.ipv4.tcp_rmem`, `net.ipv4.tcp_wmem` (v1.32); `net.ipv4.tcp_slow_start_after_idle`,
    `net.ipv4.tcp_notsent_lowat` (v1.37).

    ## Why is this bad?
    Other sysctls are either not namespaced (they change the whole node's kernel) or not
    isolated between pods; they can disable security mechanisms or starve other workloads.

    ## Example
    ```yaml
    spec:
      securityContext:
        sysctls:
          - name: kernel.msgmax
            value: "65536"
    ```

    ## Use instead
    ```yaml
    spec:
      securityContext:
        sysctls:
          - name: net.ipv4.ip_local_port_range
            value: "32768 60999"
    ```

    ## References
    - Pod Security Standards, baseline, "Sysctls"
    """
    w = obj.workload
    assert w is not None
    sysctls = w.pod_sc.get("sysctls")
    if not isinstance(sysctls, list):
        return
    allowed = psa.at(SAFE_SYSCTLS, psa.policy_version(obj))
    for index, item in enumerate(sysctls):
        name = item.get("name") if isinstance(item, dict) else None
        if not _one_of(name, allowed):
            yield Violation(
                f"{_where(obj)} sets sysctl {name!r}, which is not in the safe set; remove "
                "it or tune the node instead",
                path=f"{w.pod_sc_path}.sysctls[{index}].name",
            )


@rule(
    id="KM-121",
    title="Probe or lifecycle hook targets another host",
    severity=Severity.MEDIUM,
    category="pod-security",
    pss=("baseline/host-probes",),
    references=(PSS_DOC,),
    remediation="Remove `host` from httpGet/tcpSocket probes and lifecycle handlers; probe "
    "the pod itself.",
    kinds=POD_KINDS,
)
def host_probe(obj: ObjectView) -> Iterator[Violation]:
    """Flags probes and lifecycle handlers that set a `host`.

    ## What it does
    Reports a non-empty `host` in `httpGet` or `tcpSocket` of liveness, readiness and
    startup probes and of `lifecycle.postStart` / `lifecycle.preStop` handlers, in every
    container (Pod Security Standards 1.34+).

    ## Why is this bad?
    The kubelet performs these requests from the node. A probe aimed at another host turns
    the kubelet into a proxy for requests the pod itself could not make (for example to
    node-local services or cloud metadata endpoints).

    ## Example
    ```yaml
    livenessProbe:
      httpGet:
        host: 169.254.169.254
        path: /latest/meta-data/
        port: 80
    ```

    ## Use instead
    ```yaml
    livenessProbe:
      httpGet:
        path: /healthz
        port: 8080
    ```

    ## References
    - Pod Security Standards, baseline, "Probes / Lifecycle Hooks"
    """
    assert obj.workload is not None
    if not psa.in_force(obj, "hostProbesAndHostLifecycle"):
        return
    for c in obj.workload.containers:
        raw = c.raw
        lifecycle: Any = raw.get("lifecycle")
        # The probes, then (when the container has any) the lifecycle handlers.
        sources = _HANDLERS if isinstance(lifecycle, dict) else _PROBES
        for where, in_lifecycle, name in sources:
            handler = (lifecycle if in_lifecycle else raw).get(name)
            if not isinstance(handler, dict):
                continue
            for kind in HANDLER_FIELDS:
                action = handler.get(kind)
                if isinstance(action, dict) and action.get("host"):
                    yield Violation(
                        f"container {c.name!r} of {_where(obj)}: {'.'.join(where)} {kind} "
                        f"targets host {action['host']!r}; remove host",
                        path=c.field_path(*where, kind, "host"),
                        container=c.name,
                    )


def _volume_type(volume: Mapping[str, Any]) -> str | None:
    """The volume's source, or None when it names none (the API server defaults such a
    volume to emptyDir)."""
    for key in volume:
        if key in VOLUME_SOURCES:
            return str(key)
    return None


@rule(
    id="KM-122",
    title="Volume type not allowed by the restricted profile",
    severity=Severity.MEDIUM,
    category="pod-security",
    pss=("restricted/volume-types",),
    references=(PSS_DOC,),
    remediation="Use configMap, csi, downwardAPI, emptyDir, ephemeral, image, "
    "persistentVolumeClaim, projected or secret volumes (storage through PVCs).",
    kinds=POD_KINDS,
)
def restricted_volume_type(obj: ObjectView) -> Iterator[Violation]:
    """Flags volumes of types outside the restricted profile's list.

    ## What it does
    Reports volumes whose source is not one of `configMap`, `csi`, `downwardAPI`,
    `emptyDir`, `ephemeral`, `image`, `persistentVolumeClaim`, `projected`, `secret` (for
    example `nfs`, `iscsi`, `gitRepo`, `flexVolume`, `rbd`, cloud disks). `hostPath` is
    reported by KM-113 and not repeated here. A volume that names no source at all is
    defaulted to `emptyDir` by the API server and passes.

    ## Why is this bad?
    In-tree volume plugins let the pod author pick arbitrary storage endpoints, credentials
    and mount options that are executed on the node; the restricted profile requires storage
    to go through PersistentVolumeClaims that an administrator controls.

    ## Example
    ```yaml
    volumes:
      - name: data
        nfs:
          server: 10.0.0.5
          path: /exports/data
    ```

    ## Use instead
    ```yaml
    volumes:
      - name: data
        persistentVolumeClaim:
          claimName: data
    ```

    ## References
    - Pod Security Standards, restricted, "Volume Types"
    """
    w = obj.workload
    assert w is not None
    for index, volume in w.volumes:
        if volume.get("hostPath") is not None:
            continue
        if any(volume.get(t) is not None for t in RESTRICTED_VOLUME_TYPES):
            continue
        kind = _volume_type(volume)
        if kind is None:
            continue
        yield Violation(
            f"volume {volume.get('name')!r} of {_where(obj)} uses volume type {kind!r}, which "
            "the restricted profile forbids; use a PersistentVolumeClaim",
            path=w.path("volumes", index, kind),
        )


@rule(
    id="KM-123",
    title="Container root filesystem is writable",
    severity=Severity.LOW,
    category="pod-security",
    references=(NSA,),
    remediation="Set `securityContext.readOnlyRootFilesystem: true` and mount emptyDir "
    "volumes where the application must write.",
    kinds=POD_KINDS,
)
def writable_root_filesystem(obj: ObjectView) -> Iterator[Violation]:
    """Flags containers without a read-only root filesystem.

    ## What it does
    Reports containers (not ephemeral debug containers) whose
    `securityContext.readOnlyRootFilesystem` is not `true`.

    ## Why is this bad?
    A writable root filesystem lets an attacker drop tools and binaries, modify the
    application or persist across process restarts inside the container. The NSA/CISA
    hardening guide recommends immutable container filesystems.

    ## Example
    ```yaml
    containers:
      - name: app
        image: registry.example/app:1.4.2
    ```

    ## Use instead
    ```yaml
    containers:
      - name: app
        image: registry.example/app:1.4.2
        securityContext:
          readOnlyRootFilesystem: true
        volumeMounts:
          - name: tmp
            mountPath: /tmp
    ```

    ## References
    - NSA/CISA Kubernetes Hardening Guidance, "Immutable container file systems"
    """
    assert obj.workload is not None
    for c in obj.workload.containers:
        if c.is_ephemeral:
            continue
        if c.sc.get("readOnlyRootFilesystem") is not True:
            yield Violation(
                f"container {c.name!r} of {_where(obj)} has a writable root filesystem; set "
                "securityContext.readOnlyRootFilesystem to true",
                path=f"{c.sc_path}.readOnlyRootFilesystem",
                container=c.name,
            )
