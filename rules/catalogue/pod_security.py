"""Pod Security Standards (baseline and restricted) and CIS 5.2.2-5.2.12 rules (KM-1xx).

Allowed values follow the Kubernetes pod-security-admission policy (release 1.35). Container
settings are evaluated after the kubelet's pod/container securityContext precedence (see
`rules.view.ContainerView.effective`), so a pod-level value that every container overrides is
not reported; the path of each violation names the field that actually takes effect.
"""

from __future__ import annotations

from collections.abc import Iterator

from contracts.severity import Severity
from rules.model import Violation, rule
from rules.view import POD_KINDS, ObjectView

NSA = "NSA/CISA Kubernetes Hardening Guidance v1.2, Pod security"
PSS_DOC = "https://kubernetes.io/docs/concepts/security/pod-security-standards/"


def _where(obj: ObjectView) -> str:
    return f"{obj.kind} {obj.name}"


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
