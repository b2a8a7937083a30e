"""Structural validation of manifests against the Kubernetes OpenAPI schema of their kind.

The schemas are the JSON Schema conversions of the Kubernetes OpenAPI documents, v1.25 to
v1.37, that the `kubernetes-validate` package ships (read as data files; the package itself is
never imported). An object whose apiVersion and kind a schema describes is checked for what
the API server's decoder refuses: a mapping where a list belongs (a Pod whose `spec` is a
list), a list where a mapping belongs (`containers` written as a map), a string where a
number or boolean belongs and so on, at every depth, with the field path of each problem.
Unknown fields, missing required fields and value ranges are not checked (the API server
drops or defaults many of them; rules report what matters). Kinds no schema describes
(custom resources) are not checked.

`validate()` is a pure function of the manifest and the Kubernetes release; the schema of a
release is loaded once per process.
"""

from __future__ import annotations

import functools
import importlib.util
import marshal
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from contracts.findings import ScanErrorDict
from rules.psa import LATEST, Version

SCHEMA_PACKAGE = "kubernetes_validate"
OLDEST_SCHEMA: Version = (1, 25)
NEWEST_SCHEMA: Version = (1, 37)
MAX_PROBLEMS = 5  # per object: the first few are what a developer needs to fix it
MAX_KINDS = 4096  # (apiVersion, kind) pairs whose schema node a release keeps
# Definitions whose values repeat verbatim across the objects of a cluster (a Deployment's
# containers in its ReplicaSets and in each of their Pods): a value of one that was found
# valid is remembered, by its exact serialisation, so that its repeats are not walked again.
REMEMBERED = frozenset({"io.k8s.api.core.v1.Container"})
MAX_REMEMBERED = 4096  # serialisations a definition keeps (then it starts afresh)

_JSON_TYPES: Mapping[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
}
_PYTHON_TYPES: Mapping[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
}
_ARTICLE = {"object": "a mapping", "array": "a list", "integer": "an integer"}


class SchemaProblem(NamedTuple):
    """One structural problem: the JSON path of the field and what is wrong with it."""

    path: str
    message: str


def invalid_object_error(view: Any, location: Mapping[str, Any] | None) -> ScanErrorDict:
    """The scan error entry of an object with structural problems (`ObjectView.problems`)."""
    problems = view.problems
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return {
        "type": "invalid",
        "message": f"{view.ref} is not a valid {view.kind}: {first.path}: {first.message}"
        f"{more}; it was not scanned",
        "path": first.path,
        "resource": view.ref.to_dict(),
        "file": location["file"] if location else None,
        "line": location["line"] if location else None,
    }


def _schema_root() -> Path | None:
    spec = importlib.util.find_spec(SCHEMA_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"


def schema_release(version: Version | None) -> Version:
    """The release whose schema judges `version` (clamped to the releases shipped)."""
    return max(OLDEST_SCHEMA, min(version or LATEST, NEWEST_SCHEMA))


@functools.cache
def _definitions(release: Version) -> Mapping[str, Any]:
    root = _schema_root()
    if root is None:
        return {}
    path = root / f"v{release[0]}.{release[1]}.0-local" / "_definitions.json"
    if not path.is_file():
        return {}
    # orjson: the file is 1.8 MB, read by every process that validates (an offline scan too).
    defs: Mapping[str, Any] = orjson.loads(path.read_bytes()).get("$defs", {})
    return defs


@functools.cache
def _kinds(release: Version) -> Mapping[tuple[str, str], str]:
    """(apiVersion, kind) -> definition name, from `x-kubernetes-group-version-kind`."""
    found: dict[tuple[str, str], str] = {}
    for name, definition in _definitions(release).items():
        for gvk in definition.get("x-kubernetes-group-version-kind") or ():
            group, version, kind = gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind")
            if not kind or (name.endswith("List") and kind.endswith("List")):
                continue
            api_version = f"{group}/{version}" if group else version
            # Older API versions of a kind share a definition name with the newest; keep the
            # first definition that declares each (apiVersion, kind).
            found.setdefault((api_version, kind), name)
    return found


def available() -> bool:
    """Whether the schemas are installed (they are a declared dependency)."""
    return bool(_definitions(NEWEST_SCHEMA))


def validate(
    manifest: Mapping[str, Any], version: Version | None = None
) -> tuple[SchemaProblem, ...]:
    """Structural problems of one manifest under the schema of release `version` (None:
    the newest). Empty for valid objects and for kinds no schema describes."""
    compiler = _compiled_for(version)
    api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
    # (apiVersion, kind) as text; most manifests hold both as strings already.
    gvk = (
        api_version if type(api_version) is str else str(api_version or ""),
        kind if type(kind) is str else str(kind or ""),
    )
    try:
        root = compiler.roots[gvk]
    except KeyError:
        name = _kinds(compiler.release).get(gvk)
        root = None if name is None else compiler.node({"$ref": name})
        if len(compiler.roots) < MAX_KINDS:  # kinds come from the input: keep a bounded few
            compiler.roots[gvk] = root
    if root is None:
        return ()
    if _valid(manifest, root):
        return ()  # nearly every object: no paths kept, no problems built
    problems: list[SchemaProblem] = []
    _walk(manifest, root, [], problems)
    return tuple(problems)


class _Children(dict):  # type: ignore[type-arg]
    """Child nodes by key, compiled on first access (definitions are recursive)."""

    __slots__ = ("_additional", "_compiler", "_properties")

    def __init__(self, compiler: _Compiler, schema: Mapping[str, Any]) -> None:
        super().__init__()
        self._compiler = compiler
        self._properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        self._additional = extra if isinstance(extra, dict) else None

    def __missing__(self, key: str) -> _Node | None:
        schema = self._properties.get(key, self._additional)
        node = self[key] = self._compiler.node(schema) if schema is not None else None
        return node


_NONE_TYPE = type(None)
_COMPOUND = frozenset({dict, list})
# Every type parsed JSON holds: a value of a key the schema does not describe needs no look.
_ANY_JSON: frozenset[type] = frozenset({dict, list, str, bool, int, float, _NONE_TYPE})
_ANY_ITEMS: Any = object()  # `_Node.lists` of a key whose lists may hold anything


class _Node:
    """A compiled schema: the JSON types allowed, the Python types that satisfy them,
    child nodes by key, and the node of list items.

    For the path-free check (`_valid_map`, `_valid_list`), what each key of a mapping needs
    is learned on first use of the key (`learn`) into three tables: `passes`, the types of
    a value that need no further look (the scalar types the child's node allows, and
    NoneType: null is "unset"; every JSON type for a key the schema does not describe);
    `maps`, the node a mapping value is checked against (None: the key refuses mappings);
    `lists`, the items' node of a list value (None: the key refuses lists; `_ANY_ITEMS`:
    any items). `scalars` is `passes` for this node's own values (a list's items), and
    `maps_ok` whether they may be mappings; `open_scalars` is `passes` of every key of a
    mapping whose schema names no properties (labels, annotations, resource quantities),
    once a key has been learned."""

    __slots__ = (
        "_compiler",
        "_items",
        "_schema",
        "allowed",
        "children",
        "lists",
        "maps",
        "maps_ok",
        "open_scalars",
        "passes",
        "py_ok",
        "scalars",
        "seen",
    )

    def __init__(self, compiler: _Compiler, schema: Mapping[str, Any]) -> None:
        self._compiler, self._schema = compiler, schema
        allowed = frozenset(_allowed_types(schema, compiler))
        self.allowed = allowed
        # Python types of parsed JSON/YAML that satisfy the schema (None: anything does).
        self.py_ok: frozenset[type] | None = (
            frozenset(t for name in allowed for t in _PYTHON_TYPES.get(name, ()))
            if allowed
            else None
        )
        # Without a type, only null needs no further look (anything else may be a mapping
        # or a list whose contents the schema still describes).
        self.scalars: frozenset[type] = (self.py_ok or frozenset()) - _COMPOUND | {_NONE_TYPE}
        self.maps_ok: bool = self.py_ok is None or dict in self.py_ok
        self.children = _Children(compiler, schema)
        self.passes: dict[Any, frozenset[type]] = {}
        self.maps: dict[Any, _Node | None] = {}
        self.lists: dict[Any, _Node | None] = {}
        self._items: _Node | bool | None = False
        self.open_scalars: frozenset[type] | None = None
        # Serialisations of values found valid (`REMEMBERED` definitions only).
        self.seen: set[bytes] | None = None

    def items(self) -> _Node | None:
        if self._items is False:
            items = self._schema.get("items")
            self._items = self._compiler.node(items) if isinstance(items, dict) else None
        return self._items  # type: ignore[return-value]

    def learn(self, key: Any) -> frozenset[type]:
        """`passes[key]`, computed and kept with `maps[key]` and `lists[key]` (a key the
        schema does not describe passes every JSON type: `children` has None for it, and
        any value is accepted there)."""
        children = self.children
        child: _Node | None = children[key]
        if child is None:
            passes = _ANY_JSON
        else:
            passes = child.scalars
            self.maps[key] = child if child.maps_ok else None
            if child.py_ok is None or list in child.py_ok:
                items = child.items()
                self.lists[key] = _ANY_ITEMS if items is None else items
            else:
                self.lists[key] = None
            if not children._properties:
                self.open_scalars = passes  # every key's node is the additionalProperties one
        self.passes[key] = passes  # last: `maps` and `lists` are complete when it is set
        return passes


class _Compiler:
    """Compiles the definitions of one release, each once."""

    def __init__(self, defs: Mapping[str, Any], release: Version) -> None:
        self.defs = defs
        self.release = release
        self.by_ref: dict[str, _Node] = {}
        # (apiVersion, kind) -> the node of its definition (None: no schema describes it).
        self.roots: dict[tuple[str, str], _Node | None] = {}

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            schema = self.defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
        return schema

    def node(self, schema: Mapping[str, Any]) -> _Node:
        ref = schema.get("$ref")
        if ref is None:
            return _Node(self, schema)
        node = self.by_ref.get(ref)
        if node is None:
            node = self.by_ref[ref] = _Node(self, self.resolve(schema))
            if str(ref).rsplit("/", 1)[-1] in REMEMBERED:
                node.seen = set()
        return node


_COMPILED: dict[Version, _Compiler] = {}  # by release: the few releases clusters report


def _compiled(release: Version) -> _Compiler:
    compiler = _COMPILED.get(release)
    if compiler is None:
        compiler = _COMPILED[release] = _Compiler(_definitions(release), release)
    return compiler


@functools.lru_cache(maxsize=64)  # the releases clusters report: a few
def _compiled_for(version: Version | None) -> _Compiler:
    """`_compiled(schema_release(version))`, found by one look-up per object."""
    return _compiled(schema_release(version))


def _path(stack: list[str | int]) -> str:
    out = ""
    for part in stack:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(object)"


def _refuse(value: Any, node: _Node, stack: list[str | int], problems: list[SchemaProblem]) -> None:
    actual = _JSON_TYPES.get(type(value), "unknown")
    expected = " or ".join(_ARTICLE.get(t, f"a {t}") for t in sorted(node.allowed))
    found = _ARTICLE.get(actual, f"a {actual}")
    problems.append(SchemaProblem(_path(stack), f"expected {expected}, found {found}"))


def _valid(value: Any, node: _Node) -> bool:
    """Whether `_walk` would find no problem in `value`: the same checks, answered without
    keeping the path of each value (most objects are valid; the walk then finds the paths)."""
    allowed = node.py_ok
    if allowed is not None and type(value) not in allowed:
        return False
    if type(value) is dict:
        return _valid_map(value, node)
    if type(value) is list:
        items = node.items()
        return items is None or _valid_list(value, items)
    return True


def _valid_map(mapping: dict[Any, Any], node: _Node) -> bool:
    """`_valid` of each value of a mapping against its key's node (`_walk_children`'s checks).

    A value whose type is in its key's `passes` (an allowed scalar, null: "unset", or any
    value of a key the schema does not describe) needs no further look: one dictionary and
    one set lookup for most values of a manifest. A mapping or list value is checked against
    its key's `maps` or `lists` node. A mapping without named properties has its values'
    types checked at once (`open_scalars`).
    """
    open_scalars = node.open_scalars
    if open_scalars is not None and open_scalars.issuperset(map(type, mapping.values())):
        return True
    passes = node.passes
    for key, item in mapping.items():
        try:
            if type(item) in passes[key]:
                continue
        except KeyError:
            if type(item) in node.learn(key):
                continue
        kind = type(item)
        if kind is dict:
            child = node.maps[key]
            if child is None or not _valid_map(item, child):
                return False
        elif kind is list:
            items = node.lists[key]
            if items is not _ANY_ITEMS and (items is None or not _valid_list(item, items)):
                return False
        else:
            child = node.children[key]
            if child is not None and child.py_ok is not None:
                return False  # a scalar of a type the schema refuses
    return True


def _valid_list(values: list[Any], node: _Node) -> bool:
    """`_valid_map`'s checks for the items of a list, all against the items' node."""
    scalars = node.scalars
    seen = node.seen
    for item in values:
        kind = type(item)
        if kind in scalars:
            continue
        if kind is dict:  # the usual item of a list in a manifest (containers, ports, env)
            if not node.maps_ok:
                return False
            if seen is not None:
                if not _valid_remembered(item, node, seen):
                    return False
            elif not _valid_map(item, node):
                return False
        elif kind is list:
            if not _valid(item, node):
                return False
        elif node.py_ok is not None:
            return False
    return True


def _valid_remembered(mapping: dict[Any, Any], node: _Node, seen: set[bytes]) -> bool:
    """`_valid_map`, answered without a walk for a mapping serialised exactly as one found
    valid before.

    `marshal` (format 2: no back-references, so equal content serialises equally) writes
    every type a parser yields with its own code (a list is not a tuple, 1 is not 1.0 nor
    True, NaN is not null) and refuses every other type, subclasses included: equal bytes
    mean equal values of equal types at every depth, hence the same answer.
    """
    try:
        blob = marshal.dumps(mapping, 2)
    except ValueError:  # a value no JSON or YAML parser yields, or too deep: walk it
        return _valid_map(mapping, node)
    if blob in seen:
        return True
    if not _valid_map(mapping, node):
        return False
    if len(seen) >= MAX_REMEMBERED:
        seen.clear()
    seen.add(blob)
    return True


def forget_remembered() -> None:
    """Forget every remembered valid value (`REMEMBERED`), so that a scan's speed does not
    depend on what an earlier scan in the same process saw."""
    for compiler in _COMPILED.values():
        for node in compiler.by_ref.values():
            if node.seen:
                node.seen.clear()


def _walk(value: Any, node: _Node, stack: list[str | int], problems: list[SchemaProblem]) -> None:
    """Check `value` against `node`, depth first; null is "unset" to the API server."""
    if node.py_ok is not None and type(value) not in node.py_ok:
        _refuse(value, node, stack, problems)
    elif type(value) is dict:
        _walk_children(value.items(), node.children, stack, problems)
    elif type(value) is list:
        items = node.items()
        if items is not None:
            _walk_children(enumerate(value), _EveryIndex(items), stack, problems)


class _EveryIndex(dict):  # type: ignore[type-arg]
    """The child nodes of a list for `_walk_children`: its items' node at every index."""

    __slots__ = ("_node",)

    def __init__(self, node: _Node) -> None:
        super().__init__()
        self._node = node

    def __missing__(self, key: int) -> _Node:
        return self._node


def _walk_children(
    pairs: Any,
    children: Mapping[Any, _Node | None],
    stack: list[str | int],
    problems: list[SchemaProblem],
) -> None:
    """Check (key, value) pairs of a map, or (index, item) of a list, against their nodes.

    Each value is checked here rather than in a function of its own: most values are scalar
    leaves, and a call for each of them was most of the validation's time.
    """
    for key, item in pairs:
        node = children[key]
        if node is None or item is None:
            continue
        kind = type(item)
        allowed = node.py_ok
        if allowed is not None and kind not in allowed:
            stack.append(key)
            _refuse(item, node, stack, problems)
            stack.pop()
        elif kind is dict:
            stack.append(key)
            _walk_children(item.items(), node.children, stack, problems)
            stack.pop()
        elif kind is list:
            items = node.items()
            if items is None:
                continue
            stack.append(key)
            _walk_children(enumerate(item), _EveryIndex(items), stack, problems)
            stack.pop()
        else:
            continue
        if len(problems) >= MAX_PROBLEMS:
            return


def _allowed_types(schema: Mapping[str, Any], compiler: _Compiler) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if t != "null"}
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if isinstance(alternatives, list):
        found: set[str] = set()
        for alternative in alternatives:
            kinds = _allowed_types(compiler.resolve(alternative), compiler)
            if not kinds:
                return set()  # an alternative without a type accepts anything
            found |= kinds
        return found
    return set()
