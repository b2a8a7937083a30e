"""The scan engine: runs object and cluster rules, applies configuration, builds outcomes.

An Engine is immutable after construction and holds no per-scan state, so one instance can
serve every scan of a worker process. See `rules/__init__.py` for the API summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
import hashlib
import operator
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import CodeType
from typing import Any

from contracts.advisories import Advisory
from contracts.findings import (
    Finding,
    LocationDict,
    ScanErrorDict,
    ScanReport,
    ScanSummary,
)
from contracts.hashing import canonical_json
from contracts.severity import Severity
from rules.cluster import ClusterContext, suppressed_by_controller
from rules.config import EXEMPT_ANNOTATION, ConfigError, Exemption, ScanConfig
from rules.configure import ObjectFacts, apply_config
from rules.fleet import FleetContext, RunningImage
from rules.loading import Document
from rules.model import SEVERITY_VALUES, Result, Rule, RuleMeta, Scope, Violation
from rules.psa import Version, assign_versions
from rules.registry import CATALOGUE_REVISION, default_rules
from rules.schema import forget_remembered, invalid_object_error
from rules.view import ObjectView, make_ref

ENGINE_VERSION = "1"

# Builds a Result from its fields in order without the named tuple's own `__new__` (a Python
# function with keyword handling): a scan builds one per finding.
_new_result = tuple.__new__


def _code_digest(code: CodeType, digest: Any) -> None:
    digest.update(code.co_code)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            _code_digest(const, digest)
        else:
            digest.update(repr(const).encode("utf-8", "backslashreplace"))


def _rule_fingerprint(rule_: Rule) -> str:
    digest = hashlib.sha256()
    code = getattr(rule_.check, "__code__", None)
    if isinstance(code, CodeType):
        _code_digest(code, digest)
    return digest.hexdigest()[:16]


def _error_result(
    meta: RuleMeta, ref: Any, problem: BaseException, location: LocationDict | None
) -> Result:
    return Result(
        rule_id=meta.id,
        title=meta.title,
        severity=meta.severity,
        category=meta.category,
        cis=meta.cis,
        pss=meta.pss,
        resource=ref,
        container=None,
        path="",
        message=f"rule {meta.id} failed on this object: {type(problem).__name__}: {problem}",
        status="error",
        location=location,
    )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one scan, restoring its previous state.

    A scan allocates hundreds of thousands of small container objects while the parsed input
    (millions of dicts) is alive; every collection the allocations trigger traverses that
    input again, which costs about a third of the scan's time. Nothing a scan creates needs
    the collector before the scan ends. When it resumes, what is alive has been moved to the
    oldest generation (`_promote_young`).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            _promote_young()
            gc.enable()


def _promote_young() -> None:
    """Move every tracked object to the oldest generation, without a collection.

    What a scan returns (a Result per finding, with its ResourceRef: data without reference
    cycles) is otherwise all in the youngest generation when the collector resumes, and the
    first allocation after it then traverses every one of them (a twentieth of a 100,000-object
    scan's time) only to promote them. `gc.freeze()` moves every tracked object to the
    permanent generation and zeroes the young count; `gc.unfreeze()` moves them all to the
    oldest, which full collections still traverse. The young objects the caller had before
    the scan move with them: a reference cycle among them that is garbage waits for the next
    full collection instead of a young one (a scan itself leaves none). Skipped when the
    process has frozen objects itself (unfreezing would undo that).
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """Everything one scan produced. `results` holds open and exempted findings (sorted)."""

    results: tuple[Result, ...]
    errors: tuple[ScanErrorDict, ...]
    objects: int
    rules: int
    expired_exemptions: tuple[Exemption, ...]
    catalogue_version: str

    @property
    def open(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if r.status == "open")

    @property
    def exempted(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if r.status == "exempted")

    def reaches(self, severity: Severity) -> bool:
        """True when an open finding is at least `severity` (for `--fail-on`)."""
        return any(r.severity.at_least(severity) for r in self.open)

    def summary(self) -> ScanSummary:
        by_severity = {s.value: 0 for s in Severity}
        open_count = 0
        for result in self.results:
            if result.status == "open":
                open_count += 1
                by_severity[SEVERITY_VALUES[result.severity]] += 1
        return {
            "objects": self.objects,
            "rules": self.rules,
            "findings": len(self.results),
            "open": open_count,
            "exempted": len(self.results) - open_count,
            "errors": len(self.errors),
            "by_severity": by_severity,
            "expired_exemptions": [e.expired_record() for e in self.expired_exemptions],
            "catalogue_version": self.catalogue_version,
        }

    def findings(self) -> list[Finding]:
        return [r.to_finding() for r in self.results]

    def to_report(self) -> ScanReport:
        """The design's JSON contract: `{"findings", "errors", "summary"}`."""
        return {"findings": self.findings(), "errors": list(self.errors), "summary": self.summary()}


def object_facts(context: ClusterContext) -> dict[str, ObjectFacts]:
    """What configuration reads from each object of a cluster, by `ResourceRef.key`."""
    return {
        obj.ref.key: ObjectFacts.of(obj.labels, obj.annotations)
        for obj in context.objects
        if obj.labels or obj.annotations
    }


# A result's first six fields, the rule's: (id, title, severity, category, cis, pss).
_Head = tuple[str, str, Severity, str, tuple[str, ...], tuple[str, ...]]
_Plan = tuple[tuple[Any, RuleMeta, _Head], ...]


def _head(meta: RuleMeta) -> _Head:
    return (meta.id, meta.title, meta.severity, meta.category, meta.cis, meta.pss)


def _plans(rules_: Sequence[Rule]) -> tuple[_Plan, dict[str, _Plan]]:
    """(check, meta, head) of the rules to run on an object: those for any apiVersion, and
    by apiVersion, for each apiVersion a rule is limited to (same order as `rules_`)."""
    versions: set[str] = set()
    for r in rules_:
        versions |= r.meta.api_versions or frozenset()
    by_version = {
        version: tuple(
            (r.check, r.meta, _head(r.meta))
            for r in rules_
            if r.meta.api_versions is None or version in r.meta.api_versions
        )
        for version in versions
    }
    return tuple(
        (r.check, r.meta, _head(r.meta)) for r in rules_ if r.meta.api_versions is None
    ), by_version


def _facts_of_results(
    context: ClusterContext, results: Sequence[Result], *, labels: bool
) -> dict[str, ObjectFacts]:
    """`object_facts` restricted to what `apply_config` reads: the objects `results` are
    about (most objects of a scan have no finding, and building their facts copies their
    labels) and, without exemptions to match labels against (`labels` false), only those
    with an exemption annotation."""
    candidates = [
        obj
        for obj in context.objects
        if ((obj.labels or obj.annotations) if labels else EXEMPT_ANNOTATION in obj.annotations)
    ]
    if not candidates:
        return {}  # the usual scan without exemptions: no object has the annotation
    wanted = {result.resource.key for result in results}
    return {
        key: ObjectFacts.of(obj.labels, obj.annotations)
        for obj in candidates
        if (key := obj.ref.key) in wanted
    }


# Most severe first: a plain look-up per result (`Severity.rank` is a property).
_SEVERITY_ORDER: Mapping[Severity, int] = {severity: -severity.rank for severity in Severity}


_STATUS = operator.attrgetter("status")


def _sort_key(result: Result) -> tuple[Any, ...]:
    return (
        _SEVERITY_ORDER[result.severity],
        result.rule_id,
        result.resource.key,
        result.container or "",
        result.path,
    )


class Engine:
    """Evaluates a rule catalogue under one configuration. Immutable; safe to share."""

    def __init__(self, rules: Sequence[Rule], config: ScanConfig | None = None) -> None:
        config = config or ScanConfig()
        known = {r.id for r in rules}
        unknown = sorted(config.referenced_rule_ids() - known)
        if unknown:
            raise ConfigError(f"configuration names unknown rule ids: {', '.join(unknown)}")
        self.config = config
        self.all_rules: tuple[Rule, ...] = tuple(rules)
        self.rules: tuple[Rule, ...] = tuple(r for r in rules if r.id not in config.disabled)
        self._meta = {r.id: r.meta for r in self.all_rules}
        any_kind: list[Rule] = []
        by_kind: dict[str, list[Rule]] = defaultdict(list)
        cluster: list[Rule] = []
        fleet: list[Rule] = []
        for r in self.rules:
            if r.meta.scope is Scope.CLUSTER:
                cluster.append(r)
            elif r.meta.scope is Scope.FLEET:
                fleet.append(r)
            elif r.meta.kinds is None:
                any_kind.append(r)
            else:
                for kind in r.meta.kinds:
                    by_kind[kind].append(r)
        self._any_kind = tuple(any_kind)
        self._by_kind = {
            kind: tuple(sorted((*rules_, *any_kind), key=lambda r: r.id))
            for kind, rules_ in by_kind.items()
        }
        # What evaluate_object iterates: (check, meta) per kind and apiVersion, precomputed.
        self._plan_any = _plans(any_kind)
        self._plan = {kind: _plans(rules_) for kind, rules_ in self._by_kind.items()}
        self._cluster_rules = tuple(cluster)
        self._fleet_rules = tuple(fleet)
        described = self._described_rules()
        self.catalogue_version = self._compute_version(described)
        # What evaluate_object/evaluate_cluster output depends on: the rules, their code and
        # the disabled set, not severities or exemptions (applied by apply_config). A finer
        # cache key for raw results than catalogue_version, which changes with every edit of
        # an exemption or severity override.
        self.evaluation_version = self._compute_version(described, with_config=False)

    @classmethod
    def from_config(
        cls,
        config: ScanConfig | Mapping[str, Any] | None = None,
        *,
        rules: Sequence[Rule] | None = None,
    ) -> Engine:
        """An engine over the built-in catalogue (or `rules`) with `config` (data or parsed)."""
        if config is None or isinstance(config, Mapping):
            config = ScanConfig.from_dict(config)
        return cls(default_rules() if rules is None else rules, config)

    def _described_rules(self) -> list[dict[str, Any]]:
        """Every rule's description and code digest, as both versions hash them."""
        return [{**r.meta.to_info(), "code": _rule_fingerprint(r)} for r in self.all_rules]

    def _compute_version(self, described: list[dict[str, Any]], *, with_config: bool = True) -> str:
        payload: dict[str, Any] = {
            "engine": ENGINE_VERSION,
            "revision": CATALOGUE_REVISION,
            "rules": described,
        }
        if with_config:
            payload["config"] = self.config.to_dict()
        else:
            payload["disabled"] = sorted(self.config.disabled)
        return f"v{ENGINE_VERSION}-" + hashlib.sha256(canonical_json(payload)).hexdigest()[:20]

    def meta(self, rule_id: str) -> RuleMeta:
        return self._meta[rule_id]

    def rules_for(self, kind: str) -> tuple[Rule, ...]:
        """Enabled object rules that apply to `kind` (precomputed)."""
        return self._by_kind.get(kind, self._any_kind)

    @property
    def cluster_rules(self) -> tuple[Rule, ...]:
        return self._cluster_rules

    @property
    def fleet_rules(self) -> tuple[Rule, ...]:
        return self._fleet_rules

    # -- evaluation -------------------------------------------------------------------------
    def evaluate_object(
        self, manifest: Mapping[str, Any] | ObjectView, *, location: LocationDict | None = None
    ) -> list[Result]:
        """Run every enabled object rule on one manifest. No exemptions or overrides applied.

        The output depends only on the manifest and the catalogue version, so it can be
        cached by (content hash, catalogue version). A rule that raises yields one result
        with status "error" for that (rule, object); the other rules still run.
        """
        view = manifest if isinstance(manifest, ObjectView) else ObjectView(manifest)
        if view.problems:
            return []  # rules run only on structurally valid objects
        return self._evaluate_valid(view, location)

    def _evaluate_valid(self, view: ObjectView, location: LocationDict | None) -> list[Result]:
        """`evaluate_object` of a view known to be structurally valid."""
        results: list[Result] = []
        plan, by_version = self._plan.get(view.kind, self._plan_any)
        if by_version:
            plan = by_version.get(view.api_version, plan)
        for check, meta, head in plan:
            try:
                # A Violation's fields by unpacking (message, path, container, subject,
                # severity): the result is the rule's head and these, in Result's order.
                for message, path, container, _subject, _severity in check(view):
                    results.append(
                        _new_result(
                            Result,
                            (*head, view.ref, container, path, message, "open", None, location),
                        )
                    )
            except Exception as problem:
                results.append(_error_result(meta, view.ref, problem, location))
        return results

    def evaluate_objects(
        self, manifests: Iterable[Mapping[str, Any] | ObjectView]
    ) -> list[list[Result]]:
        """`evaluate_object` for each manifest (same order), with the cyclic GC paused."""
        with gc_paused():
            return [self.evaluate_object(m) for m in manifests]

    def evaluate_cluster(
        self,
        manifests: ClusterContext | Iterable[Mapping[str, Any]],
        *,
        locations: Mapping[str, LocationDict] | None = None,
    ) -> list[Result]:
        """Run every enabled cluster rule on a whole cluster's state (no config applied).

        Rules reporting per workload walk `ClusterContext.workloads()`, which leaves out
        controlled objects when the context deduplicates: a context whose
        `dedup_controllers` differs from this engine's configuration is re-indexed with the
        configuration's setting, so that disabling dedup reports on every object.
        """
        dedup = self.config.dedup_controllers
        if not isinstance(manifests, ClusterContext):
            context = ClusterContext(manifests, dedup_controllers=dedup)
        elif manifests.dedup_controllers != dedup:
            context = ClusterContext(manifests.objects, dedup_controllers=dedup)
        else:
            context = manifests
        results: list[Result] = []
        for r in self._cluster_rules:
            meta = r.meta
            head = _head(meta)
            try:
                for v in r.check(context):
                    subject = v.subject
                    # Most subjects are the context's views: their ref without a call.
                    ref = subject.ref if type(subject) is ObjectView else self._subject_ref(v)
                    location = locations.get(ref.key) if locations else None
                    results.append(
                        _new_result(
                            Result,
                            (*head, ref, v.container, v.path, v.message, "open", None, location),
                        )
                    )
            except Exception as problem:
                results.append(
                    _error_result(
                        meta,
                        make_ref({"kind": "Cluster", "metadata": {"name": "*"}}),
                        problem,
                        None,
                    )
                )
        return results

    def evaluate_fleet(self, fleet: FleetContext) -> list[tuple[str | None, Result]]:
        """Run every enabled fleet rule on the fleet's running images (no config applied):
        (cluster id, result) pairs, the cluster being the subject's. A violation's own
        `severity` (an advisory's) replaces the rule's. The drift thresholds are this
        engine's configuration (`image_drift`), whatever the context carried."""
        if fleet.drift != self.config.image_drift:
            fleet = dataclasses.replace(fleet, drift=self.config.image_drift)
        results: list[tuple[str | None, Result]] = []
        for r in self._fleet_rules:
            meta = r.meta
            try:
                for v in r.check(fleet):
                    subject = v.subject
                    if not isinstance(subject, RunningImage):
                        raise ValueError("a fleet rule's violation must name its RunningImage")
                    result = Result(
                        meta.id,
                        meta.title,
                        v.severity or meta.severity,
                        meta.category,
                        meta.cis,
                        meta.pss,
                        subject.workload,
                        v.container,
                        v.path,
                        v.message,
                    )
                    results.append((subject.cluster, result))
            except Exception as problem:
                ref = make_ref({"kind": "Cluster", "metadata": {"name": "*"}})
                results.append((None, _error_result(meta, ref, problem, None)))
        return results

    def _fleet_of_one(
        self,
        context: ClusterContext,
        *,
        cluster: str | None,
        advisories: Sequence[Advisory],
        now: dt.datetime,
        locations: Mapping[str, LocationDict],
    ) -> list[Result]:
        """Fleet rules on one scanned input (a fleet of one cluster), with file locations."""
        if not self._fleet_rules:
            return []
        fleet = FleetContext.of_cluster(
            context, cluster=cluster, advisories=advisories, drift=self.config.image_drift, now=now
        )
        results = [result for _cluster, result in self.evaluate_fleet(fleet)]
        if not locations:
            return results  # their location is None already
        return [result._replace(location=locations.get(result.resource.key)) for result in results]

    @staticmethod
    def _subject_ref(v: Violation) -> Any:
        subject = v.subject
        if isinstance(subject, ObjectView):
            return subject.ref
        if isinstance(subject, Mapping):
            return make_ref(subject)
        if subject is not None and hasattr(subject, "key"):
            return subject  # already a ResourceRef
        raise ValueError("a cluster rule's violation must name its subject")

    # -- configuration ----------------------------------------------------------------------
    def apply_config(
        self,
        results: Iterable[Result],
        *,
        cluster: str | None = None,
        objects: ClusterContext | Mapping[str, Mapping[str, Any] | ObjectView] | None = None,
        now: dt.datetime | None = None,
    ) -> list[Result]:
        """`rules.configure.apply_config` with this engine's configuration, the object facts
        and controller dedup taken from `objects` (a ClusterContext, or manifests by
        `ResourceRef.key`)."""
        context: ClusterContext | None = None
        if isinstance(objects, ClusterContext):
            context = objects
        elif objects is not None:
            context = ClusterContext(
                objects.values(), dedup_controllers=self.config.dedup_controllers
            )
        return apply_config(
            results,
            config=self.config,
            facts=object_facts(context) if context is not None else {},
            cluster=cluster,
            now=now or dt.datetime.now(dt.UTC),
            suppressed=self._suppressed(context),
        )

    def _suppressed(self, context: ClusterContext | None) -> frozenset[str]:
        if context is None or not self.config.dedup_controllers:
            return frozenset()
        return frozenset(suppressed_by_controller(context))

    # -- whole scans ------------------------------------------------------------------------
    def scan(
        self,
        inputs: Iterable[Mapping[str, Any] | Document],
        *,
        cluster: str | None = None,
        now: dt.datetime | None = None,
        load_errors: Iterable[ScanErrorDict] = (),
        kubernetes_version: Version | None = None,
        advisories: Sequence[Advisory] = (),
    ) -> ScanOutcome:
        """Evaluate object, cluster and fleet rules on `inputs`, then apply the configuration.

        Fleet rules see the input as a fleet of one cluster, with `advisories` loaded.

        `kubernetes_version` is the (major, minor) release the input is judged as (None:
        the newest the catalogue knows); each object's Pod Security policy version is its
        namespace's `enforce-version` pin when the input has that Namespace, else this
        (see `rules.psa.assign_versions`).

        `inputs` are manifests or `rules.loading.Document`s (which add file/line locations).
        Objects whose controller is also in the input are skipped when `dedup_controllers`
        is on. `load_errors` (e.g. `LoadError.to_dict()`) are carried into the outcome; an
        input that is not a mapping is reported as an `invalid` error and skipped.
        The cyclic garbage collector is paused for the duration of the call (`gc_paused`).
        The schema check starts without the values an earlier scan found valid
        (`rules.schema.forget_remembered`): a scan is as fast as its own input makes it.
        """
        forget_remembered()
        with gc_paused():
            return self._scan(
                inputs,
                cluster=cluster,
                now=now,
                load_errors=load_errors,
                kubernetes_version=kubernetes_version,
                advisories=advisories,
            )

    def _scan(
        self,
        inputs: Iterable[Mapping[str, Any] | Document],
        *,
        cluster: str | None,
        now: dt.datetime | None,
        load_errors: Iterable[ScanErrorDict],
        kubernetes_version: Version | None = None,
        advisories: Sequence[Advisory] = (),
    ) -> ScanOutcome:
        now = now or dt.datetime.now(dt.UTC)
        views: list[ObjectView] = []
        locations: dict[str, LocationDict] = {}
        located: list[LocationDict | None] = []
        errors: list[ScanErrorDict] = list(load_errors)
        for item in inputs:
            if isinstance(item, Document):
                manifest: Any = item.manifest
                loc: LocationDict | None = {"file": item.source, "line": item.line}
            else:
                manifest, loc = item, None
            if not isinstance(manifest, (dict, Mapping)):
                errors.append(
                    {
                        "type": "invalid",
                        "message": f"input is not a mapping (not a Kubernetes object): "
                        f"{type(manifest).__name__}",
                        "file": loc["file"] if loc else None,
                        "line": loc["line"] if loc else None,
                    }
                )
                continue
            view = ObjectView(manifest)
            if loc is not None:
                locations.setdefault(view.key, loc)
            views.append(view)
            located.append(loc)
        assign_versions(views, kubernetes_version)
        valid: list[ObjectView] = []
        for view, loc in zip(views, located, strict=True):
            if view.problems:
                errors.append(invalid_object_error(view, loc))
            else:
                valid.append(view)
        read = len(views)
        if len(valid) < len(views):
            keep = {id(view) for view in valid}
            located = [loc for view, loc in zip(views, located, strict=True) if id(view) in keep]
            views = valid
        # Every view left is structurally valid (checked above): the context need not ask.
        context = ClusterContext(
            views, dedup_controllers=self.config.dedup_controllers, skip_invalid=False
        )
        suppressed = self._suppressed(context)
        raw: list[Result] = []
        evaluate = self._evaluate_valid  # every view left is valid
        for view, loc in zip(views, located, strict=True):
            # Only pod-bearing objects are ever suppressed: the others' keys are not built
            # here (most of them have no finding, and so never need one).
            if suppressed and view.workload is not None and view.key in suppressed:
                continue
            raw.extend(evaluate(view, loc))
        if self._cluster_rules:
            raw.extend(self.evaluate_cluster(context, locations=locations))
        raw.extend(
            self._fleet_of_one(
                context, cluster=cluster, advisories=advisories, now=now, locations=locations
            )
        )
        applied = apply_config(
            raw,
            config=self.config,
            facts=_facts_of_results(context, raw, labels=bool(self.config.exemptions)),
            cluster=cluster,
            now=now,
            suppressed=suppressed,
        )
        if "error" not in map(_STATUS, applied):
            findings = applied  # the usual scan: no rule failed (one C-level pass to know)
        else:
            findings = self._split_errors(applied, errors)
        findings.sort(key=_sort_key)
        return ScanOutcome(
            results=tuple(findings),
            errors=tuple(errors),
            objects=read,
            rules=len(self.rules),
            expired_exemptions=tuple(self.config.expired_exemptions(now)),
            catalogue_version=self.catalogue_version,
        )

    @staticmethod
    def _split_errors(applied: list[Result], errors: list[ScanErrorDict]) -> list[Result]:
        """The results that are findings; each rule error is appended to `errors`."""
        findings: list[Result] = []
        for result in applied:
            if result.status == "error":
                errors.append(
                    {
                        "type": "rule",
                        "message": result.message,
                        "rule_id": result.rule_id,
                        "resource": result.resource.to_dict(),  # type: ignore[typeddict-item]
                        "file": result.location["file"] if result.location else None,
                        "line": result.location["line"] if result.location else None,
                    }
                )
            else:
                findings.append(result)
        return findings
