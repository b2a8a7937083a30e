"""Conformance suites: the scanner against Pod Security Standards fixtures at every policy
version, and against a pass/fail fixture pair per CIS 5.x control the catalogue maps.

PSA fixtures live in `conformance/psa/<check id>/<case>.yaml`, written from the Pod Security
Standards text and PSA's documented behaviour. Each one's header declares the controls it is
about and its verdict per level from a policy version on:

    # controls: baseline/capabilities, restricted/capabilities
    # since v1.0: baseline=pass restricted=pass
    # since v1.22: baseline=pass restricted=fail

Every fixture is judged at every policy version from v1.0 to the newest, at baseline and at
restricted, twice: by `rules.admission.evaluate` and by a whole `Engine.scan` (findings
whose `pss` tag is a control in force at that level and version deny the pod). Failing
controls must be exactly the declared ones that are in force: a fixture cannot pass for the
wrong reason. A new Kubernetes release means adding its fixtures (and raising
`rules.psa.LATEST`): the failures say exactly what changed.

CIS fixtures live in `conformance/cis/<id>/{pass,fail}-*.yaml`: a fail file must draw a
finding carrying that CIS id, a pass file none.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rules import Engine, default_rules, load_paths, psa
from rules.admission import evaluate
from rules.psa import Level

ROOT = Path(__file__).parent / "conformance"
PSA_FILES = sorted((ROOT / "psa").glob("*/*.yaml"))
CIS_FILES = sorted((ROOT / "cis").glob("*/*.yaml"))
SINCE = re.compile(r"^#\s*since v(\d+\.\d+):\s*baseline=(pass|fail)\s+restricted=(pass|fail)\s*$")
CONTROLS = re.compile(r"^#\s*controls:\s*(.+?)\s*$")
LEVELS = (Level.BASELINE, Level.RESTRICTED)


def _header(path: Path) -> tuple[set[str], dict[psa.Version, dict[Level, bool]]]:
    controls: set[str] = set()
    history: dict[psa.Version, dict[Level, bool]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if match := CONTROLS.match(line):
            controls = {c.strip() for c in match.group(1).split(",")}
        elif match := SINCE.match(line):
            version = psa.parse_version(match.group(1))
            assert version is not None
            history[version] = {
                Level.BASELINE: match.group(2) == "pass",
                Level.RESTRICTED: match.group(3) == "pass",
            }
    return controls, history


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_config(None)


def test_every_psa_check_has_pass_and_fail_fixtures() -> None:
    folders = {p.parent.name for p in PSA_FILES}
    assert folders == {c.id for c in psa.CONTROLS}
    for control in psa.CONTROLS:
        names = [p.name for p in PSA_FILES if p.parent.name == control.id]
        assert any(n.startswith("fail-") for n in names), control.id
        # Baseline/restricted counterparts share fixtures: a pass case may sit with either.
    assert any(p.name.startswith("pass-") for p in PSA_FILES)


@pytest.mark.parametrize("path", PSA_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in PSA_FILES])
def test_psa_conformance_at_every_policy_version(path: Path, engine: Engine) -> None:
    controls, history = _header(path)
    assert controls <= {c.pss for c in psa.CONTROLS}, controls
    assert history and min(history) == psa.OLDEST, "declare the verdict from v1.0 on"
    (document,) = load_paths([path]).documents
    disagreements: list[str] = []
    for version in psa.all_versions():
        outcome = engine.scan([document], kubernetes_version=version)
        assert not outcome.errors, outcome.errors
        tags = {tag for r in outcome.results for tag in r.pss}
        expected_pass = psa.at(history, version)
        for level in LEVELS:
            in_force = {c.pss for c in psa.controls_for(level, version)}
            expected = set() if expected_pass[level] else controls & in_force
            if not expected_pass[level] and not expected:
                disagreements.append(
                    f"{version} {level}: declared fail, no declared control in force"
                )
            admitted = set(evaluate(document.manifest, level, version))
            scanned = tags & in_force
            if admitted != expected:
                disagreements.append(
                    f"v{version[0]}.{version[1]} {level} PSA: {admitted} != {expected}"
                )
            if scanned != expected:
                disagreements.append(
                    f"v{version[0]}.{version[1]} {level} scan: {scanned} != {expected}"
                )
    assert not disagreements, "\n".join(disagreements[:12])


def _cis_ids() -> set[str]:
    return {cis for r in default_rules() for cis in r.meta.cis}


def test_every_mapped_cis_control_has_pass_and_fail_fixtures() -> None:
    for cis in sorted(_cis_ids()):
        names = [p.name for p in CIS_FILES if p.parent.name == cis]
        assert any(n.startswith("fail-") for n in names), f"CIS {cis} has no fail fixture"
        assert any(n.startswith("pass-") for n in names), f"CIS {cis} has no pass fixture"


@pytest.mark.parametrize("path", CIS_FILES, ids=[f"{p.parent.name}/{p.stem}" for p in CIS_FILES])
def test_cis_conformance(path: Path, engine: Engine) -> None:
    cis = path.parent.name
    assert cis in _cis_ids(), f"no rule maps CIS {cis}"
    loaded = load_paths([path])
    assert loaded.documents and not loaded.errors
    outcome = engine.scan(loaded.documents)
    assert not outcome.errors, outcome.errors
    hits = [r for r in outcome.results if cis in r.cis]
    if path.name.startswith("fail-"):
        assert hits, f"CIS {cis}: nothing reported on {path.name}"
    else:
        assert not hits, [f"{r.rule_id}: {r.message}" for r in hits]
