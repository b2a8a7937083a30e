"""A whole cluster's state for cluster rules: indexed look-ups, never pairwise loops.

Built once per scan from the manifests (`ClusterContext(manifests)`); every index is a dict
computed in one pass. Also works out controller ownership for top-most-controller dedup.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from contracts.selectors import Selector, SelectorError, parse_selector
from rules.view import EMPTY, ObjectView, is_map

RBAC_GROUP = "rbac.authorization.k8s.io"
BINDING_KINDS = frozenset({"RoleBinding", "ClusterRoleBinding"})
ROLE_KINDS = frozenset({"Role", "ClusterRole"})
# A pod-bearing object and its pod template's labels (`ClusterContext.pod_templates`).
PodTemplate = tuple[ObjectView, Mapping[str, Any]]
_T = TypeVar("_T")

# What `LabelReads` records besides label keys (label keys never contain a NUL).
READ_ALL = "\x00all"  # the whole map: iterated, copied, compared, printed
READ_LEN = "\x00len"  # its size
READ_BOOL = "\x00bool"  # whether it is empty


class _ReadLabels(dict[str, Any]):
    """An object's `metadata.labels` while cluster rules run (`LabelReads`): the same map,
    noting which keys were looked up and whether anything depended on the whole of it.
    Every dict method a rule can reach is overridden (the ones that would read the map
    without a look-up note `READ_ALL`); the C-level merge of `{**labels}` and `dict(labels)`
    goes through the overridden `keys()` because `__iter__` is overridden too."""

    __slots__ = ("reads",)  # set on the first read (a copy per object, most never read)

    reads: set[str]

    def _note(self, key: Any) -> None:
        try:
            self.reads.add(key)
        except AttributeError:
            self.reads = {key}

    def get(self, key: Any, default: Any = None) -> Any:
        self._note(key)
        return dict.get(self, key, default)

    def __getitem__(self, key: Any) -> Any:
        self._note(key)
        return dict.__getitem__(self, key)

    def __contains__(self, key: Any) -> bool:
        self._note(key)
        return dict.__contains__(self, key)

    def __len__(self) -> int:
        self._note(READ_LEN)
        return dict.__len__(self)

    def __bool__(self) -> bool:
        self._note(READ_BOOL)
        return dict.__len__(self) > 0

    def _all(self) -> None:
        self._note(READ_ALL)

    def __iter__(self) -> Iterator[str]:
        self._all()
        return dict.__iter__(self)

    def __reversed__(self) -> Iterator[str]:
        self._all()
        return dict.__reversed__(self)

    def keys(self) -> Any:
        self._all()
        return dict.keys(self)

    def values(self) -> Any:
        self._all()
        return dict.values(self)

    def items(self) -> Any:
        self._all()
        return dict.items(self)

    def copy(self) -> dict[str, Any]:
        self._all()
        return dict(dict.items(self))

    def __eq__(self, other: object) -> bool:
        self._all()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        self._all()
        return dict.__ne__(self, other)

    def __or__(self, other: Any) -> Any:
        self._all()
        return dict(dict.items(self)) | other

    def __ror__(self, other: Any) -> Any:
        self._all()
        return other | dict(dict.items(self))

    def __repr__(self) -> str:
        self._all()
        return dict.__repr__(self)

    __str__ = __repr__
    __hash__ = None

    def __reduce__(self) -> Any:
        self._all()
        return (dict, (dict(dict.items(self)),))


def _raw_items(labels: Mapping[str, Any]) -> Any:
    """A label map's items without noting a read (the context's own indexes note theirs)."""
    return dict.items(labels) if isinstance(labels, dict) else labels.items()


class LabelReads:
    """Which labels cluster rules read, object by object, while they run on a context built
    with it (`ClusterContext(..., label_reads=...)`): what a later state whose only changes
    are labels nobody read can reuse the rules' results on (`label_change_unread`).

    Each object's `metadata.labels` map is swapped for a `_ReadLabels` copy while the rules
    run (`restore()` puts the originals back and returns the record); look-ups through the
    context's label indexes are noted per (kind, namespace, key) and, for pod templates, per
    (namespace, key). The record is plain JSON: `{"keys": {ref key: [read, ...]},
    "index": [[kind, namespace, key], ...], "templates": [[namespace, key], ...]}`."""

    def __init__(self) -> None:
        self._swapped: list[tuple[ObjectView, dict[str, Any], dict[str, Any], _ReadLabels]] = []
        self.index: set[tuple[str, str | None, str]] = set()
        self.templates: set[tuple[str | None, str]] = set()

    def watch(self, view: ObjectView) -> None:
        metadata = view.metadata
        raw = metadata.get("labels")
        if type(raw) is not dict or type(metadata) is not dict:
            return  # no labels map (absent, or not a map): nothing a change could keep unread
        recorded = _ReadLabels(raw)
        metadata["labels"] = recorded
        view.labels = recorded
        self._swapped.append((view, metadata, raw, recorded))

    def restore(self) -> dict[str, Any]:
        keys: dict[str, list[str]] = {}
        for view, metadata, raw, recorded in self._swapped:
            metadata["labels"] = raw
            view.labels = raw
            reads = getattr(recorded, "reads", None)
            if reads:
                keys[view.ref.key] = sorted({str(key) for key in reads})
        self._swapped = []
        return {
            "keys": keys,
            # (sorted by their text: a cluster-scoped kind's namespace is None)
            "index": [list(entry) for entry in sorted(self.index, key=repr)],
            "templates": [list(entry) for entry in sorted(self.templates, key=repr)],
        }


def label_change_unread(
    record: Mapping[str, Any],
    view: ObjectView,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
) -> bool:
    """Whether an object (`view`, its new version) whose labels changed from `before` to
    `after` (and nothing else) changed nothing the cluster rules read in the run that made
    `record` (`LabelReads.restore`): then they find the same on the new state, since every
    read they made returns what it returned then. `record` must index its lists for look-up
    (`label_reads_index`)."""
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    reads = record["keys"].get(view.ref.key, ())
    kind, ns = view.kind, view.namespace
    # A Pod's own labels are its pod template's (`ClusterContext.pod_templates`).
    workload = view.workload
    pod_template = workload is not None and workload.pod_meta is view.metadata
    return not (
        READ_ALL in reads
        or (READ_LEN in reads and len(before) != len(after))
        or (READ_BOOL in reads and bool(before) != bool(after))
        or changed.intersection(reads)
        or any((kind, ns, key) in record["index_set"] for key in changed)
        or (pod_template and any((ns, key) in record["templates_set"] for key in changed))
    )


def label_reads_index(record: Mapping[str, Any]) -> dict[str, Any]:
    """`record` with its index lists as sets of tuples (for `label_change_unread`)."""
    return {
        **record,
        "index_set": {(kind, ns, key) for kind, ns, key in record.get("index", ())},
        "templates_set": {(ns, key) for ns, key in record.get("templates", ())},
    }


class ClusterContext:
    """Read-only indexed view of every object of one cluster (or of one offline scan).

    Inputs that are not mappings (not Kubernetes objects) are left out, and so are objects
    that are not structurally valid (`ObjectView.problems`): rules run only on valid objects.
    `skip_invalid=False` keeps them: for tests of the look-ups' own tolerance, and for a
    caller that left out the invalid ones already (`Engine.scan`).
    """

    def __init__(
        self,
        manifests: Iterable[Mapping[str, Any] | ObjectView],
        *,
        dedup_controllers: bool = True,
        skip_invalid: bool = True,
        label_reads: LabelReads | None = None,
    ) -> None:
        self.label_reads = label_reads
        self.dedup_controllers = dedup_controllers
        objects: list[ObjectView] = []
        by_kind: dict[str, list[ObjectView]] = defaultdict(list)
        by_ns: dict[str | None, list[ObjectView]] = defaultdict(list)
        pod_bearing: list[ObjectView] = []
        for m in manifests:  # one pass: the views, and the indexes every scan reads
            if isinstance(m, ObjectView):
                view = m
            elif isinstance(m, (dict, Mapping)):
                view = ObjectView(m)
            else:
                continue  # not a mapping, not an object: left out rather than crashing
            if skip_invalid and view.problems:
                continue
            if label_reads is not None:
                label_reads.watch(view)
            objects.append(view)
            by_kind[view.kind].append(view)
            by_ns[view.namespace].append(view)
            if view.workload is not None:
                pod_bearing.append(view)
        self.objects: tuple[ObjectView, ...] = tuple(objects)
        self._by_kind = {k: tuple(v) for k, v in by_kind.items()}
        self._by_ns = {k: tuple(v) for k, v in by_ns.items()}
        # The pod-bearing objects, in input order: what the workload look-ups (controller
        # dedup, `workloads()`, pod templates, service accounts) walk instead of every object.
        self._pod_bearing: tuple[ObjectView, ...] = tuple(pod_bearing)
        # Further indexes are built on first use (one pass each); a scan that never needs
        # label look-ups never pays for them.
        # (namespace, name) -> object, per kind: built for a kind when it is first looked up
        # (rules look up roles, service accounts and scale targets, not every kind).
        self._by_name: dict[str, dict[tuple[str | None, str], ObjectView]] = {}
        # kind -> namespace -> objects: built for a kind when it is first looked up by namespace.
        self._by_ns_kind: dict[str, dict[str | None, tuple[ObjectView, ...]]] = {}
        self._by_key: dict[str, ObjectView] | None = None
        self._by_uid: dict[str, ObjectView] | None = None
        self._by_label: dict[tuple[str, str | None, str, str], list[ObjectView]] | None = None
        self._bindings_by_role: dict[tuple[str, str | None, str], list[ObjectView]] | None = None
        self._bindings_by_subject: dict[tuple[str, str | None, str], list[ObjectView]] | None = None
        self._pods_by_sa: dict[tuple[str | None, str], list[ObjectView]] | None = None
        self._controlled: frozenset[str] | None = None
        self._workloads: tuple[ObjectView, ...] | None = None
        self._pod_templates: dict[str | None, list[PodTemplate]] | None = None
        self._pod_templates_by_label: dict[
            tuple[str | None, str], dict[str, list[PodTemplate]]
        ] = {}
        self._derived: dict[Callable[[ClusterContext], Any], Any] = {}

    def derived(self, build: Callable[[ClusterContext], _T]) -> _T:
        """`build(self)`, computed on first use and kept (keyed by the function): what
        several rules work out from the same objects (the resolved RBAC bindings, say) is
        then worked out once per context. `build` must be a pure function of the context
        and its result treated as read-only."""
        try:
            value: _T = self._derived[build]
        except KeyError:
            value = self._derived[build] = build(self)
        return value

    def _uids(self) -> dict[str, ObjectView]:
        if self._by_uid is None:
            index: dict[str, ObjectView] = {}
            for o in self.objects:
                uid = o.metadata.get("uid")
                if uid:
                    index[uid if type(uid) is str else str(uid)] = o
            self._by_uid = index
        return self._by_uid

    def _labels(self) -> dict[tuple[str, str | None, str, str], list[ObjectView]]:
        if self._by_label is None:
            index: dict[tuple[str, str | None, str, str], list[ObjectView]] = defaultdict(list)
            for obj in self.objects:
                for key, value in _raw_items(obj.labels):
                    index[(obj.kind, obj.namespace, str(key), str(value))].append(obj)
            self._by_label = index
        return self._by_label

    # -- basic look-ups -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.objects)

    def __iter__(self) -> Iterator[ObjectView]:
        return iter(self.objects)

    def by_kind(self, kind: str) -> tuple[ObjectView, ...]:
        return self._by_kind.get(kind, ())

    def in_namespace(
        self, namespace: str | None, kind: str | None = None
    ) -> tuple[ObjectView, ...]:
        """Objects in `namespace` (None: cluster-scoped ones), optionally of one kind."""
        if kind is None:
            return self._by_ns.get(namespace, ())
        by_ns = self._by_ns_kind.get(kind)
        if by_ns is None:
            index: dict[str | None, list[ObjectView]] = defaultdict(list)
            for obj in self.by_kind(kind):
                index[obj.namespace].append(obj)
            by_ns = self._by_ns_kind[kind] = {k: tuple(v) for k, v in index.items()}
        return by_ns.get(namespace, ())

    def get(self, kind: str, namespace: str | None, name: str) -> ObjectView | None:
        names = self._by_name.get(kind)
        if names is None:
            names = self._by_name[kind] = {(o.namespace, o.name): o for o in self.by_kind(kind)}
        return names.get((namespace, name))

    def get_by_key(self, key: str) -> ObjectView | None:
        """By `ResourceRef.key` (`apiVersion|kind|namespace|name`)."""
        return self.by_key.get(key)

    def get_by_uid(self, uid: str) -> ObjectView | None:
        return self._uids().get(uid)

    @property
    def by_key(self) -> Mapping[str, ObjectView]:
        if self._by_key is None:
            self._by_key = {o.ref.key: o for o in self.objects}
        return self._by_key

    def namespaces(self) -> set[str]:
        """Names of namespaces: Namespace objects plus every namespace an object lives in."""
        names = {o.name for o in self.by_kind("Namespace")}
        names.update(ns for ns in self._by_ns if ns)
        return names

    def select(
        self, kind: str, namespace: str | None, selector: Selector | Mapping[str, Any]
    ) -> list[ObjectView]:
        """Objects of `kind` in `namespace` whose labels match `selector` (index-driven).

        An empty selector matches every object of that kind in the namespace.
        """
        if not isinstance(selector, Selector):
            selector = parse_selector(selector)
        equalities = selector.equalities
        if equalities:
            key, value = next(iter(equalities.items()))
            if self.label_reads is not None:
                self.label_reads.index.add((kind, namespace, key))
            candidates: Iterable[ObjectView] = self._labels().get((kind, namespace, key, value), ())
        else:
            candidates = self.in_namespace(namespace, kind)
        return [o for o in candidates if selector.matches(o.labels)]

    def workloads(self) -> tuple[ObjectView, ...]:
        """The pod-bearing objects findings are reported on.

        Every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController,
        Job, CronJob and PodTemplate, minus (when controller dedup is on, the default) those
        whose controller is also present: their findings would be dropped in favour of the
        top-most controller's anyway. Cluster rules that report per workload or per container
        should iterate this rather than `objects`.
        """
        if self._workloads is None:
            controlled = suppressed_by_controller(self) if self.dedup_controllers else ()
            self._workloads = (
                tuple(o for o in self._pod_bearing if o.key not in controlled)
                if controlled
                else self._pod_bearing
            )
        return self._workloads

    def pod_templates(
        self, namespace: str | None, label: tuple[str, str] | None = None
    ) -> Sequence[PodTemplate]:
        """(object, pod template labels) of every pod-bearing object of `namespace`, in input
        order (controlled ones included); with `label` (key, value), only those whose
        template has that label, its value compared as text (`str`). Indexed on first use:
        by namespace at once, by label for each (namespace, key) asked about, in one pass
        over that namespace's templates, so that rules matching a selector against a
        namespace's pods look at few of them and a scan indexes only the keys they name."""
        if self._pod_templates is None:
            by_ns: dict[str | None, list[PodTemplate]] = defaultdict(list)
            for obj in self._pod_bearing:
                workload = obj.workload
                if workload is not None:  # (every one of them: for the type checker)
                    labels = workload.pod_meta.get("labels")
                    if type(labels) is not dict and not is_map(labels):  # (the usual first)
                        labels = EMPTY
                    by_ns[obj.namespace].append((obj, labels))
            self._pod_templates = dict(by_ns)
        if label is None:
            return self._pod_templates.get(namespace, ())
        key, value = label
        if self.label_reads is not None:
            self.label_reads.templates.add((namespace, key))
        by_value = self._pod_templates_by_label.get((namespace, key))
        if by_value is None:
            by_value = _by_label_value(self._pod_templates.get(namespace, ()), key)
            self._pod_templates_by_label[(namespace, key)] = by_value
        return by_value.get(value, ())

    # -- ownership --------------------------------------------------------------------------
    def controller_of(self, obj: ObjectView) -> ObjectView | None:
        """The object's controller (ownerReference with controller: true) if present here."""
        return self._controller_in(obj.metadata.get("ownerReferences"), obj.namespace)

    def _controller_in(self, refs: Any, namespace: str | None) -> ObjectView | None:
        """`controller_of` an object in `namespace` whose `ownerReferences` are `refs`."""
        if not isinstance(refs, list):
            return None  # absent, or not the list the API requires: no usable owner
        for ref in refs:
            # (`is_map` with its usual answer first: this runs for every owned object)
            if not (type(ref) is dict or is_map(ref)) or not ref.get("controller"):
                continue
            owner = None
            uid = ref.get("uid")
            if uid:
                uids = self._by_uid if self._by_uid is not None else self._uids()
                owner = uids.get(uid if type(uid) is str else str(uid))
            if owner is None:
                owner = self.get(str(ref.get("kind")), namespace, str(ref.get("name")))
            return owner
        return None

    def top_controller(self, obj: ObjectView) -> ObjectView:
        """Follow controllers upwards as far as the input goes (the object itself if none)."""
        seen = {id(obj)}
        current = obj
        while True:
            owner = self.controller_of(current)
            if owner is None or id(owner) in seen:
                return current
            seen.add(id(owner))
            current = owner

    # -- RBAC -------------------------------------------------------------------------------
    def _index_bindings(self) -> None:
        by_role: dict[tuple[str, str | None, str], list[ObjectView]] = defaultdict(list)
        by_subject: dict[tuple[str, str | None, str], list[ObjectView]] = defaultdict(list)
        for binding in (*self.by_kind("RoleBinding"), *self.by_kind("ClusterRoleBinding")):
            role_ref = binding.manifest.get("roleRef")
            if isinstance(role_ref, Mapping):
                role_kind = str(role_ref.get("kind") or "")
                role_ns = binding.namespace if role_kind == "Role" else None
                by_role[(role_kind, role_ns, str(role_ref.get("name") or ""))].append(binding)
            subjects = binding.manifest.get("subjects")
            for subject in subjects if isinstance(subjects, list) else ():
                if not isinstance(subject, Mapping):
                    continue
                skind = str(subject.get("kind") or "")
                declared_ns = subject.get("namespace")
                sns = (
                    str(declared_ns)
                    if declared_ns
                    else (binding.namespace if skind == "ServiceAccount" else None)
                )
                by_subject[(skind, sns, str(subject.get("name") or ""))].append(binding)
        self._bindings_by_role = by_role
        self._bindings_by_subject = by_subject

    def role_of(self, binding: ObjectView) -> ObjectView | None:
        """The Role/ClusterRole a (Cluster)RoleBinding refers to, if present."""
        role_ref = binding.manifest.get("roleRef")
        if not isinstance(role_ref, Mapping):
            return None
        kind = str(role_ref.get("kind") or "")
        namespace = binding.namespace if kind == "Role" else None
        return self.get(kind, namespace, str(role_ref.get("name") or ""))

    def bindings_for_role(self, role: ObjectView) -> list[ObjectView]:
        """Every binding whose roleRef names this Role or ClusterRole."""
        if self._bindings_by_role is None:
            self._index_bindings()
        assert self._bindings_by_role is not None
        return self._bindings_by_role.get((role.kind, role.namespace, role.name), [])

    def bindings_for_subject(
        self, kind: str, name: str, namespace: str | None = None
    ) -> list[ObjectView]:
        """Bindings naming a subject (`User`, `Group`, or `ServiceAccount` with namespace)."""
        if self._bindings_by_subject is None:
            self._index_bindings()
        assert self._bindings_by_subject is not None
        ns = namespace if kind == "ServiceAccount" else None
        return self._bindings_by_subject.get((kind, ns, name), [])

    def policy_rules(self, role: ObjectView) -> list[Mapping[str, Any]]:
        """A role's rules, including those aggregated into a ClusterRole by aggregationRule."""
        out = _policy_rules_of(role)
        aggregation = role.manifest.get("aggregationRule")
        if role.kind == "ClusterRole" and isinstance(aggregation, Mapping):
            seen = {role.name}
            selectors = aggregation.get("clusterRoleSelectors")
            for sel in selectors if isinstance(selectors, list) else ():
                if isinstance(sel, str):
                    continue  # not a LabelSelector (the API rejects it): aggregates nothing
                try:
                    selector = parse_selector(sel)  # empty (or null): every ClusterRole
                except SelectorError:
                    continue
                for other in self.select("ClusterRole", None, selector):
                    if other.name in seen:
                        continue
                    seen.add(other.name)
                    out.extend(_policy_rules_of(other))
        return out

    def service_account(self, namespace: str | None, name: str) -> ObjectView | None:
        return self.get("ServiceAccount", namespace, name)

    def pods_using_service_account(self, namespace: str | None, name: str) -> list[ObjectView]:
        """Pod-bearing objects in `namespace` running as service account `name`."""
        if self._pods_by_sa is None:
            index: dict[tuple[str | None, str], list[ObjectView]] = defaultdict(list)
            for obj in self._pod_bearing:
                if obj.workload is None:
                    continue
                spec = obj.workload.spec
                sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
                index[(obj.namespace, str(sa))].append(obj)
            self._pods_by_sa = index
        return self._pods_by_sa.get((namespace, name), [])


def _by_label_value(templates: Sequence[PodTemplate], key: str) -> dict[str, list[PodTemplate]]:
    """The templates with label `key`, by that label's value as text, in their order (keys
    and values compared as text, as `ClusterContext.pod_templates` answers)."""
    found: dict[str, list[PodTemplate]] = defaultdict(list)
    for entry in templates:
        labels = entry[1]  # (`_raw_items`, written out: this runs for every template)
        for name, value in dict.items(labels) if isinstance(labels, dict) else labels.items():
            if (name if type(name) is str else str(name)) == key:
                found[value if type(value) is str else str(value)].append(entry)
    return found


def _policy_rules_of(role: ObjectView) -> list[Mapping[str, Any]]:
    rules = role.manifest.get("rules")
    return [r for r in rules if isinstance(r, Mapping)] if isinstance(rules, list) else []


def suppressed_by_controller(context: ClusterContext) -> frozenset[str]:
    """Keys of pod-bearing objects whose controller is also in the input (dedup targets).

    A Pod owned by a ReplicaSet owned by a Deployment, all three present, is reported once on
    the Deployment: the Pod's and the ReplicaSet's keys are returned here. Computed once per
    context.
    """
    if context._controlled is None:
        out = set()
        controller_in = context._controller_in
        for obj in context._pod_bearing:
            refs = obj.metadata.get("ownerReferences")
            if refs:
                owner = controller_in(refs, obj.namespace)
                if owner is not None and owner.workload is not None:
                    out.add(obj.key)
        context._controlled = frozenset(out)
    return context._controlled
