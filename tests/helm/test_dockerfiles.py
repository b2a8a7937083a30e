"""Structural checks of the images (no Docker engine here): multi-stage builds whose final stage
runs as a non-root user, pinned bases and requirements, sources that exist."""

from __future__ import annotations

import ast
import fnmatch
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from tests.helm.charts import REPO_ROOT
from tests.helm.dockerfile import Dockerfile, copy_sources, parse

SERVER = REPO_ROOT / "docker" / "server.Dockerfile"
AGENT = REPO_ROOT / "docker" / "agent.Dockerfile"
IMAGES = [SERVER, AGENT]
NON_ROOT_UID = 10001  # the charts' runAsUser


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{path.name}: {line!r} is not pinned"
        pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


@pytest.fixture(params=IMAGES, ids=lambda p: p.name)
def dockerfile(request: pytest.FixtureRequest) -> Dockerfile:
    return parse(request.param)


def test_multi_stage_with_named_stages(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2
    names = [stage.name for stage in dockerfile.stages]
    assert all(names) and len(set(names)) == len(names)
    # The final stage takes built artefacts from an earlier stage, not a compiler toolchain.
    sources = {copy_sources(a)[0] for a in dockerfile.final.all("COPY")}
    assert sources & set(names[:-1])
    for source in sources - {None}:
        assert source in names[:-1], f"COPY --from={source} names no earlier stage"


def test_final_stage_runs_as_non_root(dockerfile: Dockerfile) -> None:
    users = dockerfile.final.all("USER")
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user.isdigit(), "numeric, so runAsNonRoot can verify it"
    assert int(user) == NON_ROOT_UID
    created = " ".join(dockerfile.final.all("RUN"))
    assert f"--uid {NON_ROOT_UID}" in created
    # Nothing after USER switches back.
    keywords = [kw for kw, _ in dockerfile.final.instructions]
    assert keywords.index("USER") > max(i for i, kw in enumerate(keywords) if kw == "RUN")


def test_base_images_are_pinned(dockerfile: Dockerfile) -> None:
    for stage in dockerfile.stages:
        base = dockerfile.resolve(stage.base)
        assert "$" not in base, f"unresolved base {stage.base}"
        assert re.fullmatch(r"[\w./-]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?", base), base
        assert ":" in base or "@" in base, f"{base} has no tag or digest"
        assert not base.endswith(":latest"), base


def test_copied_sources_exist(dockerfile: Dockerfile) -> None:
    for stage in dockerfile.stages:
        for args in stage.all("COPY") + stage.all("ADD"):
            source_stage, sources = copy_sources(args)
            if source_stage is not None:
                continue
            for source in sources:
                assert (REPO_ROOT / source).exists(), f"COPY {source}: not in the repository"
        for args in stage.all("ADD"):
            assert "://" not in args, "no remote ADD: fetch in a RUN step with a checksum"


def test_no_credentials_baked_in(dockerfile: Dockerfile) -> None:
    for stage in dockerfile.stages:
        for args in stage.all("ENV") + stage.all("ARG"):
            for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "TOKEN", "PASSWORD"):
                assert name not in args.upper(), f"{name} in {args}"


def test_server_image_installs_every_project_package() -> None:
    server = parse(SERVER)
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {
        source.rstrip("/")
        for args in server.stages[0].all("COPY")
        for source in copy_sources(args)[1]
    }
    assert packages <= copied, f"missing from the image: {packages - copied}"
    assert "requirements.txt" in copied
    cmd = server.final.all("CMD")[-1]
    assert "gunicorn" in cmd and "cli.wsgi:app" in cmd
    assert "EXPOSE" in [kw for kw, _ in server.final.instructions]


def test_server_image_compiles_the_engine_in_its_build_stage_only() -> None:
    """The install compiles the rule engine with mypyc (setup.py): the build stage has a C
    compiler and setup.py; the runtime stage takes the virtualenv, not the toolchain."""
    server = parse(SERVER)
    build, final = server.stages[0], server.final
    copied = {source for args in build.all("COPY") for source in copy_sources(args)[1]}
    assert "setup.py" in copied
    assert any("gcc" in run for run in build.all("RUN"))
    assert not any("gcc" in run or "mypy" in run for run in final.all("RUN"))
    assert any("k8smon --version" in run for run in build.all("RUN"))  # says compiled or not


def test_agent_image_is_small() -> None:
    """Only the agent, the stdlib-only contracts package and the agent's own requirements."""
    agent = parse(AGENT)
    copied = {
        source.rstrip("/")
        for stage in agent.stages
        for args in stage.all("COPY")
        if copy_sources(args)[0] is None
        for source in copy_sources(args)[1]
    }
    assert copied == {"agent", "contracts", "agent/requirements.txt"}
    assert agent.final.all("CMD")[-1] == '["python", "-m", "agent"]'


def test_agent_requirements_use_the_project_pins() -> None:
    project = _pins(REPO_ROOT / "requirements.txt")
    for name, version in _pins(REPO_ROOT / "agent" / "requirements.txt").items():
        assert project.get(name) == version, f"{name}=={version} differs from requirements.txt"


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".git", ".venv", "instance", "tests"):
        assert entry in ignored
    for needed in ("requirements.txt", "README.md", "pyproject.toml", "agent", "contracts"):
        assert needed not in ignored


def _requirement_closure(names: set[str]) -> set[str]:
    """The distributions `pip install` brings for `names` (installed metadata, transitively)."""
    seen: set[str] = set()
    todo = [_normalise(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            if "extra ==" in requirement:
                continue
            todo.append(_normalise(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0]))
    return seen


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_level(package: Path) -> set[str]:
    modules: set[str] = set()
    for source in package.rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules


def test_agent_image_provides_every_module_the_agent_imports() -> None:
    """The agent image installs only agent/requirements.txt: every third-party import of
    `agent` and `contracts` must come from those distributions (or their dependencies)."""
    provided = _requirement_closure(set(_pins(REPO_ROOT / "agent" / "requirements.txt")))
    by_module = metadata.packages_distributions()
    ours = {"agent", "contracts"}
    imported = (_imported_top_level(REPO_ROOT / "agent")
                | _imported_top_level(REPO_ROOT / "contracts"))
    third_party = imported - ours - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party, "the agent uses the Kubernetes client at least"
    for module in sorted(third_party):
        dists = {_normalise(d) for d in by_module.get(module, [])}
        assert dists, f"agent imports {module}, which no installed distribution provides"
        assert dists & provided, f"agent imports {module} ({dists}) missing from the agent image"


def test_server_image_carries_every_data_file() -> None:
    """The image installs the project non-editable: templates, migrations' ini/mako files and
    other data files are in it only if pyproject's package-data patterns match them."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["*"]
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    missing = [
        str(path.relative_to(REPO_ROOT))
        for package in packages
        for path in (REPO_ROOT / package).rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc", ".md"}  # docs stay out
        and path.suffix != ".so"  # mypyc's extension modules: the image's install builds its own
        and "__pycache__" not in path.parts
        and not any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns)
    ]
    assert missing == [], f"not packaged into the server image: {missing}"
