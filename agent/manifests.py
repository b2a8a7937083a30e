"""Manifests from files for `push --from-dir`: YAML (multi-document), JSON and `kind: List`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.collect import Collection, Entry
from agent.discovery import is_forbidden
from agent.normalise import normalise
from contracts.resources import ResourceRef

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class LoadedManifests:
    objects: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped_secrets: int = 0


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def _documents(path: Path) -> Iterator[Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        yield json.loads(text)
        return
    yield from yaml.safe_load_all(text)


def _flatten(document: Any) -> Iterator[Any]:
    """A document, or the items of a `kind: List` / `*List` document (recursively)."""
    if (
        isinstance(document, dict)
        and str(document.get("kind", "")).endswith("List")
        and isinstance(document.get("items"), list)
    ):
        for item in document["items"]:
            yield from _flatten(item)
    elif document is not None:
        yield document


def load_manifests(root: Path) -> LoadedManifests:
    """Every object in the files under `root`; bad files and objects become errors."""
    loaded = LoadedManifests()
    for path in _files(root):
        try:
            documents = list(_documents(path))
        except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
            loaded.errors.append(f"{path}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        for index, document in enumerate(documents):
            for obj in _flatten(document):
                where = f"{path}#{index}"
                if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
                    loaded.errors.append(f"{where}: not a Kubernetes object")
                    continue
                name = (obj.get("metadata") or {}).get("name")
                if not isinstance(name, str) or not name:
                    loaded.errors.append(f"{where}: {obj['kind']} has no metadata.name")
                    continue
                if is_forbidden(plural="", kind=str(obj["kind"])):
                    loaded.skipped_secrets += 1
                    continue
                loaded.objects.append((where, obj))
    return loaded


def to_collection(loaded: LoadedManifests) -> Collection:
    """Normalise and hash loaded objects like collected ones (a later duplicate wins)."""
    collection = Collection()
    for where, obj in loaded.objects:
        try:
            clean = normalise(obj)
            key = ResourceRef.of(clean).key
            entry = Entry.of(clean)
        except (TypeError, ValueError, KeyError) as exc:
            loaded.errors.append(f"{where}: {type(exc).__name__}: {exc}")
            continue
        collection.entries[key] = entry
        collection.object_counts[str(obj["kind"])] += 1
    return collection
