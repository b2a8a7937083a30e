"""`make venv`'s install step builds without warnings from our own files, and what it
installs (the `k8smon` console script, every package) works from any folder."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_layout import PACKAGES

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _install_command(bin_dir: Path) -> list[str]:
    """The editable install line of the Makefile's venv recipe, as argv for `bin_dir`'s pip."""
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    line = next(ln.strip() for ln in makefile.splitlines() if "install" in ln and " -e ." in ln)
    argv = line.replace("$(BIN)/", "").split()
    assert argv[0] == "pip", line
    return [str(bin_dir / "pip"), *argv[1:]]


@pytest.mark.slow
def test_editable_install_prints_no_warnings(tmp_path: Path) -> None:
    # A throwaway venv, so the test never touches the one it runs in.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    argv = _install_command(venv / "bin")
    assert "editable_mode=compat" not in argv
    done = subprocess.run(
        argv,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    # pip's own notices about the machine's index configuration are not ours.
    ours = [ln for ln in output.splitlines() if re.search(r"warning|deprecat", ln, re.I)]
    ours = [ln for ln in ours if "Location 'file:" not in ln]
    assert not ours, output


def test_console_script_and_packages_work_from_another_folder(tmp_path: Path) -> None:
    k8smon = BIN / "k8smon"
    assert k8smon.exists(), "make venv installs the k8smon console script"
    shown = subprocess.run(
        [str(k8smon), "--help"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert "serve" in shown.stdout
    code = "; ".join(f"import {name}" for name in PACKAGES) + "; print(cli.__file__)"
    imported = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert imported.returncode == 0, imported.stderr
    assert Path(imported.stdout.strip()).resolve().is_relative_to(REPO_ROOT)
