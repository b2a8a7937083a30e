"""Kubernetes label selectors, for the rules and for stored exemptions alike.

matchLabels/matchExpressions and the `a=b,c in (d)` text form; stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_SET_EXPR = re.compile(r"^\s*(!?)\s*([^\s!=()]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_EXPR = re.compile(r"^\s*([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")


class SelectorError(ValueError):
    """A selector that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, Any]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and str(labels[self.key]) in self.values
        # NotIn: true when the label is absent too (Kubernetes semantics).
        return self.key not in labels or str(labels[self.key]) not in self.values


@dataclass(frozen=True, slots=True)
class Selector:
    """A conjunction of requirements. An empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, Any] | None) -> bool:
        labels = labels or {}
        return all(req.matches(labels) for req in self.requirements)

    @property
    def equalities(self) -> dict[str, str]:
        """The `key=value` requirements, usable for index look-ups."""
        return {
            req.key: next(iter(req.values))
            for req in self.requirements
            if req.operator == "In" and len(req.values) == 1
        }

    @property
    def is_empty(self) -> bool:
        return not self.requirements


def parse_selector(value: Any) -> Selector:
    """A Selector from a LabelSelector dict, a plain `{key: value}` map, or selector text."""
    if value is None:
        return Selector()
    if isinstance(value, str):
        return _parse_text(value)
    if not isinstance(value, Mapping):
        raise SelectorError(f"a label selector must be a mapping or text, not {value!r}")
    if "matchLabels" in value or "matchExpressions" in value:
        return _parse_label_selector(value)
    return Selector(
        tuple(Requirement(str(k), "In", frozenset({str(v)})) for k, v in sorted(value.items()))
    )


def _parse_label_selector(value: Mapping[str, Any]) -> Selector:
    reqs: list[Requirement] = []
    match_labels = value.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise SelectorError("matchLabels must be a mapping")
    for key, val in sorted(match_labels.items()):
        reqs.append(Requirement(str(key), "In", frozenset({str(val)})))
    expressions = value.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise SelectorError("matchExpressions must be a list")
    for expr in expressions:
        if not isinstance(expr, Mapping):
            raise SelectorError("each matchExpressions item must be a mapping")
        operator = expr.get("operator")
        if not isinstance(operator, str) or operator not in OPERATORS:
            raise SelectorError(f"unknown selector operator {operator!r}")
        raw_values = expr.get("values") or []
        if not isinstance(raw_values, list):
            raise SelectorError("matchExpressions values must be a list")
        values = frozenset(str(v) for v in raw_values)
        reqs.append(Requirement(str(expr.get("key", "")), operator, values))
    return Selector(tuple(reqs))


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts


def _parse_text(text: str) -> Selector:
    reqs: list[Requirement] = []
    for part in _split_top_level(text):
        if not part.strip():
            continue
        eq = _EQ_EXPR.match(part)
        if eq:
            key, op, val = eq.groups()
            reqs.append(Requirement(key, "NotIn" if op == "!=" else "In", frozenset({val})))
            continue
        st = _SET_EXPR.match(part)
        if not st:
            raise SelectorError(f"cannot parse label selector term {part.strip()!r}")
        negate, key, set_op, values = st.groups()
        if set_op:
            if negate:
                raise SelectorError(f"cannot negate a set expression: {part.strip()!r}")
            vals = frozenset(v.strip() for v in values.split(",") if v.strip())
            reqs.append(Requirement(key, "In" if set_op == "in" else "NotIn", vals))
        else:
            reqs.append(Requirement(key, "DoesNotExist" if negate else "Exists"))
    return Selector(tuple(reqs))


# -- Calico selector expressions (GlobalNetworkPolicy `selector` / `namespaceSelector`) ------
_CALICO_TOKEN = re.compile(
    r"\s*(?:(?P<op>&&|\|\||==|!=|!|\(|\)|\{|\}|,)|(?P<str>'[^']*'|\"[^\"]*\")"
    r"|(?P<word>[A-Za-z0-9_./\-]+))"
)


def _calico_tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        match = _CALICO_TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise SelectorError(f"cannot parse Calico selector {text!r}")
        tokens.append(match.group(match.lastgroup or "word"))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class _CalicoParser:
    """Recursive descent over Calico's selector grammar: `all()`, `has(k)`, `k == 'v'`,
    `k != 'v'`, `k in {'a', 'b'}`, `k not in {...}`, `!`, `&&`, `||`, parentheses."""

    def __init__(self, tokens: list[str], labels: Mapping[str, Any]) -> None:
        self.tokens, self.pos, self.labels = tokens, 0, labels

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise SelectorError(f"expected {expected or 'a token'}, found {token!r}")
        self.pos += 1
        return token

    def parse(self) -> bool:
        value = self.disjunction()
        if self.peek() is not None:
            raise SelectorError(f"unexpected {self.peek()!r}")
        return value

    def disjunction(self) -> bool:
        value = self.conjunction()
        while self.peek() == "||":
            self.take()
            value = self.conjunction() or value
        return value

    def conjunction(self) -> bool:
        value = self.unary()
        while self.peek() == "&&":
            self.take()
            value = self.unary() and value
        return value

    def unary(self) -> bool:
        word = self.take()
        if word == "!":
            return not self.unary()
        if word == "(":
            value = self.disjunction()
            self.take(")")
            return value
        if word in ("all", "has") and self.peek() == "(":
            self.take("(")
            key = self.take() if word == "has" else None
            self.take(")")
            return True if key is None else key in self.labels
        return self.comparison(_unquote(word))

    def comparison(self, key: str) -> bool:
        op = self.take()
        actual = self.labels.get(key)
        if op in ("==", "!="):
            value = _unquote(self.take())
            equal = actual is not None and str(actual) == value
            return equal if op == "==" else not equal
        negate = op == "not"
        if negate:
            op = self.take()
        if op != "in":
            raise SelectorError(f"unknown Calico operator {op!r}")
        self.take("{")
        values = set()
        while self.peek() != "}":
            values.add(_unquote(self.take()))
            if self.peek() == ",":
                self.take()
        self.take("}")
        inside = actual is not None and str(actual) in values
        return not inside if negate else inside


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1]
    return token


def calico_selector_matches(expression: Any, labels: Mapping[str, Any]) -> bool:
    """Whether a Calico selector expression selects `labels` (empty or missing: `all()`).

    Raises SelectorError on anything it cannot parse.
    """
    if expression is None:
        return True
    if not isinstance(expression, str):
        raise SelectorError(f"a Calico selector is a string, not {type(expression).__name__}")
    if not expression.strip():
        return True
    return _CalicoParser(_calico_tokens(expression), labels).parse()
