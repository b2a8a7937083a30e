"""The top-level packages are this repository's, never an installed distribution's."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    "agent",
    "beat_schedule",
    "cli",
    "contracts",
    "ingest",
    "reports",
    "rules",
    "settings",
    "store",
    "workers",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_package_resolves_inside_the_repository(name: str) -> None:
    module = importlib.import_module(name)
    location = Path(module.__file__).resolve()
    assert location.is_relative_to(REPO_ROOT), f"{name} resolves to {location}"
    assert (module.__doc__ or "").strip(), f"{name} has no docstring saying what it is for"


def test_required_top_level_files_exist() -> None:
    for path in ["requirements.txt", "Procfile", "README.md", "Makefile", ".ci/run", "helm"]:
        assert (REPO_ROOT / path).exists(), path
