"""Security rules: pure functions over manifests, their registry and the scan engine.

Pure Python: no I/O in rules or the engine, no database, no Celery (import-linter enforces it);
`rules.loading.load_paths` is the only filesystem reader and exists for the offline scanner.

Engine API (what workers and the CLI call)::

    from rules import Engine, ScanConfig

    engine = Engine.from_config(config)          # config: ScanConfig | dict | None
    engine.catalogue_version                     # str; changes with rules, their code, config
    engine.evaluation_version                    # str; rules, code, disabled set only: the
                                                 #    cache key for evaluate_object output
    engine.evaluate_object(manifest)             # -> list[Result]; object rules only,
                                                 #    no overrides/exemptions; cacheable by
                                                 #    (content hash, catalogue_version)
    engine.evaluate_objects(manifests)           # -> list[list[Result]]; the same for many
                                                 #    objects, cyclic GC paused meanwhile
    engine.evaluate_cluster(manifests)           # -> list[Result]; cluster rules only
                                                 #    (manifests: iterable or ClusterContext)
    engine.apply_config(results, cluster="prod", objects=by_key, now=None)
                                                 # -> list[Result]; severity overrides,
                                                 #    exemptions (kept, marked), controller
                                                 #    dedup; objects: {ResourceRef.key: manifest}
                                                 #    or a ClusterContext
    engine.scan(manifests, cluster=None)         # -> ScanOutcome; all of the above at once
    outcome.to_report()                          # -> contracts.findings.ScanReport (JSON)
    result.to_finding()                          # -> contracts.findings.Finding (JSON)

`Result.status` is "open", "exempted" or "error" (a rule raised on that object; the scan
carried on). `engine.scan` pauses the cyclic GC while it runs; callers looping over
`evaluate_object` for many objects can do the same with `with gc_paused(): ...`.
`Result.fingerprint` identifies a finding across scans. Rule authors: see
docs/rules-authoring.md.

`rules.engine`, `rules.schema`, `rules.view`, `rules.cluster` and `rules.psa` are compiled with
mypyc when the project is installed (`rules/_native.py`); `ENGINE_MODE` says whether this process
runs them compiled or interpreted, and why (`K8SMON_INTERPRETED=1` forces the sources).
"""

from rules._native import MODE as ENGINE_MODE
from rules.cluster import ClusterContext
from rules.config import ConfigError, Exemption, ScanConfig
from rules.engine import Engine, ScanOutcome, gc_paused
from rules.loading import Document, LoadError, load_paths, parse_text
from rules.model import Result, Rule, RuleMeta, Scope, Status, Violation, rule
from rules.registry import RULE_MODULES, collect_rules, default_rules
from rules.view import POD_KINDS, ContainerView, ObjectView, WorkloadView

__all__ = [
    "ENGINE_MODE",
    "POD_KINDS",
    "RULE_MODULES",
    "ClusterContext",
    "ConfigError",
    "ContainerView",
    "Document",
    "Engine",
    "Exemption",
    "LoadError",
    "ObjectView",
    "Result",
    "Rule",
    "RuleMeta",
    "ScanConfig",
    "ScanOutcome",
    "Scope",
    "Status",
    "Violation",
    "WorkloadView",
    "collect_rules",
    "default_rules",
    "gc_paused",
    "load_paths",
    "parse_text",
    "rule",
]
