"""Fixture-per-rule tests: every tests/rules/fixtures/<RULE-ID>/{pass,fail}-*.yaml, one by one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from contracts.advisories import parse_advisories
from rules import Engine, default_rules, load_paths, psa

FIXTURES = Path(__file__).parent / "fixtures"
FILES = sorted(FIXTURES.glob("*/*.yaml")) + sorted(FIXTURES.glob("*/*.json"))
HEADER = re.compile(r"^#\s*expect-(path|count):\s*(.+?)\s*$")
VERSION = re.compile(r"^#\s*kubernetes-version:\s*(\S+)\s*$", re.MULTILINE)
# Fleet rules that need advisories (KM-622) name a file of tests/rules/data.
ADVISORIES = re.compile(r"^#\s*advisories:\s*(\S+)\s*$", re.MULTILINE)
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_config(None)


def _expectations(path: Path) -> tuple[list[str], int | None]:
    paths, count = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = HEADER.match(line)
        if not match:
            if line.strip() and not line.startswith("#"):
                break
            continue
        if match.group(1) == "path":
            paths.append(match.group(2))
        else:
            count = int(match.group(2))
    return paths, count


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_fixture(path: Path, engine: Engine) -> None:
    rule_id = path.parent.name
    assert rule_id in {r.id for r in default_rules()}, f"{rule_id} is not a registered rule"
    loaded = load_paths([path])
    assert not loaded.errors, loaded.errors
    assert loaded.documents, "fixture holds no Kubernetes objects"
    pinned = VERSION.search(path.read_text(encoding="utf-8"))
    version = psa.parse_version(pinned.group(1)) if pinned else None
    named = ADVISORIES.search(path.read_text(encoding="utf-8"))
    advisories = (
        parse_advisories(yaml.safe_load((DATA / named.group(1)).read_text(encoding="utf-8")))
        if named
        else []
    )
    outcome = engine.scan(loaded.documents, kubernetes_version=version, advisories=advisories)
    assert not outcome.errors, outcome.errors
    hits = [r for r in outcome.results if r.rule_id == rule_id]
    if path.name.startswith("fail-"):
        assert hits, f"{rule_id} did not fire on {path.name}"
        expected_paths, expected_count = _expectations(path)
        found_paths = {r.path for r in hits}
        for expected in expected_paths:
            assert expected in found_paths, f"no {rule_id} finding at {expected}: {found_paths}"
        if expected_count is not None:
            assert len(hits) == expected_count, [r.message for r in hits]
        for hit in hits:
            assert hit.message and hit.resource.kind
            assert hit.path, "violations must name the offending field"
    elif path.name.startswith("pass-"):
        assert not hits, [r.message for r in hits]
    else:
        pytest.fail(f"fixture {path.name} must be named pass-*.yaml or fail-*.yaml")


@pytest.mark.parametrize("rule_id", [r.id for r in default_rules()])
def test_every_rule_has_pass_and_fail_fixtures(rule_id: str) -> None:
    folder = FIXTURES / rule_id
    names = [p.name for p in folder.glob("*")] if folder.is_dir() else []
    assert any(n.startswith("pass-") for n in names), f"{rule_id} has no pass-* fixture"
    assert any(n.startswith("fail-") for n in names), f"{rule_id} has no fail-* fixture"
