"""Rendering helpers for the chart tests: a real Helm v4 engine (helm-python-sdk), offline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import helm_python
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
HELM_DIR = REPO_ROOT / "helm"
SERVER = "k8s-monitor"
AGENT = "k8s-monitor-agent"
CHARTS = (SERVER, AGENT)
RELEASE = "mon"
NAMESPACE = "k8s-monitor"
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


def chart_dir(chart: str) -> Path:
    return HELM_DIR / chart


def ci_values_files(chart: str) -> list[Path]:
    """The chart's ci/*-values.yaml files (what chart-testing would install)."""
    return sorted((chart_dir(chart) / "ci").glob("*-values.yaml"))


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


@cache
def load_chart(chart: str) -> helm_python.Chart:
    return helm_python.Chart.load(chart_dir(chart))


@dataclass(frozen=True)
class Rendered:
    """One rendered chart: its manifests (hooks and tests included) and NOTES.txt."""

    documents: list[dict[str, Any]]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.documents if doc["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [
            doc for doc in self.of_kind(kind) if doc["metadata"]["name"].endswith(name_suffix)
        ]
        assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {len(found)}"
        return found[0]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
        return found[0]

    def as_yaml(self) -> str:
        return yaml.safe_dump_all(self.documents, sort_keys=False)


def render(chart: str, values: dict[str, Any] | None = None) -> Rendered:
    """Render offline as `helm install` would (schema validated), split into documents."""
    out = load_chart(chart).render(values or {}, name=RELEASE, namespace=NAMESPACE)
    documents: list[dict[str, Any]] = []
    notes = ""
    for template, text in sorted(out.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        documents.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(documents=documents, notes=notes)


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod spec inside any workload kind."""
    kind = doc["kind"]
    if kind == "Pod":
        return doc["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    if doc["kind"] == "Pod":
        return doc["metadata"].get("labels", {})
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {})
    return doc["spec"]["template"]["metadata"].get("labels", {})


def workloads(rendered: Rendered) -> list[dict[str, Any]]:
    return [doc for doc in rendered.documents if doc["kind"] in POD_KINDS]


def containers(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(doc)
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a matchLabels-only label selector selects these labels."""
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are used in our charts"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
