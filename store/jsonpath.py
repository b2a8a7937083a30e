"""The one JSON-path dialect of manifest search: parsed once, evaluated in Python (SQLite) or
translated to PostgreSQL's SQL/JSON path (lax mode), with the same answers on both.

The dialect (docs/operators.md, "Search"):

    $                      the manifest
    .name  ['name']        a member ("name" may hold any character when quoted)
    .*                     every member's value
    [3]  [*]               an array element, every element
    ..name  ..['name']     `name` in the object and in every object nested in it, each once
    [?(FILTER)]            the elements for which FILTER holds
    ? (FILTER)             the values (an array: its elements) for which FILTER holds

    FILTER:  @.rel.path            exists
             @.rel.path OP value   OP: == != < <= > >=; value: 'str', "str", number, true,
                                   false, null, or another @ path
             ! FILTER   FILTER && FILTER   FILTER || FILTER   ( FILTER )

Semantics follow PostgreSQL's lax mode, which Python mirrors: a missing member yields nothing;
a member step on an array applies to its elements (one level); `[*]` and `[0]` on a
non-array yield the value itself; a filter tests the elements of an element that is itself an
array; a comparison holds when any pair of values compares true
(arrays are unwrapped one level), is unknown when values of different types meet, and `!`
of unknown stays unknown (so the element is not selected).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_PATH_LENGTH = 1000
OPERATORS = ("==", "!=", "<=", ">=", "<", ">")


class PathSyntaxError(ValueError):
    """The text is not a path of the dialect; the message says where and why."""


# ---- the parsed form --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    name: str | None  # None: every member (`.*`)


@dataclass(frozen=True, slots=True)
class Index:
    index: int | None  # None: every element (`[*]`)


@dataclass(frozen=True, slots=True)
class Descend:
    name: str  # `..name`


@dataclass(frozen=True, slots=True)
class Filter:
    test: Test


@dataclass(frozen=True, slots=True)
class Relative:
    steps: tuple[Member | Index, ...]


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Exists:
    path: Relative


@dataclass(frozen=True, slots=True)
class Compare:
    left: Relative | Literal
    op: str
    right: Relative | Literal


@dataclass(frozen=True, slots=True)
class Not:
    test: Test


@dataclass(frozen=True, slots=True)
class Logic:
    op: str  # "&&" or "||"
    tests: tuple[Test, ...]


Test = Exists | Compare | Not | Logic
Step = Member | Index | Descend | Filter


@dataclass(frozen=True, slots=True)
class JsonPath:
    text: str
    steps: tuple[Step, ...]

    def find(self, document: Any) -> list[Any]:
        """Every value the path yields in `document` (Python evaluation of the dialect)."""
        nodes = [document]
        for step in self.steps:
            nodes = list(_apply(step, nodes))
        return nodes

    def postgres_stages(self) -> list[str]:
        """The path as lax SQL/JSON paths, split at each `..name`.

        The first stage runs on the manifest; each later stage runs on every object that
        `strict $.**` reaches from the previous stage's values (strict, so each node comes
        once), starting with the descended member. SQL chains them with lateral joins.
        """
        stages: list[str] = []
        current = "lax $"
        for step in self.steps:
            if isinstance(step, Descend):
                stages.append(current)
                current = "lax $" + _pg_member(step.name)
            else:
                current += _pg_step(step)
        stages.append(current)
        return stages


# ---- parsing ----------------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_INDEX = re.compile(r"(0|[1-9][0-9]{0,8})")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> PathSyntaxError:
        return PathSyntaxError(f"{message} at character {self.pos + 1}")

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> bool:
        if self.peek(token):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.take(token):
            raise self.fail(f"expected {token!r}")

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def take_after_spaces(self, token: str) -> bool:
        self.skip_spaces()
        return self.take(token)

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def name(self) -> str:
        found = _NAME.match(self.text, self.pos)
        if not found:
            raise self.fail("expected a member name (quote it as ['name'] if it has symbols)")
        self.pos = found.end()
        return found.group()

    def quoted(self) -> str:
        quote = self.text[self.pos : self.pos + 1]
        if quote not in ("'", '"'):
            raise self.fail("expected a quoted string")
        self.pos += 1
        chars: list[str] = []
        while not self.at_end():
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\" and not self.at_end():
                chars.append(self.text[self.pos])
                self.pos += 1
            elif char == quote:
                return "".join(chars)
            else:
                chars.append(char)
        raise self.fail("unterminated string")

    def path(self) -> tuple[Step, ...]:
        self.skip_spaces()
        self.expect("$")
        steps = self.steps(relative=False)
        self.skip_spaces()
        if not self.at_end():
            raise self.fail(f"unexpected {self.text[self.pos]!r}")
        return steps

    def steps(self, *, relative: bool) -> tuple[Step, ...]:
        steps: list[Step] = []
        while True:
            self.skip_spaces()
            if self.take(".."):
                if relative:
                    raise self.fail("'..' is not supported inside a filter")
                steps.append(Descend(self.quoted_in_brackets() if self.peek("[") else self.name()))
            elif self.take("."):
                steps.append(Member(None) if self.take("*") else Member(self.name()))
            elif self.peek("[?") or self.peek("?"):
                if relative:
                    raise self.fail("a filter inside a filter is not supported")
                bracketed = self.take("[")
                self.expect("?")
                self.skip_spaces()
                self.expect("(")
                test = self.test()
                self.skip_spaces()
                self.expect(")")
                if bracketed:
                    self.skip_spaces()
                    self.expect("]")
                    steps.append(Index(None))
                steps.append(Filter(test))
            elif self.take("["):
                self.skip_spaces()
                if self.take("*"):
                    steps.append(Index(None))
                elif self.peek("'") or self.peek('"'):
                    steps.append(Member(self.quoted()))
                else:
                    found = _INDEX.match(self.text, self.pos)
                    if not found:
                        raise self.fail("expected an index (0, 1, ...), * or a quoted name")
                    self.pos = found.end()
                    steps.append(Index(int(found.group())))
                self.skip_spaces()
                self.expect("]")
            else:
                return tuple(steps)

    def quoted_in_brackets(self) -> str:
        self.expect("[")
        self.skip_spaces()
        name = self.quoted()
        self.skip_spaces()
        self.expect("]")
        return name

    # FILTER := OR ; OR := AND ('||' AND)* ; AND := UNARY ('&&' UNARY)* ; UNARY := '!' UNARY | ATOM
    def test(self) -> Test:
        tests = [self.conjunction()]
        while self.take_after_spaces("||"):
            tests.append(self.conjunction())
        return tests[0] if len(tests) == 1 else Logic("||", tuple(tests))

    def conjunction(self) -> Test:
        tests = [self.unary()]
        while self.take_after_spaces("&&"):
            tests.append(self.unary())
        return tests[0] if len(tests) == 1 else Logic("&&", tuple(tests))

    def unary(self) -> Test:
        self.skip_spaces()
        if self.take("!"):
            return Not(self.unary())
        if self.take("("):
            inner = self.test()
            self.skip_spaces()
            self.expect(")")
            return inner
        left = self.operand()
        self.skip_spaces()
        op = next((o for o in OPERATORS if self.peek(o)), None)
        if op is None:
            if isinstance(left, Literal):
                raise self.fail("a value alone is not a test; compare it with an @ path")
            return Exists(left)
        self.pos += len(op)
        self.skip_spaces()
        right = self.operand()
        if isinstance(left, Literal) and isinstance(right, Literal):
            raise self.fail("compare an @ path, not two values")
        return Compare(left, op, right)

    def operand(self) -> Relative | Literal:
        self.skip_spaces()
        if self.take("@"):
            steps = self.steps(relative=True)
            return Relative(tuple(s for s in steps if isinstance(s, Member | Index)))
        if self.peek("'") or self.peek('"'):
            return Literal(self.quoted())
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.take(word):
                return Literal(value)
        found = _NUMBER.match(self.text, self.pos)
        if found:
            self.pos = found.end()
            number = json.loads(found.group())
            return Literal(number)
        raise self.fail("expected @, a quoted string, a number, true, false or null")


def parse(text: str) -> JsonPath:
    """Parse `text` as a path of the dialect, or raise PathSyntaxError."""
    if not text.strip():
        raise PathSyntaxError("give a JSON path such as $.spec.replicas")
    if len(text) > MAX_PATH_LENGTH:
        raise PathSyntaxError(f"longer than {MAX_PATH_LENGTH} characters")
    if "\x00" in text:
        raise PathSyntaxError("a path cannot contain NUL")
    return JsonPath(text=text, steps=_Parser(text).path())


# ---- Python evaluation (lax, as PostgreSQL) ---------------------------------------------


def _walk(value: Any) -> Iterator[Any]:
    """The value and everything nested in it, each once, parents first."""
    stack = [value]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, dict):
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def _member(nodes: Iterator[Any] | list[Any], name: str | None) -> Iterator[Any]:
    for node in nodes:
        for item in node if isinstance(node, list) else (node,):
            if not isinstance(item, dict):
                continue
            if name is None:
                yield from item.values()
            elif name in item:
                yield item[name]


def _index(nodes: list[Any], index: int | None) -> Iterator[Any]:
    for node in nodes:
        if not isinstance(node, list):
            if index in (None, 0):
                yield node
        elif index is None:
            yield from node
        elif index < len(node):
            yield node[index]


def _apply(step: Step, nodes: list[Any]) -> Iterator[Any]:
    if isinstance(step, Member):
        yield from _member(nodes, step.name)
    elif isinstance(step, Index):
        yield from _index(nodes, step.index)
    elif isinstance(step, Descend):
        for node in nodes:
            yield from _member(
                (n for n in _walk(node) if isinstance(n, dict)),
                step.name,
            )
    else:
        # A filter in lax mode tests the elements of an array, the value itself otherwise.
        yield from (item for item in _index(nodes, None) if _holds(step.test, item) is True)


def _relative(path: Relative, item: Any) -> list[Any]:
    nodes = [item]
    for step in path.steps:
        nodes = list(_apply(step, nodes))
    return nodes


def _operand(operand: Relative | Literal, item: Any) -> list[Any]:
    if isinstance(operand, Literal):
        return [operand.value]
    unwrapped: list[Any] = []
    for value in _relative(operand, item):
        unwrapped.extend(value if isinstance(value, list) else [value])
    return unwrapped


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "container"


def _compare(left: Any, op: str, right: Any) -> bool | None:
    kinds = (_kind(left), _kind(right))
    if "container" in kinds:
        return None
    if "null" in kinds:
        if op in ("==", "!="):
            return (kinds == ("null", "null")) == (op == "==")
        return kinds == ("null", "null") and op in ("<=", ">=")
    if kinds[0] != kinds[1]:
        return None
    if kinds[0] == "boolean" and op not in ("==", "!="):
        left, right = int(left), int(right)
    return {
        "==": left == right,
        "!=": left != right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]


def _holds(test: Test, item: Any) -> bool | None:
    """Three-valued: True, False, or None (unknown) as SQL/JSON path defines them."""
    if isinstance(test, Exists):
        return bool(_relative(test.path, item))
    if isinstance(test, Compare):
        unknown = False
        for left in _operand(test.left, item):
            for right in _operand(test.right, item):
                outcome = _compare(left, test.op, right)
                if outcome is True:
                    return True
                unknown = unknown or outcome is None
        return None if unknown else False
    if isinstance(test, Not):
        inner = _holds(test.test, item)
        return None if inner is None else not inner
    outcomes = [_holds(t, item) for t in test.tests]
    decisive = test.op == "||"
    if decisive in outcomes:
        return decisive
    return None if None in outcomes else not decisive


# ---- translation to PostgreSQL ----------------------------------------------------------


def _pg_member(name: str) -> str:
    return "." + json.dumps(name)


def _pg_step(step: Member | Index | Filter) -> str:
    if isinstance(step, Member):
        return ".*" if step.name is None else _pg_member(step.name)
    if isinstance(step, Index):
        return "[*]" if step.index is None else f"[{step.index}]"
    return f" ? ({_pg_test(step.test)})"


def _pg_operand(operand: Relative | Literal) -> str:
    if isinstance(operand, Literal):
        return json.dumps(operand.value)
    return "@" + "".join(_pg_step(s) for s in operand.steps)


def _pg_test(test: Test) -> str:
    if isinstance(test, Exists):
        return f"exists({_pg_operand(test.path)})"
    if isinstance(test, Compare):
        return f"{_pg_operand(test.left)} {test.op} {_pg_operand(test.right)}"
    if isinstance(test, Not):
        return f"!({_pg_test(test.test)})"
    return f" {test.op} ".join(f"({_pg_test(t)})" for t in test.tests)
