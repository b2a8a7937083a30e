"""The rule engine's mypyc-compiled modules: which they are, the build's record of the sources it
compiled, and the choice, when `rules` is imported, between those modules and their sources.

Stdlib only: setup.py loads this file by its path (no third-party package is installed there).

Python imports an extension module (`rules/engine.cpython-311-...so`) in preference to the
`.py` beside it, so the build records a hash of every source the compiled code was built from
(`MANIFEST`). At import, the engine runs compiled only if every recorded source is unchanged;
otherwise (or with `K8SMON_INTERPRETED=1`) every compiled module is loaded from its source
instead, all of them together: compiled modules call each other's functions directly, so one
stale module cannot be swapped out alone. A source edited after the build gives one
RuntimeWarning naming it (an error under pytest's `-W error`) and the sources run.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

# Compiled together, as one group (their calls to each other are direct C calls). The rule
# catalogue stays interpreted: its version hashes the rule functions' bytecode. So does
# rules.fleet: `_running_image` builds instances with `object.__new__`, which a native class
# refuses.
COMPILED_MODULES = ("rules.psa", "rules.schema", "rules.view", "rules.cluster", "rules.engine")
GROUP = "k8smon_rules"  # the shared library: k8smon_rules__mypyc.<abi>.so, at the top level
MANIFEST = "_native.json"  # in rules/, beside the extension modules, written by the build
INTERPRETED_ENV = "K8SMON_INTERPRETED"  # "1": run the sources even where compiled modules exist
FIRST_PARTY = ("rules", "contracts")
# The catalogue is reached from compiled code only through calls (rules.registry), never by
# a constant mypyc could have inlined: editing a rule keeps the compiled engine valid.
NOT_TRACKED = ("rules.catalogue",)

ROOT = Path(__file__).resolve().parent.parent  # the directory holding the `rules` package


@dataclass(frozen=True, slots=True)
class Mode:
    """How the compiled modules run in this process, and why."""

    compiled: bool
    reason: str

    def __str__(self) -> str:
        return f"{'compiled' if self.compiled else 'interpreted'} ({self.reason})"


def source_file(module: str, root: Path = ROOT) -> Path:
    """The source of a first-party module (a package's `__init__.py`)."""
    base = root.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def extension_files(module: str, root: Path = ROOT) -> list[Path]:
    """The extension modules built for `module` that exist (any ABI tag of this Python)."""
    base = root.joinpath(*module.split("."))
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return [p for p in (base.with_name(base.name + s) for s in suffixes) if p.is_file()]


def _imports(path: Path) -> set[str]:
    """The first-party modules a source names in any import statement (nested ones too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        found.update(n for n in names if n.split(".")[0] in FIRST_PARTY)
    return found


def tracked_sources(root: Path = ROOT) -> list[str]:
    """Every source the compiled code depends on, relative to `root`: the compiled modules and
    the first-party modules they import, transitively, but for the catalogue (`NOT_TRACKED`)."""
    pending = list(COMPILED_MODULES)
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen or module.startswith(NOT_TRACKED):
            continue
        path = source_file(module, root)
        if not path.is_file():  # `from rules.view import EMPTY`: a name, not a module
            continue
        seen.add(module)
        pending.extend(_imports(path))
    return sorted(source_file(m, root).relative_to(root).as_posix() for m in seen)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_for(root: Path = ROOT) -> dict[str, object]:
    """What the build writes to `rules/_native.json` beside the modules it compiled."""
    return {
        "modules": list(COMPILED_MODULES),
        "sources": {name: digest(root / name) for name in tracked_sources(root)},
    }


def write_manifest(out_dir: Path, root: Path = ROOT) -> Path:
    """Record the sources of a build in `out_dir` (the `rules` package it built into)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / MANIFEST
    target.write_text(json.dumps(manifest_for(root), indent=1, sort_keys=True) + "\n")
    return target


def stale_sources(root: Path = ROOT) -> list[str]:
    """The recorded sources that changed since the build, or the reason there is no usable
    record (no manifest, or one for other modules)."""
    try:
        recorded = json.loads((root / "rules" / MANIFEST).read_text())
        sources: Mapping[str, str] = recorded["sources"]
        if recorded["modules"] != list(COMPILED_MODULES):
            return [f"{MANIFEST} (written for other modules)"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{MANIFEST} (missing or unreadable)"]
    changed = []
    for name, expected in sources.items():
        try:
            if digest(root / name) != expected:
                changed.append(name)
        except OSError:
            changed.append(name)
    return changed


def choose(environ: Mapping[str, str], root: Path = ROOT) -> Mode:
    """Compiled or interpreted: the switch, then whether all the modules were built, then
    whether their sources are still the ones the build compiled."""
    if environ.get(INTERPRETED_ENV, "").strip() not in ("", "0"):
        return Mode(compiled=False, reason=f"{INTERPRETED_ENV}={environ[INTERPRETED_ENV]}")
    built = [m for m in COMPILED_MODULES if extension_files(m, root)]
    if not built:
        return Mode(compiled=False, reason="not compiled: no extension modules were built")
    missing = [m for m in COMPILED_MODULES if m not in built]
    if missing:
        return Mode(compiled=False, reason=f"stale build: no extension module for {missing[0]}")
    stale = stale_sources(root)
    if stale:
        more = f" and {len(stale) - 1} more" if len(stale) > 1 else ""
        return Mode(compiled=False, reason=f"stale build: {stale[0]}{more} changed since")
    return Mode(compiled=True, reason=f"mypyc, {len(COMPILED_MODULES)} modules")


class _Sources:
    """A meta path finder loading the compiled modules from their `.py` files."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED_MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, source_file(fullname, self.root))


def activate(environ: Mapping[str, str] = os.environ, root: Path = ROOT) -> Mode:
    """Decide the mode (called once, by `rules/__init__.py`, before any compiled module is
    imported); where extension modules exist but must not run, load the sources instead."""
    mode = choose(environ, root)
    if not mode.compiled and mode.reason.startswith("stale build"):
        warnings.warn(
            f"rule engine {mode}: running its sources; rebuild with `make venv`",
            RuntimeWarning,
            stacklevel=1,
        )
    shadowed = not mode.compiled and any(extension_files(m, root) for m in COMPILED_MODULES)
    if shadowed and not any(isinstance(f, _Sources) for f in sys.meta_path):
        sys.meta_path.insert(0, _Sources(root))
    return mode


def running_compiled() -> dict[str, bool]:
    """For each compiled module already imported: whether its extension module is running."""
    loaded = {m: sys.modules[m] for m in COMPILED_MODULES if m in sys.modules}
    return {m: not str(getattr(mod, "__file__", "")).endswith(".py") for m, mod in loaded.items()}


# Imported as part of the package (first, by rules/__init__.py), this module makes the choice;
# loaded by its path (setup.py), it does not.
MODE = activate() if __name__ == "rules._native" else Mode(compiled=False, reason="not chosen")
