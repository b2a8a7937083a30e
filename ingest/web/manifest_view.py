"""Show a manifest as YAML-like lines that know their JSON path, and diff two versions.

Each rendered line carries the dotted path of the field it shows (the notation findings use,
e.g. `spec.template.spec.containers[0].securityContext.privileged`), so the page can highlight
the offending field. When the offending field is absent (a missing `securityContext`), the
deepest ancestor that exists is highlighted instead.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contracts.wire import MAX_MANIFEST_DEPTH

_PLAIN = re.compile(r"^[A-Za-z0-9_./@-][A-Za-z0-9_./:@ -]*$")
_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "~", ""}
_SEGMENT = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True, slots=True)
class Line:
    text: str
    path: str
    highlighted: bool = False


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    text = str(value)
    plain = (
        _PLAIN.match(text)
        and text.lower() not in _RESERVED
        and not text.endswith(" ")
        and not _looks_numeric(text)
    )
    return text if plain else json.dumps(text, ensure_ascii=False)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _key(key: str) -> str:
    return key if _PLAIN.match(key) and ": " not in key else json.dumps(key, ensure_ascii=False)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# A child mapping or sequence still to render: the walk keeps these on its own stack, so a
# stored manifest of any depth renders without Python recursion (no RecursionError, no 500).
_Pending = Iterator["_Pending"]


def _too_deep(lead: str, path: str) -> Line:
    return Line(f"{lead}… nested deeper than {MAX_MANIFEST_DEPTH} levels: not shown", path)


def _entry(
    head: str, value: Any, path: str, *, indent: int, depth: int, out: list[Line]
) -> _Pending | None:
    if isinstance(value, dict | list) and value:
        out.append(Line(head, path))
        if depth >= MAX_MANIFEST_DEPTH:
            out.append(_too_deep(" " * (indent + 2), path))
            return None
        if isinstance(value, dict):
            return _mapping(value, path, indent=indent + 2, depth=depth + 1, out=out)
        return _sequence(value, path, indent=indent, depth=depth + 1, out=out)
    out.append(Line(f"{head} {_scalar(value)}", path))
    return None


def _mapping(
    value: Mapping[str, Any],
    path: str,
    *,
    indent: int,
    depth: int,
    out: list[Line],
    first_lead: str | None = None,
) -> _Pending:
    for index, (key, item) in enumerate(value.items()):
        lead = first_lead if first_lead is not None and index == 0 else " " * indent
        head = f"{lead}{_key(str(key))}:"
        child = _entry(head, item, _child(path, str(key)), indent=indent, depth=depth, out=out)
        if child is not None:
            yield child


def _sequence(
    value: Sequence[Any], path: str, *, indent: int, depth: int, out: list[Line]
) -> _Pending:
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        lead = " " * indent + "- "
        if isinstance(item, dict) and item:
            if depth >= MAX_MANIFEST_DEPTH:
                out.append(_too_deep(lead, item_path))
            else:
                yield _mapping(
                    item, item_path, indent=indent + 2, depth=depth + 1, out=out, first_lead=lead
                )
        elif isinstance(item, list) and item:
            out.append(Line(lead.rstrip(), item_path))
            if depth >= MAX_MANIFEST_DEPTH:
                out.append(_too_deep(" " * (indent + 2), item_path))
            else:
                yield _sequence(item, item_path, indent=indent + 2, depth=depth + 1, out=out)
        else:
            out.append(Line(lead + _scalar(item), item_path))


def render(body: Mapping[str, Any]) -> list[Line]:
    """The manifest as YAML-like lines, each knowing its path; containers deeper than the
    ingest cap (MAX_MANIFEST_DEPTH, what older servers may have stored) become one marker line."""
    out: list[Line] = []
    walk: list[_Pending] = [_mapping(body, "", indent=0, depth=1, out=out)]
    while walk:
        child = next(walk[-1], None)
        if child is None:
            walk.pop()
        else:
            walk.append(child)
    return out


def _ancestors(path: str) -> Iterable[str]:
    """`a.b[0].c`, then `a.b[0]`, `a.b`, `a`."""
    parts = [m.group(0) for m in _SEGMENT.finditer(path)]
    for end in range(len(parts), 0, -1):
        yield "".join(parts[:end]).lstrip(".")


def highlight(lines: Sequence[Line], paths: Iterable[str]) -> list[Line]:
    """Mark the lines of each offending path (or of its deepest existing ancestor)."""
    known = {ancestor for line in lines for ancestor in _ancestors(line.path)}
    targets: set[str] = set()
    for path in paths:
        for candidate in _ancestors(path.removeprefix("$.").removeprefix(".")):
            if candidate in known:
                targets.add(candidate)
                break

    def marked(line_path: str) -> bool:
        return any(line_path == t or line_path.startswith((t + ".", t + "[")) for t in targets)

    return [Line(line.text, line.path, marked(line.path)) for line in lines]


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: str  # add | del | ctx | hunk | head
    text: str


def diff(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    old_label: str,
    new_label: str,
    context: int = 3,
) -> list[DiffLine]:
    """A unified diff of two manifest versions (empty when they render the same)."""
    a = [line.text for line in render(old)]
    b = [line.text for line in render(new)]
    out: list[DiffLine] = []
    for raw in difflib.unified_diff(
        a, b, fromfile=old_label, tofile=new_label, n=context, lineterm=""
    ):
        if raw.startswith(("---", "+++")):
            out.append(DiffLine("head", raw))
        elif raw.startswith("@@"):
            out.append(DiffLine("hunk", raw))
        elif raw.startswith("+"):
            out.append(DiffLine("add", raw))
        elif raw.startswith("-"):
            out.append(DiffLine("del", raw))
        else:
            out.append(DiffLine("ctx", raw))
    return out
