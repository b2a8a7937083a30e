"""Read manifests for scanning: YAML (multi-document), JSON, `kind: List`, directories.

`parse_text` is pure (text in, documents and errors out). `load_paths` is the one function in
`rules` that touches the filesystem; it exists for the offline scanner and tests, and never
raises for a bad file: a parse error becomes a LoadError naming the file and line, and the
other files are still read. Unknown kinds and CRDs are carried through untouched.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from contracts.findings import ScanErrorDict

try:  # libyaml is several times faster; fall back to the pure-Python loader.
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_DOC_SEPARATOR = re.compile(r"^---(?:[ \t].*)?$|^\.\.\.[ \t]*$")
# The same lines, each with the "\n" before it, in a text whose only line break is "\n" (a
# pattern that starts with a literal is searched for several times faster than `^` is).
_SEPARATOR_LINE = re.compile(r"\n(?:---(?:[ \t][^\n]*)?|\.\.\.[ \t]*)(?=\n|\Z)")
# What else `str.splitlines` ends a line at (looked for one `in` each: each is a fast scan).
_OTHER_LINE_BREAKS = ("\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


@dataclass(frozen=True, slots=True)
class Document:
    """One Kubernetes object read from `source`, whose document starts at `line` (1-based)."""

    manifest: dict[str, Any]
    source: str
    line: int


@dataclass(frozen=True, slots=True)
class LoadError:
    """A file or document that could not be used. `type` is `parse` or `invalid`."""

    source: str
    line: int | None
    message: str
    type: Literal["parse", "invalid", "rule"] = "parse"

    def to_dict(self) -> ScanErrorDict:
        return {"type": self.type, "message": self.message, "file": self.source, "line": self.line}


@dataclass(slots=True)
class Loaded:
    """Documents and errors from one or more inputs."""

    documents: list[Document]
    errors: list[LoadError]
    skipped: int = 0

    def extend(self, other: Loaded) -> None:
        self.documents.extend(other.documents)
        self.errors.extend(other.errors)
        self.skipped += other.skipped

    @property
    def manifests(self) -> list[dict[str, Any]]:
        return [d.manifest for d in self.documents]


def _split_yaml(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each YAML document, split at `---` / `...` lines."""
    if any(other in text for other in _OTHER_LINE_BREAKS):
        yield from _split_yaml_lines(text)
        return
    # Only "\n" ends lines: the separators are found by one search over the text instead of
    # a match on every line (the same chunks and numbers as `_split_yaml_lines`). In "\n" +
    # text, a match starts at the "\n" before its line: at that line's offset in `text`.
    start, begin, number, counted = 1, 0, 1, 0
    for separator in _SEPARATOR_LINE.finditer("\n" + text):
        at, line = separator.start(), separator.group()[1:]
        number += text.count("\n", counted, at)
        counted = at
        if at > begin:
            yield start, text[begin:at]
        rest = line[3:].strip()
        if line.startswith("---") and rest and not rest.startswith("#"):
            begin, start = at, number
        else:
            begin, start = separator.end(), number + 1
    if begin < len(text):
        yield start, text[begin:]


def _split_yaml_lines(text: str) -> Iterator[tuple[int, str]]:
    """`_split_yaml` line by line, for text with line breaks other than "\n" (`str.splitlines`
    ends lines at "\r", "\v", "\f", "\x1c"-"\x1e", "\x85", "\u2028" and "\u2029" too)."""
    start, chunk = 1, list[str]()
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if _DOC_SEPARATOR.match(line.rstrip("\r\n")):
            if chunk:
                yield start, "".join(chunk)
            chunk = []
            rest = line[3:].strip()
            # `--- {inline: doc}` carries content on the separator line itself: keep it.
            if line.startswith("---") and rest and not rest.startswith("#"):
                chunk = [line]
                start = number
            else:
                start = number + 1
            continue
        chunk.append(line)
    if chunk:
        yield start, "".join(chunk)


def _unwrap(value: Any, *, source: str, line: int, strict: bool, out: Loaded) -> None:
    """Add a parsed value: an object, a `List` of objects, or a problem."""
    if value is None:
        return
    if not isinstance(value, dict):
        out.errors.append(
            LoadError(
                source, line, "document is not a mapping (not a Kubernetes object)", "invalid"
            )
        )
        return
    kind = value.get("kind")
    items = value.get("items")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        for item in items:
            _unwrap(item, source=source, line=line, strict=strict, out=out)
        return
    if not isinstance(kind, str) or not kind or not isinstance(value.get("apiVersion"), str):
        if strict:
            out.errors.append(
                LoadError(
                    source,
                    line,
                    "document has no apiVersion/kind (not a Kubernetes object)",
                    "invalid",
                )
            )
        else:
            out.skipped += 1
        return
    out.documents.append(Document(value, source, line))


_STR, _MAP, _SEQ = (f"tag:yaml.org,2002:{name}" for name in ("str", "map", "seq"))
# Scalars whose constructed value is immutable and depends only on (tag, text): cacheable.
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("int", "float", "bool", "null"))


Resolve = Callable[[Any, Any, Any], str]


def file_resolver() -> Resolve:
    """`Resolver.resolve`, memoised (for the documents of one file, which repeat their texts):
    the tag of a node without an explicit one from its kind, text and implicitness. What it
    answers depends on nothing else (SafeLoader registers no path resolvers)."""
    return functools.lru_cache(maxsize=None)(yaml.resolver.Resolver().resolve)


class _CachingLoader(_Loader):  # type: ignore[misc]
    """The safe loader with the tag of each node resolved once per file (`resolve` runs
    regular expressions on every scalar; a file repeats the same texts), and no path
    resolvers (SafeLoader registers none, so the bookkeeping per node is moot).

    libyaml's composer calls these three for every node of the document. They are set on the
    instance as callables implemented in C (the memoised resolver answers a repeated text
    without running any Python; the other two ignore their arguments): a Python method each
    was three Python calls per node, a fifth of the time composing takes.
    """

    def __init__(self, stream: str, resolve: Resolve) -> None:
        super().__init__(stream)
        self.resolve = resolve
        self.descend_resolver = _IGNORE_TWO
        self.ascend_resolver = _IGNORE_NONE


# (parent node, index) -> index, and () -> (): calls into C whose result the composer ignores,
# as Resolver's own methods do nothing without path resolvers.
_IGNORE_TWO: Callable[[Any, Any], Any] = {}.get
_IGNORE_NONE: Callable[[], Any] = tuple


@dataclass(slots=True)
class _Builder:
    """Python values from one composed YAML document, as `yaml.safe_load` builds them.

    Plain mappings with string keys, sequences and strings (nearly every node of a manifest)
    are built directly; every other node (numbers, booleans, timestamps, merge keys `<<`,
    non-string keys, explicit tags) goes through the safe constructor itself, so the values
    and the errors are the same. Both record what they built in the constructor's own table
    (`constructed_objects`), so an alias is the very object its anchor built, as before.
    """

    loader: Any
    scalars: dict[tuple[str, str], Any]

    def build(self, node: Any) -> Any:
        kind = type(node)
        if kind is ScalarNode:
            return node.value if node.tag == _STR else self._scalar(node)
        built = self.loader.constructed_objects
        if node in built:
            return built[node]
        if kind is MappingNode and node.tag == _MAP:
            return self._mapping(node, built)
        if kind is SequenceNode and node.tag == _SEQ:
            items: list[Any] = []
            built[node] = items
            items.extend(
                [
                    item.value
                    if type(item) is ScalarNode and item.tag == _STR
                    else self.build(item)
                    for item in node.value
                ]
            )
            return items
        return self.loader.construct_object(node, deep=True)

    def _scalar(self, node: Any) -> Any:
        if node.tag not in _PLAIN_TAGS:
            return self.loader.construct_object(node, deep=True)
        key = (node.tag, node.value)
        if key not in self.scalars:
            self.scalars[key] = self.loader.construct_object(node, deep=True)
        return self.scalars[key]

    def _mapping(self, node: Any, built: dict[Any, Any]) -> Any:
        mapping: dict[str, Any] = {}
        built[node] = mapping
        for key_node, value_node in node.value:
            if type(key_node) is not ScalarNode or key_node.tag != _STR:
                del built[node]  # a merge key, a key that is no string: the constructor's
                return self.loader.construct_object(node, deep=True)
            # A string value (most of a manifest's leaves) as `build` returns it, without a call.
            mapping[key_node.value] = (
                value_node.value
                if type(value_node) is ScalarNode and value_node.tag == _STR
                else self.build(value_node)
            )
        return mapping


def _load_all(text: str, resolve: Resolve, scalars: dict[tuple[str, str], Any]) -> list[Any]:
    """`list(yaml.load_all(text, Loader=<safe loader>))`, built faster (`_Builder`); `resolve`
    (`file_resolver`) and `scalars` are caches shared by the documents of one file."""
    loader = _CachingLoader(text, resolve)
    builder = _Builder(loader, scalars)
    try:
        documents = []
        while loader.check_node():
            documents.append(builder.build(loader.get_node()))
            loader.constructed_objects = {}
        return documents
    finally:
        loader.dispose()


def parse_text(text: str, *, source: str, fmt: str | None = None, strict: bool = True) -> Loaded:
    """Parse one file's text. `fmt` is `json`, `yaml` or None (JSON if it looks like JSON).

    With `strict=False` documents that are not Kubernetes objects (no apiVersion/kind, e.g. a
    Helm values file found while walking a directory) are counted as skipped, not errors.
    """
    out = Loaded([], [])
    stripped = text.lstrip()
    if fmt == "json" or (fmt is None and stripped[:1] in "{["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as problem:
            if fmt == "json":
                out.errors.append(LoadError(source, problem.lineno, f"invalid JSON: {problem.msg}"))
                return out
        else:
            values = value if isinstance(value, list) else [value]
            for item in values:
                _unwrap(item, source=source, line=1, strict=strict, out=out)
            return out
    resolve = file_resolver()
    scalars: dict[tuple[str, str], Any] = {}
    for start, chunk in _split_yaml(text):
        try:
            values = _load_all(chunk, resolve, scalars)
        except yaml.YAMLError as problem:
            mark = getattr(problem, "problem_mark", None) or getattr(problem, "context_mark", None)
            last = start + max(chunk.count("\n") - 1, 0)
            line = min(start + mark.line, last) if mark is not None else start
            reason = getattr(problem, "problem", None) or str(problem).splitlines()[0]
            out.errors.append(LoadError(source, line, f"invalid YAML: {reason}"))
            continue
        for value in values:
            _unwrap(value, source=source, line=start, strict=strict, out=out)
    return out


def iter_manifest_files(root: Path) -> Iterator[Path]:
    """Files with a manifest suffix under `root`, recursively, in a stable order."""
    for path in sorted(root.rglob("*")):
        if (
            path.is_file()
            and path.suffix.lower() in MANIFEST_SUFFIXES
            and not any(part.startswith(".") for part in path.relative_to(root).parts)
        ):
            yield path


def load_paths(paths: Iterable[str | Path]) -> Loaded:
    """Read files and directories (recursively). Errors are collected, never raised."""
    out = Loaded([], [])
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for file in iter_manifest_files(path):
                out.extend(_load_file(file, strict=False))
        elif path.exists():
            out.extend(_load_file(path, strict=True))
        else:
            out.errors.append(LoadError(str(path), None, "no such file or directory"))
    return out


def _load_file(path: Path, *, strict: bool) -> Loaded:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as problem:
        return Loaded([], [LoadError(str(path), None, f"cannot read: {problem}")])
    fmt = "json" if path.suffix.lower() == ".json" else None
    return parse_text(text, source=str(path), fmt=fmt, strict=strict)


def manifests_of(values: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flatten already-parsed values (unwrapping `List`s), dropping non-objects."""
    out = Loaded([], [])
    for value in values:
        _unwrap(value, source="<memory>", line=1, strict=False, out=out)
    return out.manifests
