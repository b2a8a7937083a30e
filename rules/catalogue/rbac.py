"""RBAC rules (CIS 5.1.x, KM-2xx), analysed through bindings rather than roles alone.

A permission only matters when a binding grants it to someone, so the cluster rules here walk
(Cluster)RoleBindings, resolve each one's role through `ClusterContext.role_of` and
`policy_rules` (aggregated ClusterRoles included, their `rules` taken as given), and report on
the binding with the subjects and the role rule that grant the permission. Matching follows the
Kubernetes RBAC authorizer exactly:

- `apiGroups`, `resources` and `verbs` match literally or by `*`; a `*/sub` resource matches the
  `sub` subresource of any resource;
- a RoleBinding (even to a ClusterRole) grants only inside its namespace, so it never grants
  cluster-scoped resources (nodes, persistentvolumes, CSRs, webhook configurations, users...);
- a rule restricted by `resourceNames` never grants `create` (the name is unknown at creation)
  and, for reads of secrets and similar, is treated as the minimised access CIS asks for;
- a ServiceAccount subject without a namespace belongs to the RoleBinding's namespace.

Built-in bindings are skipped where the benchmark calls them expected ("apart from the
defaults"): bindings with one of the API server's (or kubeadm's) default binding names whose
role is a default role (the bootstrap policy and the controllers' `system:controller:*`
roles; a name merely starting with `system:` is not enough), the `cluster-admin`
ClusterRoleBinding to the
`system:masters` group, and kubeadm's `kubeadm:cluster-admins`. A binding that names one of the
"everyone" identities (`system:anonymous`, `system:unauthenticated`, `system:authenticated`,
`system:serviceaccounts`) is never skipped unless it is exactly a bootstrap binding. Operators
can exempt other platform bindings (EKS `eks:*`, GKE `gce:*`...) by configuration.

When a binding names the built-in `cluster-admin`, `admin` or `edit` ClusterRole and that role
is not in the input (a chart scanned offline), the security-relevant part of the built-in role
is assumed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from contracts.severity import Severity
from rules.cluster import ClusterContext
from rules.model import Violation, rule
from rules.view import ObjectView, is_map

CATEGORY = "rbac"
RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_DOC = "https://kubernetes.io/docs/reference/access-authn-authz/rbac/"
GOOD_PRACTICES = "https://kubernetes.io/docs/concepts/security/rbac-good-practices/"
NSA = "NSA/CISA Kubernetes Hardening Guidance v1.2, Authentication and authorization"
BINDING_KINDS = ("ClusterRoleBinding", "RoleBinding")
ROLE_KINDS = frozenset({"Role", "ClusterRole"})
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")

# Identities that stand for "everyone" (or every workload) in the cluster.
BROAD_GROUPS = frozenset(
    {
        "system:unauthenticated",
        "system:authenticated",
        "system:serviceaccounts",
    }
)
BROAD_USERS = frozenset({"system:anonymous"})
# Bootstrap bindings whose role is not named system:* (name -> role).
BOOTSTRAP_EXCEPTIONS = {
    "system::extension-apiserver-authentication-reader": "extension-apiserver-authentication-reader",  # noqa: E501
}
# The roles and bindings the API server (and kubeadm) create. A built-in role is one of these
# names *and* carries the bootstrap label: a user's role merely named `system:...` is not.
BOOTSTRAP_LABEL = ("kubernetes.io/bootstrapping", "rbac-defaults")
CONTROLLER_ROLE_PREFIX = "system:controller:"  # kube-controller-manager's own roles
DEFAULT_CLUSTER_ROLES = frozenset(
    {
        "admin",
        "cluster-admin",
        "edit",
        "view",
        "system:aggregate-to-admin",
        "system:aggregate-to-edit",
        "system:aggregate-to-view",
        "system:auth-delegator",
        "system:basic-user",
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        "system:certificates.k8s.io:kube-apiserver-client-approver",
        "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
        "system:certificates.k8s.io:kubelet-serving-approver",
        "system:certificates.k8s.io:legacy-unknown-approver",
        "system:discovery",
        "system:heapster",
        "system:kube-aggregator",
        "system:kube-controller-manager",
        "system:kube-dns",
        "system:kube-scheduler",
        "system:kubelet-api-admin",
        "system:monitoring",
        "system:node",
        "system:node-bootstrapper",
        "system:node-problem-detector",
        "system:node-proxier",
        "system:persistent-volume-provisioner",
        "system:public-info-viewer",
        "system:service-account-issuer-discovery",
        "system:volume-scheduler",
    }
)
DEFAULT_ROLES = frozenset(  # namespaced Roles in kube-system / kube-public
    {
        "extension-apiserver-authentication-reader",
        "system::leader-locking-kube-controller-manager",
        "system::leader-locking-kube-scheduler",
        "system:controller:bootstrap-signer",
        "system:controller:cloud-provider",
        "system:controller:token-cleaner",
    }
)
DEFAULT_BINDINGS = frozenset(
    {
        "cluster-admin",
        "system:basic-user",
        "system:discovery",
        "system:kube-controller-manager",
        "system:kube-dns",
        "system:kube-scheduler",
        "system:monitoring",
        "system:node",
        "system:node-proxier",
        "system:public-info-viewer",
        "system:service-account-issuer-discovery",
        "system:volume-scheduler",
        "system::extension-apiserver-authentication-reader",
        "system::leader-locking-kube-controller-manager",
        "system::leader-locking-kube-scheduler",
        # kubeadm's add-ons
        "system:coredns",
        "kubeadm:cluster-admins",
        "kubeadm:get-nodes",
        "kubeadm:kubelet-bootstrap",
        "kubeadm:node-autoapprove-bootstrap",
        "kubeadm:node-autoapprove-certificate-rotation",
        "kubeadm:node-proxier",
        "kubeadm:bootstrap-signer-clusterinfo",
        "kubeadm:nodes-kubeadm-config",
        "kubeadm:kubelet-config",
    }
)


# Roles kubeadm's default bindings name (bindings only; they are not exempt from KM-203).
KUBEADM_ROLES = frozenset(
    {
        "system:coredns",
        "kubeadm:get-nodes",
        "kubeadm:nodes-kubeadm-config",
        "kubeadm:kubelet-config",
        "kubeadm:bootstrap-signer-clusterinfo",
    }
)


def is_default_name(name: str, known: frozenset[str]) -> bool:
    return name in known or name.startswith(CONTROLLER_ROLE_PREFIX)


def is_builtin_role(role: ObjectView) -> bool:
    """A role the API server bootstraps: a known default name and the bootstrap label."""
    known = DEFAULT_CLUSTER_ROLES if role.kind == "ClusterRole" else DEFAULT_ROLES
    key, value = BOOTSTRAP_LABEL
    return role.labels.get(key) == value and is_default_name(role.name, known)


# Default cluster-admin bindings (binding name -> the only group they may name).
ADMIN_GROUPS = {
    "cluster-admin": "system:masters",
    "kubeadm:cluster-admins": "kubeadm:cluster-admins",
}

_ALL = ["*"]
_WORKLOAD_WRITE = ["create", "update", "patch", "delete", "deletecollection"]
# Security-relevant rules of the built-in user-facing ClusterRoles, used only when a binding
# names one of them and the role itself is not part of the input.
BUILTIN_CLUSTER_ROLES: Mapping[str, tuple[Mapping[str, Any], ...]] = {
    "cluster-admin": ({"apiGroups": _ALL, "resources": _ALL, "verbs": _ALL},),
    "admin": (
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": [""],
            "resources": ["pods", "replicationcontrollers", "secrets", "serviceaccounts"],
            "verbs": _WORKLOAD_WRITE,
        },
        {
            "apiGroups": [""],
            "resources": ["pods/attach", "pods/exec", "pods/portforward"],
            "verbs": ["create", "get"],
        },
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]},
        {
            "apiGroups": ["apps"],
            "resources": ["daemonsets", "deployments", "replicasets", "statefulsets"],
            "verbs": _WORKLOAD_WRITE,
        },
        {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": _WORKLOAD_WRITE},
    ),
}
BUILTIN_CLUSTER_ROLES = {**BUILTIN_CLUSTER_ROLES, "edit": BUILTIN_CLUSTER_ROLES["admin"]}


# A PolicyRule's resourceNames, apiGroups, resources and verbs, as text (`_rule_terms`).
RuleTerms = tuple[list[str], list[str], list[str], list[str]]


@dataclass(frozen=True, slots=True)
class Need:
    """A permission: any of `verbs` on `group`/`resource[/subresource]`.

    `cluster_scoped` resources can only be granted by a ClusterRoleBinding. When
    `names_restrict` is true a rule limited by `resourceNames` does not count as a grant.
    """

    verbs: tuple[str, ...]
    group: str
    resource: str
    subresource: str = ""
    cluster_scoped: bool = False
    names_restrict: bool = True

    @property
    def label(self) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return f"{res}.{self.group}" if self.group else res


@dataclass(frozen=True, slots=True)
class Grant:
    """One rule of a bound role that grants a Need."""

    need: Need
    verbs: tuple[str, ...]
    rule_index: int
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BoundRole:
    """A binding resolved to its role's rules."""

    binding: ObjectView
    role_label: str
    rules: tuple[Mapping[str, Any], ...]
    own_rule_count: int
    builtin: bool = False
    # Each rule's (resourceNames, apiGroups, resources, verbs) as text, read once: `grants`
    # matches every rule against each of a dozen rules' needs.
    terms: tuple[RuleTerms, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", tuple(_rule_terms(r) for r in self.rules))

    @property
    def cluster_wide(self) -> bool:
        return self.binding.kind == "ClusterRoleBinding"

    @property
    def scope(self) -> str:
        if self.cluster_wide:
            return "cluster-wide"
        if self.binding.namespace:
            return f"in namespace {self.binding.namespace}"
        return "in the namespace it is applied to"

    def rule_where(self, index: int) -> str:
        if self.builtin:
            return "its built-in rules"
        if index < self.own_rule_count:
            return f"rules[{index}]"
        return "a rule aggregated into it"


# -- matching ------------------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def _resource_matches(rule_resources: Sequence[str], resource: str, sub: str) -> bool:
    combined = f"{resource}/{sub}" if sub else resource
    for item in rule_resources:
        if item in ("*", combined):
            return True
        if sub and item == f"*/{sub}":
            return True
    return False


def _rule_terms(policy_rule: Mapping[str, Any]) -> RuleTerms:
    return (
        _strings(policy_rule.get("resourceNames")),
        _strings(policy_rule.get("apiGroups")),
        _strings(policy_rule.get("resources")),
        _strings(policy_rule.get("verbs")),
    )


def rule_grants(policy_rule: Mapping[str, Any], need: Need) -> tuple[str, ...]:
    """The verbs of `need` that one PolicyRule grants (empty when it grants none)."""
    return _granted(_rule_terms(policy_rule), need)


def _granted(terms: RuleTerms, need: Need) -> tuple[str, ...]:
    """`rule_grants` of a rule read into its terms (`_rule_terms`)."""
    names, groups, resources, verbs = terms
    if names and (need.names_restrict or need.verbs == ("create",)):
        return ()
    if "*" not in groups and need.group not in groups:
        return ()
    if not _resource_matches(resources, need.resource, need.subresource):
        return ()
    if "*" in verbs:
        return need.verbs
    return tuple(v for v in need.verbs if v in verbs)


def grants(bound: BoundRole, needs: Iterable[Need]) -> list[Grant]:
    """Every (need, rule) pair of `bound` that grants something, honouring binding scope."""
    out: list[Grant] = []
    for need in needs:
        if need.cluster_scoped and not bound.cluster_wide:
            continue
        for index, terms in enumerate(bound.terms):
            verbs = _granted(terms, need)
            if verbs:
                out.append(Grant(need, verbs, index, tuple(terms[0])))
    return out


# -- bindings ------------------------------------------------------------------------------
def _subjects(binding: ObjectView) -> list[Mapping[str, Any]]:
    items = binding.manifest.get("subjects")
    return [s for s in items if is_map(s)] if isinstance(items, list) else []


def _subject_namespace(subject: Mapping[str, Any], binding: ObjectView) -> str | None:
    return str(subject.get("namespace") or binding.namespace or "") or None


def subject_label(subject: Mapping[str, Any], binding: ObjectView) -> str:
    kind = str(subject.get("kind") or "?")
    name = str(subject.get("name") or "?")
    if kind == "ServiceAccount":
        namespace = _subject_namespace(subject, binding)
        return f"ServiceAccount {namespace}/{name}" if namespace else f"ServiceAccount {name}"
    return f"{kind} {name}"


def _subjects_text(binding: ObjectView, limit: int = 3) -> str:
    labels = [subject_label(s, binding) for s in _subjects(binding)]
    if len(labels) > limit:
        return ", ".join(labels[:limit]) + f" and {len(labels) - limit} more"
    return ", ".join(labels)


def _role_ref(binding: ObjectView) -> tuple[str, str]:
    ref = binding.manifest.get("roleRef")
    if not is_map(ref):
        return "", ""
    return str(ref.get("kind") or ""), str(ref.get("name") or "")


def _is_broad(subject: Mapping[str, Any]) -> bool:
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    return (kind == "Group" and name in BROAD_GROUPS) or (kind == "User" and name in BROAD_USERS)


def is_default_binding(binding: ObjectView) -> bool:
    """Whether a binding is one the API server or kubeadm creates (expected by CIS)."""
    role_kind, role_name = _role_ref(binding)
    name = binding.name
    subjects = _subjects(binding)
    if name in ADMIN_GROUPS and binding.kind == "ClusterRoleBinding":
        group = ADMIN_GROUPS[name]
        return (
            role_name == "cluster-admin"
            and bool(subjects)
            and all(s.get("kind") == "Group" and s.get("name") == group for s in subjects)
        )
    if not is_default_name(name, DEFAULT_BINDINGS):
        return False
    if BOOTSTRAP_EXCEPTIONS.get(name) == role_name:
        return True
    if not is_default_name(role_name, DEFAULT_CLUSTER_ROLES | DEFAULT_ROLES | KUBEADM_ROLES):
        return False
    if any(_is_broad(s) for s in subjects):
        # Bootstrap bindings that name everyone carry their role's own name.
        return role_name == name and role_kind == "ClusterRole"
    return True


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _aggregated_rules(
    cluster: ClusterContext, role: ObjectView, own: int
) -> list[Mapping[str, Any]]:
    """Rules aggregated into a ClusterRole beyond its own (broken selectors aggregate none)."""
    return cluster.policy_rules(role)[own:]


def subject_bindings(
    cluster: ClusterContext, kind: str, name: str, namespace: str | None = None
) -> list[ObjectView]:
    """`ClusterContext.bindings_for_subject` (malformed bindings name no subjects)."""
    return list(cluster.bindings_for_subject(kind, name, namespace))


def bound_role(cluster: ClusterContext, binding: ObjectView) -> BoundRole | None:
    """The binding with its role's rules (built-in fallback), or None if unresolvable."""
    role_kind, role_name = _role_ref(binding)
    if role_kind not in ROLE_KINDS or not role_name:
        return None
    if role_kind == "Role" and binding.kind == "ClusterRoleBinding":
        return None  # invalid: a ClusterRoleBinding can only reference a ClusterRole
    role = cluster.role_of(binding)
    if role is not None:
        own = [r for r in _list(role.manifest.get("rules")) if is_map(r)]
        rules = own + _aggregated_rules(cluster, role, len(own))
        return BoundRole(binding, f"{role_kind} {role_name}", tuple(rules), len(own))
    if role_kind == "ClusterRole" and role_name in BUILTIN_CLUSTER_ROLES:
        builtin = BUILTIN_CLUSTER_ROLES[role_name]
        return BoundRole(
            binding,
            f"built-in ClusterRole {role_name} (not in the input)",
            tuple(builtin),
            len(builtin),
            builtin=True,
        )
    return None


def active_bindings(cluster: ClusterContext) -> tuple[BoundRole, ...]:
    """Non-default bindings with subjects, resolved to their roles (once per context: a
    dozen rules read them)."""
    return cluster.derived(_active_bindings)


def _active_bindings(cluster: ClusterContext) -> tuple[BoundRole, ...]:
    found: list[BoundRole] = []
    for kind in BINDING_KINDS:
        for binding in cluster.by_kind(kind):
            if not _subjects(binding) or is_default_binding(binding):
                continue
            bound = bound_role(cluster, binding)
            if bound is not None:
                found.append(bound)
    return tuple(found)


def _describe(found: list[Grant], bound: BoundRole) -> str:
    grouped: dict[tuple[int, tuple[str, ...], tuple[str, ...]], list[str]] = {}
    for g in found:
        labels = grouped.setdefault((g.rule_index, g.verbs, g.names), [])
        if g.need.label not in labels:
            labels.append(g.need.label)
    parts = []
    for (index, verbs, names), labels in grouped.items():
        limited = f" (only {', '.join(names)})" if names else ""
        parts.append(
            f"{'/'.join(verbs)} on {', '.join(labels)}{limited} [{bound.rule_where(index)}]"
        )
    return "; ".join(parts)


def _grant_violations(
    cluster: ClusterContext, needs: Sequence[Need], what: str
) -> Iterator[Violation]:
    for bound in active_bindings(cluster):
        found = grants(bound, needs)
        if not found:
            continue
        b = bound.binding
        yield Violation(
            f"{b.kind} {b.name} lets {_subjects_text(b)} {what} {bound.scope} via "
            f"{bound.role_label}: {_describe(found, bound)}",
            path="roleRef",
            subject=b,
        )


SECRETS_READ = (Need(("get", "list", "watch"), "", "secrets"),)
WORKLOAD_CREATE = (
    Need(("create",), "", "pods"),
    Need(("create",), "", "replicationcontrollers"),
    Need(("create",), "apps", "deployments"),
    Need(("create",), "apps", "replicasets"),
    Need(("create",), "apps", "statefulsets"),
    Need(("create",), "apps", "daemonsets"),
    Need(("create",), "batch", "jobs"),
    Need(("create",), "batch", "cronjobs"),
)
BIND_ESCALATE = (
    Need(("bind",), RBAC_GROUP, "roles", names_restrict=False),
    Need(("bind",), RBAC_GROUP, "clusterroles", names_restrict=False),
    Need(("escalate",), RBAC_GROUP, "roles", names_restrict=False),
    Need(("escalate",), RBAC_GROUP, "clusterroles", cluster_scoped=True, names_restrict=False),
)
IMPERSONATE = (
    Need(("impersonate",), "", "users", cluster_scoped=True, names_restrict=False),
    Need(("impersonate",), "", "groups", cluster_scoped=True, names_restrict=False),
    Need(("impersonate",), "", "serviceaccounts", names_restrict=False),
    Need(
        ("impersonate",), "authentication.k8s.io", "uids", cluster_scoped=True, names_restrict=False
    ),
)
PV_CREATE = (Need(("create",), "", "persistentvolumes", cluster_scoped=True),)
NODE_PROXY = (
    Need(
        ("get", "create", "update", "patch", "delete"),
        "",
        "nodes",
        "proxy",
        cluster_scoped=True,
        names_restrict=False,
    ),
)
CSR_APPROVAL = (
    Need(
        ("update", "patch"),
        "certificates.k8s.io",
        "certificatesigningrequests",
        "approval",
        cluster_scoped=True,
        names_restrict=False,
    ),
)
SIGNER_APPROVE = (
    Need(("approve",), "certificates.k8s.io", "signers", cluster_scoped=True, names_restrict=False),
)
WEBHOOK_EDIT = (
    Need(
        WRITE_VERBS,
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        cluster_scoped=True,
    ),
    Need(
        WRITE_VERBS,
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        cluster_scoped=True,
    ),
)
SA_TOKEN_CREATE = (Need(("create",), "", "serviceaccounts", "token"),)
POD_EXEC = (
    # Websocket exec/attach is a GET: clusters before the 1.30 websocket authorization change
    # accept `get` on these subresources as well as `create`.
    Need(("create", "get"), "", "pods", "exec"),
    Need(("create", "get"), "", "pods", "attach"),
    Need(("update", "patch"), "", "pods", "ephemeralcontainers"),
)


# -- rules ---------------------------------------------------------------------------------
def _full_wildcard(policy_rule: Mapping[str, Any]) -> bool:
    return all("*" in _strings(policy_rule.get(key)) for key in ("apiGroups", "resources", "verbs"))


@rule(
    id="KM-201",
    title="cluster-admin (or an equivalent role) is bound",
    severity=Severity.HIGH,
    category=CATEGORY,
    scope="cluster",
    cis=("5.1.1",),
    references=(RBAC_DOC, GOOD_PRACTICES, NSA),
    remediation="Bind a role with only the permissions the subject needs; keep cluster-admin "
    "for break-glass accounts.",
    kinds=BINDING_KINDS,
)
def cluster_admin_bound(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags bindings that grant cluster-admin or a role with `*` on everything.

    ## What it does
    Reports every ClusterRoleBinding and RoleBinding (other than the built-in
    `cluster-admin` → `system:masters` binding) whose role is `cluster-admin` or any role
    with a rule granting all verbs on all resources of all API groups.

    ## Why is this bad?
    cluster-admin is unrestricted superuser access. A RoleBinding to it gives full control of
    the namespace, including its Secrets and RBAC; a ClusterRoleBinding gives control of the
    whole cluster. Every subject holding it is a path to total compromise.

    ## Example
    ```yaml
    kind: ClusterRoleBinding
    metadata: {name: ci-admin}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
    subjects: [{kind: ServiceAccount, name: ci, namespace: ci}]
    ```

    ## Use instead
    A role listing the resources and verbs the CI job really uses, bound in the namespaces
    it deploys to.

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.1
    - https://kubernetes.io/docs/concepts/security/rbac-good-practices/
    """
    for bound in active_bindings(cluster):
        b = bound.binding
        if _role_ref(b) == ("ClusterRole", "cluster-admin"):
            what = "cluster-admin"
        else:
            index = next((i for i, r in enumerate(bound.rules) if _full_wildcard(r)), None)
            if index is None:
                continue
            what = (
                f"{bound.role_label}, which grants every verb on every resource "
                f"({bound.rule_where(index)})"
            )
        yield Violation(
            f"{b.kind} {b.name} gives {_subjects_text(b)} {what} {bound.scope}; bind a "
            "least-privilege role instead",
            path="roleRef",
            subject=b,
        )


@rule(
    id="KM-202",
    title="Binding grants read access to Secrets",
    severity=Severity.HIGH,
    category=CATEGORY,
    scope="cluster",
    cis=("5.1.2",),
    references=(RBAC_DOC, GOOD_PRACTICES, NSA),
    remediation="Remove get/list/watch on secrets from the role, or restrict it with "
    "resourceNames to the Secrets the subject needs.",
    kinds=BINDING_KINDS,
)
def secrets_read(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags bindings that let subjects get, list or watch Secrets.

    ## What it does
    Resolves every non-default binding to its role and reports it when a rule grants `get`,
    `list` or `watch` on `secrets` in the core API group (directly, through `*` verbs, `*`
    resources or `*` API groups). A rule restricted with `resourceNames` is the minimised
    access CIS recommends and is not reported.

    ## Why is this bad?
    Secrets hold credentials; `list` and `watch` return their contents too. Anyone who can
    read a service account token Secret acts as that service account.

    ## Example
    ```yaml
    kind: ClusterRole
    rules:
      - apiGroups: ["*"]
        resources: ["secrets"]
        verbs: ["get", "list"]
    ```

    ## Use instead
    ```yaml
    kind: Role
    rules:
      - apiGroups: [""]
        resources: ["secrets"]
        resourceNames: ["app-db-credentials"]
        verbs: ["get"]
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.2
    """
    yield from _grant_violations(cluster, SECRETS_READ, "read Secrets")


@rule(
    id="KM-203",
    title="Role uses wildcards",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    cis=("5.1.3",),
    references=(RBAC_DOC, GOOD_PRACTICES),
    remediation="List the API groups, resources and verbs explicitly instead of `*`.",
    kinds=ROLE_KINDS,
)
def role_wildcards(obj: ObjectView) -> Iterator[Violation]:
    """Flags Roles and ClusterRoles whose rules use `*`.

    ## What it does
    Reports each rule of a Role or ClusterRole with `*` in `apiGroups`, `resources`
    (including `*/subresource`), `verbs` or `nonResourceURLs`, naming the fields. Built-in
    roles (one of the API server's default role names, such as `cluster-admin` or
    `system:controller:*`, *and* labelled `kubernetes.io/bootstrapping: rbac-defaults`) and
    aggregated ClusterRoles (whose rules are copies of other roles', reported there) are
    skipped. A role of your own whose name merely starts with `system:` is reported.

    ## Why is this bad?
    A wildcard grants everything that exists now and everything added later: a new CRD, a
    new subresource or a new verb becomes accessible without anyone reviewing it.

    ## Example
    ```yaml
    rules:
      - apiGroups: ["apps"]
        resources: ["*"]
        verbs: ["*"]
    ```

    ## Use instead
    ```yaml
    rules:
      - apiGroups: ["apps"]
        resources: ["deployments"]
        verbs: ["get", "list", "watch", "update"]
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.3
    """
    if is_builtin_role(obj):
        return
    if obj.kind == "ClusterRole" and is_map(obj.manifest.get("aggregationRule")):
        return
    rules = obj.manifest.get("rules")
    if not isinstance(rules, list):
        return
    for index, policy_rule in enumerate(rules):
        if not is_map(policy_rule):
            continue
        fields = [
            key
            for key in ("apiGroups", "resources", "verbs", "nonResourceURLs")
            if any(v == "*" or v.startswith("*/") for v in _strings(policy_rule.get(key)))
        ]
        if fields:
            yield Violation(
                f"{obj.kind} {obj.name} rules[{index}] uses a wildcard in "
                f"{', '.join(fields)}; list the values explicitly",
                path=f"rules[{index}].{fields[0]}",
            )


@rule(
    id="KM-204",
    title="Binding grants creation of pods or workload controllers",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    scope="cluster",
    cis=("5.1.4",),
    references=(RBAC_DOC, GOOD_PRACTICES),
    remediation="Grant `create` on pods and workload controllers only to deployment tooling; "
    "review who holds it.",
    kinds=BINDING_KINDS,
)
def pod_create(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags bindings that let subjects create pods or pod controllers.

    ## What it does
    Reports non-default bindings whose role grants `create` on pods, replicationcontrollers,
    deployments, replicasets, statefulsets, daemonsets, jobs or cronjobs.

    ## Why is this bad?
    Whoever can create a pod in a namespace can run it as any service account there, mount
    any Secret and ConfigMap of the namespace, and, unless admission stops them, a privileged
    pod that owns the node. Creating pods is effectively access to everything the namespace
    holds.

    ## Example
    ```yaml
    rules:
      - apiGroups: ["", "apps"]
        resources: ["pods", "deployments"]
        verbs: ["create"]
    ```

    ## Use instead
    Give developers read access and let a reviewed deployment pipeline hold `create`.

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.4
    """
    yield from _grant_violations(cluster, WORKLOAD_CREATE, "create pods or workloads")


@rule(
    id="KM-205",
    title="Default service account automounts its token",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    cis=("5.1.5",),
    references=(
        "https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/",
        NSA,
    ),
    remediation="Set `automountServiceAccountToken: false` on every namespace's `default` "
    "ServiceAccount; give workloads that need the API their own account.",
    kinds=("ServiceAccount",),
)
def default_sa_automount(obj: ObjectView) -> Iterator[Violation]:
    """Flags `default` service accounts that do not disable token automounting.

    ## What it does
    Reports each ServiceAccount named `default` whose `automountServiceAccountToken` is not
    `false`.

    ## Why is this bad?
    Every pod that names no service account runs as `default` and, unless disabled, gets an
    API token mounted. Any permission later granted to `default` silently reaches every such
    pod, and the token is a foothold for an attacker in any of them.

    ## Example
    ```yaml
    apiVersion: v1
    kind: ServiceAccount
    metadata: {name: default, namespace: shop}
    ```

    ## Use instead
    ```yaml
    apiVersion: v1
    kind: ServiceAccount
    metadata: {name: default, namespace: shop}
    automountServiceAccountToken: false
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.5
    """
    if obj.name != "default":
        return
    if obj.manifest.get("automountServiceAccountToken") is not False:
        yield Violation(
            f"the default ServiceAccount of namespace {obj.namespace or '(unset)'} mounts its "
            "token into every pod that names no account; set automountServiceAccountToken: "
            "false",
            path="automountServiceAccountToken",
        )


@rule(
    id="KM-206",
    title="Default service account is granted permissions",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    scope="cluster",
    cis=("5.1.5",),
    references=(RBAC_DOC, NSA),
    remediation="Create a dedicated ServiceAccount for the workload that needs these "
    "permissions and bind the role to it instead of `default`.",
    kinds=BINDING_KINDS,
)
def default_sa_bound(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags bindings that grant a role to a namespace's `default` service account.

    ## What it does
    Reports non-default RoleBindings and ClusterRoleBindings with a subject
    `kind: ServiceAccount, name: default`.

    ## Why is this bad?
    Every pod that does not name a service account runs as `default`, so a role bound to it
    is granted to all of them, including pods added later by anyone who can deploy in the
    namespace. Rights should be attached to a named account that only the workload that
    needs them uses.

    ## Example
    ```yaml
    kind: RoleBinding
    subjects: [{kind: ServiceAccount, name: default, namespace: shop}]
    ```

    ## Use instead
    ```yaml
    kind: RoleBinding
    subjects: [{kind: ServiceAccount, name: order-sync, namespace: shop}]
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.5
    """
    for kind in BINDING_KINDS:
        for binding in cluster.by_kind(kind):
            if is_default_binding(binding):
                continue
            for index, subject in enumerate(_subjects(binding)):
                if subject.get("kind") == "ServiceAccount" and subject.get("name") == "default":
                    _, role_name = _role_ref(binding)
                    yield Violation(
                        f"{binding.kind} {binding.name} grants {role_name or 'a role'} to the "
                        f"default ServiceAccount of namespace "
                        f"{_subject_namespace(subject, binding) or '?'}; bind a dedicated "
                        "ServiceAccount instead",
                        path=f"subjects[{index}]",
                        subject=binding,
                    )


def _sa_has_bindings(cluster: ClusterContext, namespace: str | None, name: str) -> bool:
    # Any binding counts, defaults included (CoreDNS is granted its rights by the
    # bootstrap-style `system:coredns` binding and needs its token).
    # (the context's own lists, read without `subject_bindings`' copy: asked per workload)
    if cluster.bindings_for_subject("ServiceAccount", name, namespace):
        return True
    user = f"system:serviceaccount:{namespace}:{name}"
    return bool(cluster.bindings_for_subject("User", user))


@rule(
    id="KM-207",
    title="Service account token mounted without need",
    severity=Severity.MEDIUM,
    category=CATEGORY,
    scope="cluster",
    cis=("5.1.6",),
    references=(
        "https://kubernetes.io/docs/tasks/configure-pod-container/"
        "configure-service-account/#opt-out-of-api-credential-automounting",
        NSA,
    ),
    remediation="Set `automountServiceAccountToken: false` in the pod spec (or on its "
    "ServiceAccount) unless the workload calls the Kubernetes API.",
)
def token_automount(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags workloads that get an API token by default although nothing grants it rights.

    ## What it does
    For every pod-bearing object, works out whether the service account token is mounted:
    the pod's `automountServiceAccountToken` wins, then the ServiceAccount's, and the default
    is to mount. It reports the workload when the token is mounted only by default (neither
    the pod nor its ServiceAccount states it) and no RoleBinding or ClusterRoleBinding names
    that service account, i.e. nothing shows the workload needs the API. An explicit `true`
    on the pod or its ServiceAccount is taken as a declared need. A named ServiceAccount that
    is not in the input is skipped (its setting is unknown).

    ## Why is this bad?
    A mounted token lets anyone who gets code execution in the container talk to the API
    server as the workload. Workloads that never call the API gain nothing from it.

    ## Example
    ```yaml
    kind: Deployment
    spec:
      template:
        spec:
          containers: [{name: web, image: registry.example/web:2.1}]
    ```

    ## Use instead
    ```yaml
    kind: Deployment
    spec:
      template:
        spec:
          automountServiceAccountToken: false
          containers: [{name: web, image: registry.example/web:2.1}]
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.6
    """
    for obj in cluster.workloads():
        w = obj.workload
        if w is None or w.spec.get("automountServiceAccountToken") is not None:
            continue
        sa_name = str(w.spec.get("serviceAccountName") or w.spec.get("serviceAccount") or "default")
        sa = cluster.service_account(obj.namespace, sa_name)
        if sa is None and sa_name != "default":
            continue
        if sa is not None and sa.manifest.get("automountServiceAccountToken") is not None:
            continue
        if _sa_has_bindings(cluster, obj.namespace, sa_name):
            continue
        yield Violation(
            f"{obj.kind} {obj.name} gets the token of ServiceAccount {sa_name} mounted by "
            "default, but no binding grants that account anything; set "
            "automountServiceAccountToken: false in the pod spec",
            path=f"{w.spec_path}.automountServiceAccountToken",
            subject=obj,
        )


_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----(.*?)-----END [A-Z ]+-----", re.DOTALL)
MASTERS = "system:masters"


def _pem_mentions(value: Any, needle: bytes) -> bool:
    """Whether a base64-encoded PEM (a CSR's spec.request) has `needle` in a DER block."""
    if not isinstance(value, str) or not value:
        return False
    try:
        text = base64.b64decode(value).decode("ascii", "ignore")
    except (binascii.Error, ValueError):
        text = value
    for body in _PEM_BLOCK.findall(text):
        try:
            der = base64.b64decode("".join(body.split()))
        except (binascii.Error, ValueError):
            continue
        if needle in der:
            return True
    return False


@rule(
    id="KM-208",
    title="system:masters group used",
    severity=Severity.HIGH,
    category=CATEGORY,
    cis=("5.1.7",),
    references=(RBAC_DOC, GOOD_PRACTICES),
    remediation="Do not issue certificates in the system:masters group or bind to it; use a "
    "normal group bound to a reviewed role.",
    kinds=("ClusterRoleBinding", "RoleBinding", "CertificateSigningRequest"),
)
def system_masters(obj: ObjectView) -> Iterator[Violation]:
    """Flags certificate requests and bindings that use the `system:masters` group.

    ## What it does
    Reports CertificateSigningRequests whose request (or issued certificate) carries the
    organisation `system:masters`, and bindings other than the built-in `cluster-admin`
    ClusterRoleBinding that name the `system:masters` group.

    ## Why is this bad?
    Members of `system:masters` bypass authorization entirely: no RBAC rule, webhook or
    binding removal can restrict them, and a client certificate with that group stays
    superuser until it expires — it cannot be revoked.

    ## Example
    A CSR created from `openssl req -subj "/CN=alice/O=system:masters"`.

    ## Use instead
    A certificate in an ordinary group (`/O=platform-admins`) and a ClusterRoleBinding of that
    group to the role it needs.

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.7
    """
    if obj.kind == "CertificateSigningRequest":
        if _pem_mentions(obj.spec.get("request"), MASTERS.encode()):
            yield Violation(
                f"CertificateSigningRequest {obj.name} asks for a certificate in the "
                "system:masters group, which bypasses all authorization; deny it",
                path="spec.request",
            )
        status = obj.manifest.get("status")
        if is_map(status) and _pem_mentions(status.get("certificate"), MASTERS.encode()):
            yield Violation(
                f"CertificateSigningRequest {obj.name} has an issued certificate in the "
                "system:masters group; it cannot be revoked — rotate the cluster CA if it "
                "leaked",
                path="status.certificate",
            )
        return
    if is_default_binding(obj):
        return
    for index, subject in enumerate(_subjects(obj)):
        if subject.get("kind") == "Group" and subject.get("name") == MASTERS:
            yield Violation(
                f"{obj.kind} {obj.name} names the system:masters group, whose members bypass "
                "RBAC; use an ordinary group",
                path=f"subjects[{index}]",
            )


@rule(
    id="KM-209",
    title="Binding grants bind or escalate on roles",
    severity=Severity.HIGH,
    category=CATEGORY,
    scope="cluster",
    cis=("5.1.8",),
    references=(RBAC_DOC, GOOD_PRACTICES),
    remediation="Remove the `bind` and `escalate` verbs; role management should go through "
    "a reviewed pipeline.",
    kinds=BINDING_KINDS,
)
def bind_escalate(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags bindings that grant the `bind` or `escalate` verbs on roles.

    ## What it does
    Reports non-default bindings whose role grants `bind` on roles or clusterroles, or
    `escalate` on roles (or, through a ClusterRoleBinding, clusterroles). A `resourceNames`
    restriction is reported too, with the names: binding even one powerful role is enough.

    ## Why is this bad?
    RBAC normally stops a user from granting permissions they do not hold. `escalate` lets
    them write roles with any permission; `bind` lets them bind roles they do not hold. Either
    one turns limited access into cluster-admin.

    ## Example
    ```yaml
    rules:
      - apiGroups: ["rbac.authorization.k8s.io"]
        resources: ["clusterroles"]
        verbs: ["bind", "escalate"]
    ```

    ## Use instead
    Grant `create` on rolebindings only, and let RBAC's escalation check limit it to the
    permissions the subject already has.

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.8
    """
    yield from _grant_violations(cluster, BIND_ESCALATE, "bind or escalate roles")


@rule(
    id="KM-210",
    title="Binding grants impersonation",
    severity=Severity.HIGH,
    category=CATEGORY,
    scope="cluster",
    cis=("5.1.8",),
    references=(
        "https://kubernetes.io/docs/reference/access-authn-authz/authentication/"
        "#user-impersonation",
        GOOD_PRACTICES,
    ),
    remediation="Remove the `impersonate` verb, or restrict it with resourceNames to "
    "identities with no more rights than the subject.",
    kinds=BINDING_KINDS,
)
def impersonate(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags bindings that grant `impersonate` on users, groups, service accounts or uids.

    ## What it does
    Reports non-default bindings whose role grants `impersonate` on `users`, `groups` or
    `uids` (through a ClusterRoleBinding; these are cluster-scoped) or on `serviceaccounts`.
    Restricted `resourceNames` are named in the message but still reported.

    ## Why is this bad?
    Impersonation makes every request run with the rights of the impersonated identity:
    impersonating `system:masters` or an admin user is full cluster control.

    ## Example
    ```yaml
    rules:
      - apiGroups: [""]
        resources: ["users", "groups"]
        verbs: ["impersonate"]
    ```

    ## Use instead
    Give the subject the permissions it needs directly.

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.8
    """
    yield from _grant_violations(cluster, IMPERSONATE, "impersonate other identities")


@rule(
    id="KM-211",
    title="Binding grants creation of PersistentVolumes",
    severity=Severity.HIGH,
    category=CATEGORY,
    scope="cluster",
    cis=("5.1.9",),
    references=(
        "https://kubernetes.io/docs/concepts/security/rbac-good-practices/"
        "#persistent-volume-creation",
    ),
    remediation="Let users request storage with PersistentVolumeClaims and StorageClasses; "
    "keep `create` on persistentvolumes for storage administrators.",
    kinds=BINDING_KINDS,
)
def pv_create(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags ClusterRoleBindings that let subjects create PersistentVolumes.

    ## What it does
    Reports non-default ClusterRoleBindings whose role grants `create` on
    `persistentvolumes`. RoleBindings are not reported: PersistentVolumes are cluster-scoped
    and a RoleBinding cannot grant them.

    ## Why is this bad?
    A PersistentVolume can be a `hostPath` volume: whoever creates one and a claim bound to
    it can mount any directory of the node, escaping every pod-level restriction.

    ## Example
    ```yaml
    kind: ClusterRole
    rules:
      - apiGroups: [""]
        resources: ["persistentvolumes"]
        verbs: ["create"]
    ```

    ## Use instead
    Grant `create` on `persistentvolumeclaims` in the namespace and provide StorageClasses.

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.9
    """
    yield from _grant_violations(cluster, PV_CREATE, "create PersistentVolumes")


@rule(
    id="KM-212",
    title="Binding grants access to nodes/proxy",
    severity=Severity.HIGH,
    category=CATEGORY,
    scope="cluster",
    cis=("5.1.10",),
    references=(GOOD_PRACTICES,),
    remediation="Remove nodes/proxy (and `*/proxy`, `*`) from the role; use the metrics API "
    "for node metrics.",
    kinds=BINDING_KINDS,
)
def node_proxy(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags ClusterRoleBindings that grant the `nodes/proxy` subresource.

    ## What it does
    Reports non-default ClusterRoleBindings whose role grants any of get, create, update,
    patch or delete on `nodes/proxy` (also through `*/proxy` or `*`), even restricted to named
    nodes.

    ## Why is this bad?
    `nodes/proxy` reaches the kubelet API directly: it can run commands in any pod on the
    node, and those requests bypass admission control and API server audit logging. Even
    `get` is enough, because kubelet exec works over a websocket opened with GET.

    ## Example
    ```yaml
    rules:
      - apiGroups: [""]
        resources: ["nodes/proxy"]
        verbs: ["get"]
    ```

    ## Use instead
    ```yaml
    rules:
      - apiGroups: ["metrics.k8s.io"]
        resources: ["nodes"]
        verbs: ["get", "list"]
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.10
    """
    yield from _grant_violations(cluster, NODE_PROXY, "reach the kubelet through nodes/proxy")


def _subject_bindings(cluster: ClusterContext, binding: ObjectView) -> Iterator[ObjectView]:
    for subject in _subjects(binding):
        kind = str(subject.get("kind") or "")
        yield from subject_bindings(
            cluster,
            kind,
            str(subject.get("name") or ""),
            _subject_namespace(subject, binding) if kind == "ServiceAccount" else None,
        )


@rule(
    id="KM-213",
    title="Subjects can approve certificate signing requests",
    severity=Severity.HIGH,
    category=CATEGORY,
    scope="cluster",
    cis=("5.1.11",),
    references=(
        "https://kubernetes.io/docs/reference/access-authn-authz/"
        "certificate-signing-requests/#authorization",
        GOOD_PRACTICES,
    ),
    remediation="Remove update on certificatesigningrequests/approval, or restrict `approve` "
    "on signers to a signer that cannot issue cluster client certificates.",
    kinds=BINDING_KINDS,
)
def csr_approval(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags subjects that can both update CSR approval and `approve` for a signer.

    ## What it does
    Reports a non-default ClusterRoleBinding whose role grants `update` or `patch` on
    `certificatesigningrequests/approval` when the same subjects also hold `approve` on
    `signers` (through this or another binding naming the same subject). Approving needs
    both: without `approve` on the CSR's signer the API server rejects the approval, so a
    role with only the first half is not reported. Permissions reached only through group
    membership of a user cannot be seen in the cluster state and are not combined.

    ## Why is this bad?
    Approving a CSR for the `kubernetes.io/kube-apiserver-client` signer mints a client
    certificate for any user and group, for example one in `system:masters`.

    ## Example
    ```yaml
    rules:
      - apiGroups: ["certificates.k8s.io"]
        resources: ["certificatesigningrequests/approval"]
        verbs: ["update"]
      - apiGroups: ["certificates.k8s.io"]
        resources: ["signers"]
        verbs: ["approve"]
    ```

    ## Use instead
    Leave approval to the controller manager and to a small, audited group.

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.11
    """
    for bound in active_bindings(cluster):
        approval = grants(bound, CSR_APPROVAL)
        if not approval:
            continue
        signers = grants(bound, SIGNER_APPROVE)
        via = bound.role_label
        if not signers:
            for other in _subject_bindings(cluster, bound.binding):
                if other is bound.binding or is_default_binding(other):
                    continue
                other_bound = bound_role(cluster, other)
                if other_bound is not None:
                    signers = grants(other_bound, SIGNER_APPROVE)
                    if signers:
                        via = f"{other.kind} {other.name}"
                        break
        if not signers:
            continue
        names = sorted({n for g in signers for n in g.names})
        which = f"signers {', '.join(names)}" if names else "any signer"
        b = bound.binding
        yield Violation(
            f"{b.kind} {b.name} lets {_subjects_text(b)} approve certificate signing requests "
            f"({bound.role_label} grants update on certificatesigningrequests/approval; "
            f"{via} grants approve on {which}); restrict who can approve",
            path="roleRef",
            subject=b,
        )


@rule(
    id="KM-214",
    title="Binding grants changes to admission webhook configurations",
    severity=Severity.HIGH,
    category=CATEGORY,
    scope="cluster",
    cis=("5.1.12",),
    references=(GOOD_PRACTICES,),
    remediation="Remove write verbs on validating/mutatingwebhookconfigurations, or restrict "
    "them with resourceNames to the webhook the controller manages.",
    kinds=BINDING_KINDS,
)
def webhook_edit(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags ClusterRoleBindings that let subjects change admission webhook configurations.

    ## What it does
    Reports non-default ClusterRoleBindings whose role grants create, update, patch, delete
    or deletecollection on `validatingwebhookconfigurations` or
    `mutatingwebhookconfigurations` without a `resourceNames` restriction (a controller
    that patches the caBundle of its own named webhook is not reported).

    ## Why is this bad?
    Admission webhooks see and may rewrite every object sent to the API server. Whoever can
    edit them can read Secrets as they are written, inject containers into pods, or delete
    the webhooks that enforce policy.

    ## Example
    ```yaml
    rules:
      - apiGroups: ["admissionregistration.k8s.io"]
        resources: ["mutatingwebhookconfigurations"]
        verbs: ["create", "update", "patch"]
    ```

    ## Use instead
    ```yaml
    rules:
      - apiGroups: ["admissionregistration.k8s.io"]
        resources: ["mutatingwebhookconfigurations"]
        resourceNames: ["my-operator-webhook"]
        verbs: ["get", "update", "patch"]
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.12
    """
    yield from _grant_violations(cluster, WEBHOOK_EDIT, "change admission webhooks")


@rule(
    id="KM-215",
    title="Binding grants creation of service account tokens",
    severity=Severity.HIGH,
    category=CATEGORY,
    scope="cluster",
    cis=("5.1.13",),
    references=(GOOD_PRACTICES,),
    remediation="Remove `create` on serviceaccounts/token, or restrict it with resourceNames "
    "to the service accounts the subject is meant to act as.",
    kinds=BINDING_KINDS,
)
def sa_token_create(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags bindings that let subjects mint tokens for any service account.

    ## What it does
    Reports non-default bindings whose role grants `create` on `serviceaccounts/token` (also
    through `*/token` or `*`) without a `resourceNames` restriction.

    ## Why is this bad?
    The TokenRequest API issues a token for a service account; whoever can call it for every
    account in a namespace (or the cluster) holds the union of all their permissions, and the
    tokens can be long-lived.

    ## Example
    ```yaml
    rules:
      - apiGroups: [""]
        resources: ["serviceaccounts/token"]
        verbs: ["create"]
    ```

    ## Use instead
    ```yaml
    rules:
      - apiGroups: [""]
        resources: ["serviceaccounts/token"]
        resourceNames: ["deployer"]
        verbs: ["create"]
    ```

    ## References
    - CIS Kubernetes Benchmark v1.12, 5.1.13
    """
    yield from _grant_violations(cluster, SA_TOKEN_CREATE, "create service account tokens")


@rule(
    id="KM-216",
    title="Role bound to anonymous, all authenticated users or all service accounts",
    severity=Severity.HIGH,
    category=CATEGORY,
    references=(RBAC_DOC, NSA),
    remediation="Bind the role to the specific users, groups or service accounts that need it.",
    kinds=BINDING_KINDS,
)
def broad_subject(obj: ObjectView) -> Iterator[Violation]:
    """Flags bindings whose subjects stand for everyone.

    ## What it does
    Reports non-default bindings naming `system:anonymous`, `system:unauthenticated`,
    `system:authenticated` or `system:serviceaccounts` (the bootstrap bindings for discovery
    and public info are skipped).

    ## Why is this bad?
    `system:unauthenticated` and `system:anonymous` are anyone who reaches the API server;
    `system:authenticated` is anyone with any credential (on some managed platforms, any
    account of the cloud provider); `system:serviceaccounts` is every pod of the cluster.
    A role bound to them is granted to attackers first.

    ## Example
    ```yaml
    kind: ClusterRoleBinding
    subjects: [{kind: Group, name: system:authenticated}]
    roleRef: {kind: ClusterRole, name: pod-reader}
    ```

    ## Use instead
    ```yaml
    kind: ClusterRoleBinding
    subjects: [{kind: Group, name: sre-oncall}]
    roleRef: {kind: ClusterRole, name: pod-reader}
    ```

    ## References
    - NSA/CISA Kubernetes Hardening Guidance, Authentication and authorization
    """
    if is_default_binding(obj):
        return
    _, role_name = _role_ref(obj)
    for index, subject in enumerate(_subjects(obj)):
        if _is_broad(subject):
            yield Violation(
                f"{obj.kind} {obj.name} grants {role_name or 'a role'} to "
                f"{subject.get('kind')} {subject.get('name')}, i.e. to everyone in that "
                "class; bind specific subjects instead",
                path=f"subjects[{index}]",
            )


@rule(
    id="KM-217",
    title="Binding grants command execution in running pods",
    severity=Severity.HIGH,
    category=CATEGORY,
    scope="cluster",
    references=(GOOD_PRACTICES, NSA),
    remediation="Remove pods/exec, pods/attach and pods/ephemeralcontainers from the role; "
    "grant them only for break-glass debugging, time-limited.",
    kinds=BINDING_KINDS,
)
def pod_exec(cluster: ClusterContext) -> Iterator[Violation]:
    """Flags bindings that let subjects run commands inside existing pods.

    ## What it does
    Reports non-default bindings whose role grants `create` or `get` on `pods/exec` or
    `pods/attach` (exec over websockets is a GET, which clusters before Kubernetes 1.30's
    websocket authorization change accept with `get` alone), or `update`/`patch` on
    `pods/ephemeralcontainers` (adding a debug container to a running pod).

    ## Why is this bad?
    Running a command in a pod gives its process's view: the pod's mounted Secrets and
    service account token, its network position, and whatever the container can reach. It
    bypasses the admission checks that guarded the pod's creation.

    ## Example
    ```yaml
    rules:
      - apiGroups: [""]
        resources: ["pods/exec"]
        verbs: ["create"]
    ```

    ## Use instead
    Read-only access to pods and logs for day-to-day work; exec through a time-limited,
    audited break-glass role.

    ## References
    - https://kubernetes.io/docs/concepts/security/rbac-good-practices/
    """
    yield from _grant_violations(cluster, POD_EXEC, "run commands in pods")
