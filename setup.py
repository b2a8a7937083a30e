"""Build hook: compile the rule engine's hot modules with mypyc (rules/_native.py lists them).

Everything else about the project is in pyproject.toml. mypyc runs in build_ext only (not for
the metadata steps). Without mypyc, with K8SMON_INTERPRETED=1, or when mypyc or the C compiler
fails, the install goes on without extension modules and the engine runs its sources.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:  # the build requirements (pyproject.toml) bring mypy, which ships mypyc
    from mypyc.build import mypycify
except ImportError as missing:
    mypycify = None
    MYPYC_MISSING = str(missing)

HERE = Path(__file__).resolve().parent


def _load_native() -> ModuleType:
    """rules/_native.py by its path: importing `rules` would need the runtime dependencies."""
    spec = importlib.util.spec_from_file_location("k8smon_native", HERE / "rules" / "_native.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks the module up
    spec.loader.exec_module(module)
    return module


NATIVE = _load_native()


def _say(message: str) -> None:
    print(f"k8s-monitor: {message}", file=sys.stderr, flush=True)


def _built_files(root: Path) -> list[Path]:
    """The extension modules and the manifest a build leaves under `root`."""
    found = [p for m in NATIVE.COMPILED_MODULES for p in NATIVE.extension_files(m, root)]
    found += sorted(root.glob(f"{NATIVE.GROUP}__mypyc.*"))
    found += [p for p in [root / "rules" / NATIVE.MANIFEST] if p.is_file()]
    return found


class BuildNative(build_ext):
    """build_ext with mypyc's extensions (computed when it is finalized, so not for the metadata
    steps), falling back to none when mypyc or the C compiler fails."""

    def finalize_options(self) -> None:
        self.extensions = self.distribution.ext_modules = _mypycify()
        super().finalize_options()

    def run(self) -> None:
        targets = [Path(self.build_lib)] + ([HERE] if self.inplace else [])
        for root in targets:  # a failed build must not leave an older one in place
            for path in _built_files(root):
                path.unlink()
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as exc:
            for root in targets:
                for path in _built_files(root):
                    path.unlink()
            self.extensions = []
            reason = " ".join(str(exc).split())
            reason = reason if len(reason) <= 120 else f"{reason[:117]}..."
            _say(f"compiling failed ({reason}); the rule engine runs interpreted")
            return
        for root in targets:
            NATIVE.write_manifest(root / "rules", root=HERE)
        _say(f"compiled with mypyc: {', '.join(NATIVE.COMPILED_MODULES)}")


def _mypycify() -> list[Extension]:
    if os.environ.get(NATIVE.INTERPRETED_ENV, "").strip() not in ("", "0"):
        _say(f"{NATIVE.INTERPRETED_ENV} is set: not compiling; the rule engine runs interpreted")
        return []
    if mypycify is None:
        _say(f"mypyc is not installed ({MYPYC_MISSING}); the rule engine runs interpreted")
        return []
    paths = [
        NATIVE.source_file(m, HERE).relative_to(HERE).as_posix() for m in NATIVE.COMPILED_MODULES
    ]
    try:
        extensions: list[Extension] = mypycify(paths, group_name=NATIVE.GROUP)
    except (Exception, SystemExit) as exc:  # mypy reports its errors by SystemExit
        _say(f"mypyc failed ({exc!r}); the rule engine runs interpreted")
        return []
    return extensions


setup(
    # A placeholder: it makes setuptools run build_ext and tag the wheel for this platform;
    # BuildNative replaces it with mypyc's extensions.
    ext_modules=[Extension("rules.engine", sources=["rules/engine.py"])],
    cmdclass={"build_ext": BuildNative},
)
