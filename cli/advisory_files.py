"""Reading an advisories file (YAML or JSON) for `k8smon advisories load` and `k8smon scan
--advisories`: the one place a file becomes `contracts.advisories` records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from contracts.advisories import Advisory, AdvisoryError, parse_advisories


def read_advisories(path: Path, *, param_hint: str) -> tuple[Any, list[Advisory]]:
    """The file's data and its validated records; any problem is a usage error (exit 2)
    naming the file and the offending field. YAML is read safely (JSON is YAML too)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as problem:
        raise click.BadParameter(
            f"{path}: cannot be read: {problem}", param_hint=param_hint
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as problem:
        raise click.BadParameter(
            f"{path}: not valid YAML or JSON: {problem}", param_hint=param_hint
        ) from None
    try:
        return data, parse_advisories(data)
    except AdvisoryError as problem:
        raise click.BadParameter(f"{path}: {problem}", param_hint=param_hint) from None
