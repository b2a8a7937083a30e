"""A small Dockerfile reader for structural checks (no Docker engine here): stages, instructions."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def resolve(self, text: str) -> str:
        """Substitute global ARG defaults (`${NAME}` and `$NAME`)."""
        def sub(match: re.Match[str]) -> str:
            return self.args.get(match.group(1) or match.group(2), match.group(0))
        return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, text)


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def parse(path: Path) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            words = shlex.split(rest)
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages:
            if keyword == "ARG" and "=" in rest:
                key, _, value = rest.partition("=")
                args[key.strip()] = value.strip()
        else:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args=args, stages=stages)


def copy_sources(args: str) -> tuple[str | None, list[str]]:
    """(`--from` stage or None, source paths) of a COPY instruction."""
    words = shlex.split(args)
    source_stage = None
    plain: list[str] = []
    for word in words:
        if word.startswith("--from="):
            source_stage = word.split("=", 1)[1]
        elif not word.startswith("--"):
            plain.append(word)
    return source_stage, plain[:-1]
