"""The mypyc-compiled engine modules: compiled in the installed project, the switch to the
sources, and the guard that never lets compiled code outlive an edit of its sources."""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import rules
from cli.main import main
from rules import _native

ROOT = _native.ROOT
FORCED = os.environ.get(_native.INTERPRETED_ENV, "").strip() not in ("", "0")


def _installed_here() -> bool:
    """Whether this checkout is the installed project (`make venv`'s editable install, or a
    `pip install .`), not another tree put first on PYTHONPATH."""
    try:
        dist = importlib.metadata.distribution("k8s-monitor")
    except importlib.metadata.PackageNotFoundError:
        return False
    located = Path(str(dist.locate_file("rules/__init__.py")))
    if located.is_file() and located.resolve() == Path(rules.__file__).resolve():
        return True
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    editable = direct.get("dir_info", {}).get("editable", False)
    return bool(editable) and direct.get("url") == ROOT.as_uri()


def _compiler() -> str | None:
    """The C compiler setuptools would call, if it is installed."""
    command = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(shlex.split(command)[0])


def _loaded_from_extensions() -> dict[str, bool]:
    for module in _native.COMPILED_MODULES:
        __import__(module)
    return _native.running_compiled()


def test_the_mode_says_what_runs() -> None:
    """`rules.ENGINE_MODE` matches the files the engine's modules were loaded from, and the
    switch (K8SMON_INTERPRETED=1, the interpreted test run) loads the sources."""
    loaded = _loaded_from_extensions()
    assert set(loaded.values()) == {rules.ENGINE_MODE.compiled}, (rules.ENGINE_MODE, loaded)
    if FORCED:
        assert not rules.ENGINE_MODE.compiled
        assert rules.ENGINE_MODE.reason.startswith(_native.INTERPRETED_ENV)


def test_the_installed_project_runs_compiled() -> None:
    """`make venv` (and `pip install .`) compile the engine's hot modules: the default install
    runs them compiled."""
    if FORCED:
        pytest.skip(f"{_native.INTERPRETED_ENV} is set: this run checks the sources")
    if not _installed_here():
        pytest.skip(f"{ROOT} is not the installed project (another tree on PYTHONPATH)")
    if _compiler() is None:
        pytest.skip("no C compiler: the install runs the engine interpreted")
    assert rules.ENGINE_MODE.compiled, rules.ENGINE_MODE
    assert all(_loaded_from_extensions().values())
    for module in _native.COMPILED_MODULES:
        assert _native.extension_files(module)


def test_version_names_the_mode() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"rule engine: {rules.ENGINE_MODE}"


def _tree(tmp_path: Path) -> Path:
    """A copy of the tracked sources and a catalogue file, with a manifest and stand-in
    extension modules (empty files: `choose` only looks at their names)."""
    for name in [*_native.tracked_sources(), "rules/catalogue/general.py"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    _native.write_manifest(tmp_path / "rules", root=tmp_path)
    for module in _native.COMPILED_MODULES:
        _stand_in(tmp_path, module).touch()
    return tmp_path


def _stand_in(root: Path, module: str) -> Path:
    base = root.joinpath(*module.split("."))
    return base.with_name(base.name + importlib.machinery.EXTENSION_SUFFIXES[0])


def _edit(path: Path) -> None:
    path.write_text(path.read_text() + "\nSTALE_EDIT = True\n")


def test_a_complete_unchanged_build_runs_compiled(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    assert _native.choose({}, root) == _native.Mode(compiled=True, reason="mypyc, 5 modules")
    assert not _native.choose({_native.INTERPRETED_ENV: "1"}, root).compiled
    assert _native.choose({_native.INTERPRETED_ENV: "0"}, root).compiled


@pytest.mark.parametrize(
    "edited", ["rules/schema.py", "rules/engine.py", "rules/model.py", "contracts/resources.py"]
)
def test_an_edited_source_runs_interpreted(tmp_path: Path, edited: str) -> None:
    """A compiled module's source, or one of the first-party modules it imports (whose
    constants mypyc may have compiled in), changed after the build."""
    root = _tree(tmp_path)
    _edit(root / edited)
    mode = _native.choose({}, root)
    assert mode == _native.Mode(compiled=False, reason=f"stale build: {edited} changed since")


def test_an_edited_rule_keeps_the_build(tmp_path: Path) -> None:
    """The catalogue is not compiled, and compiled code only calls it: editing a rule does not
    make the build stale."""
    root = _tree(tmp_path)
    _edit(root / "rules/catalogue/general.py")
    assert _native.choose({}, root).compiled


def test_an_incomplete_or_unrecorded_build_runs_interpreted(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    _stand_in(root, "rules.view").unlink()
    assert _native.choose({}, root).reason == "stale build: no extension module for rules.view"
    _stand_in(root, "rules.view").touch()
    (root / "rules" / _native.MANIFEST).unlink()
    assert not _native.choose({}, root).compiled
    for module in _native.COMPILED_MODULES:
        _stand_in(root, module).unlink()
    assert _native.choose({}, root) == _native.Mode(
        compiled=False, reason="not compiled: no extension modules were built"
    )


def _package_copy(tmp_path: Path, *, extensions: bool) -> Path:
    """The `rules` and `contracts` packages copied, with this build's extension modules and
    manifest (`extensions`) or empty stand-ins that would fail to load."""
    ignore = shutil.ignore_patterns("__pycache__", "*.so", _native.MANIFEST)
    for package in ("rules", "contracts"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    if extensions:
        for built in [*ROOT.glob("rules/*.so"), *ROOT.glob(f"{_native.GROUP}__mypyc.*")]:
            shutil.copyfile(built, tmp_path / built.relative_to(ROOT))
        shutil.copyfile(ROOT / "rules" / _native.MANIFEST, tmp_path / "rules" / _native.MANIFEST)
    else:
        _native.write_manifest(tmp_path / "rules", root=tmp_path)
        for module in _native.COMPILED_MODULES:
            _stand_in(tmp_path, module).write_bytes(b"not an extension module")
    return tmp_path


_PROBE = (
    "import rules, rules.engine, rules.schema as s; "
    "print(rules.ENGINE_MODE.compiled, s.__file__.endswith('.py'), hasattr(s, 'STALE_EDIT'))"
)


def _probe(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != _native.INTERPRETED_ENV}
    return subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**environ, **env, "PYTHONPATH": str(root)},
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("extensions", [False, True], ids=["stand-ins", "this-build"])
def test_an_edit_after_the_build_is_never_run_compiled(tmp_path: Path, extensions: bool) -> None:
    """The real import: extension modules beside the sources, then `rules/schema.py` edited.
    The sources run (the edit is there), with one warning naming the file; with the stand-ins
    (which cannot load), anything but the sources would fail to import."""
    if extensions and not (ROOT / "rules" / _native.MANIFEST).is_file():
        pytest.skip("no compiled build in this checkout (`make venv` builds one)")
    root = _package_copy(tmp_path, extensions=extensions)
    if extensions:
        fresh = _probe(root)
        assert (fresh.returncode, fresh.stdout, fresh.stderr) == (0, "True False False\n", "")
    forced = _probe(root, **{_native.INTERPRETED_ENV: "1"})
    assert (forced.returncode, forced.stdout, forced.stderr) == (0, "False True False\n", "")
    _edit(root / "rules" / "schema.py")
    stale = _probe(root)
    assert (stale.returncode, stale.stdout) == (0, "False True True\n"), stale.stderr
    warning = [line for line in stale.stderr.splitlines() if "RuntimeWarning" in line]
    assert warning == [
        f"{root / 'rules' / '_native.py'}:{_warning_line()}: RuntimeWarning: rule engine "
        "interpreted (stale build: rules/schema.py changed since): running its sources; "
        "rebuild with `make venv`"
    ]


def _warning_line() -> int:
    source = (ROOT / "rules" / "_native.py").read_text().splitlines()
    return next(i for i, line in enumerate(source, 1) if "warnings.warn(" in line)


def test_the_build_compiles_with_the_mypy_the_type_check_uses() -> None:
    """pyproject.toml's build requirement pins the mypy (mypyc) that compiles the engine;
    requirements-dev.txt pins the mypy `make lint` checks it with: the two must stay one."""
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    pinned = [line.strip() for line in dev if line.strip().startswith("mypy==")]
    assert [r for r in build if r.startswith("mypy")] == pinned
    assert len(pinned) == 1
