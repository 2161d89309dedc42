"""deploy/Dockerfile and .dockerignore agree with the code: user, health check, command, files."""

from __future__ import annotations

import json
import shlex
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tria_service.api.health as health_api
from fastapi.routing import APIRoute

from tests.deploy.manifests import (
    REPO,
    Instruction,
    copy_sources,
    dockerfile,
    dockerignored,
    service_variables,
)


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return dockerfile()


def _runtime(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def _exec_form(args: str) -> list[str]:
    words: list[str] = json.loads(args)
    return words


def test_it_is_multi_stage_and_the_runtime_copies_the_built_venv(
    instructions: list[Instruction],
) -> None:
    froms = [i.args for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2
    assert froms[0].endswith(" AS build")
    copies = [i.args for i in _runtime(instructions) if i.keyword == "COPY"]
    assert "--from=build /opt/venv /opt/venv" in copies
    assert not any(i.keyword == "RUN" and "pip install" in i.args for i in _runtime(instructions))


def test_the_runtime_runs_as_a_non_root_user(instructions: list[Instruction]) -> None:
    runtime = _runtime(instructions)
    users = [i.args for i in runtime if i.keyword == "USER"]
    assert users, "the runtime stage sets no USER: it would run as root"
    assert users[-1] not in ("root", "0", "0:0")
    created = " ".join(i.args for i in runtime if i.keyword == "RUN")
    assert f"useradd --system --uid 10001 --gid {users[-1]}" in created
    last_user = max(n for n, i in enumerate(runtime) if i.keyword == "USER")
    cmd = max(n for n, i in enumerate(runtime) if i.keyword == "CMD")
    assert last_user < cmd


def test_the_healthcheck_asks_liveness_on_the_service_port(instructions: list[Instruction]) -> None:
    (check,) = [i.args for i in _runtime(instructions) if i.keyword == "HEALTHCHECK"]
    options, _, command = check.partition(" CMD ")
    assert "--interval=" in options
    assert "--timeout=" in options
    argv = _exec_form(command)
    assert argv[:2] == ["python", "-c"]
    assert "/health'" in argv[2]
    assert "TRIA_PORT" in argv[2]
    paths = [r.path for r in health_api.router.routes if isinstance(r, APIRoute)]
    assert "/health" in paths


def test_cmd_and_env_name_what_the_service_reads(instructions: list[Instruction]) -> None:
    runtime = _runtime(instructions)
    (cmd,) = [i.args for i in runtime if i.keyword == "CMD"]
    assert _exec_form(cmd) == ["python", "-m", "tria_service"]
    assert (REPO / "service" / "tria_service" / "__main__.py").is_file()
    env = " ".join(i.args for i in runtime if i.keyword == "ENV").split()
    settings = dict(item.split("=", 1) for item in env)
    assert settings["TRIA_HOST"] == "0.0.0.0"
    tria_names = {name for name in settings if name.startswith("TRIA_")}
    assert tria_names == {"TRIA_HOST", "TRIA_PORT", "TRIA_KNOWLEDGE_DIR"}
    assert tria_names <= service_variables()
    # a non-editable install cannot find the articles beside the package: the image names them
    (copied,) = _knowledge_copies(runtime)
    assert settings["TRIA_KNOWLEDGE_DIR"] == f"/app/{copied[-1].removeprefix('./')}"
    (expose,) = [i.args for i in runtime if i.keyword == "EXPOSE"]
    assert expose == settings["TRIA_PORT"]


def _knowledge_copies(instructions: list[Instruction]) -> list[list[str]]:
    """The words of each COPY of the help-centre articles."""
    return [
        shlex.split(i.args) for i in instructions if i.keyword == "COPY" and "knowledge" in i.args
    ]


def test_the_articles_are_root_s_and_readable_by_the_service_s_group_only(
    instructions: list[Instruction], tmp_path: Path
) -> None:
    """The runtime takes the articles from the build stage, owned by root:<the service's group>;
    the build stage's chmod (run here on a copy) leaves no permission for others."""
    runtime = _runtime(instructions)
    (user,) = [i.args for i in runtime if i.keyword == "USER"]
    copied_at = next(
        n for n, i in enumerate(runtime) if i.keyword == "COPY" and "knowledge" in i.args
    )
    runtime_copy = shlex.split(runtime[copied_at].args)
    assert runtime_copy[:2] == ["--from=build", f"--chown=root:{user}"]
    # --chown names the group: it must exist in the image by then
    grouped_at = next(
        n for n, i in enumerate(runtime) if f"groupadd --system --gid 10001 {user}" in i.args
    )
    assert grouped_at < copied_at

    build_stage = [i for i in instructions if i.stage == 0]
    (build_copy,) = _knowledge_copies(build_stage)
    source, destination = build_copy
    assert (REPO / source).is_dir()
    workdir = next(i.args for i in reversed(build_stage) if i.keyword == "WORKDIR")
    assert runtime_copy[2] == f"{workdir}/{destination.removeprefix('./')}"
    (chmod,) = [i.args for i in build_stage if i.keyword == "RUN" and "knowledge" in i.args]
    assert chmod.split()[-1] == destination.removeprefix("./")
    shutil.copytree(REPO / source, tmp_path / destination)
    subprocess.run(["sh", "-c", chmod], cwd=tmp_path, check=True)
    tree = [tmp_path / destination, *(tmp_path / destination).rglob("*")]
    assert any(path.is_file() for path in tree)
    for path in tree:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o007 == 0, f"{path.name} is open to others: {oct(mode)}"
        assert mode & 0o070 == (0o050 if path.is_dir() else 0o040), f"{path.name}: {oct(mode)}"


def test_the_gate_s_suites_and_targets_are_in_app_readable_and_unchangeable_by_the_service(
    instructions: list[Instruction], tmp_path: Path
) -> None:
    """The k8s gate Job runs `tria-deploy verify` from the runtime's WORKDIR: suites/ and
    tria.toml are there, copied from the build stage, whose chmod (run here on a copy whose
    modes are as closed as a strict umask leaves them) opens them to reading and nothing else."""
    runtime = _runtime(instructions)
    workdir = [i.args for i in runtime if i.keyword == "WORKDIR"][-1]
    build_stage = [i for i in instructions if i.stage == 0]
    build_dir = next(i.args for i in reversed(build_stage) if i.keyword == "WORKDIR")
    copies = [shlex.split(i.args) for i in runtime if i.keyword == "COPY"]
    for name in ("suites", "tria.toml"):
        (copy,) = [words for words in copies if words[-1] == f"./{name}"]
        assert copy[:-1] == ["--from=build", f"{build_dir}/{name}"]  # root-owned, no --chown
        assert f"{workdir}/{name}" == f"/app/{name}"
    (chmod,) = [i.args for i in build_stage if i.keyword == "RUN" and "suites" in i.args]
    shutil.copytree(REPO / "suites", tmp_path / "suites", ignore=shutil.ignore_patterns("__py*"))
    shutil.copy2(REPO / "tria.toml", tmp_path / "tria.toml")
    tree = [tmp_path / "tria.toml", tmp_path / "suites", *(tmp_path / "suites").rglob("*")]
    for path in tree:
        path.chmod(0o700 if path.is_dir() else 0o600)
    subprocess.run(["sh", "-c", chmod], cwd=tmp_path, check=True)
    assert any(path.name == "conftest.py" for path in tree)
    for path in tree:
        mode = stat.S_IMODE(path.stat().st_mode)
        expected = 0o755 if path.is_dir() else 0o644
        assert mode == expected, f"{path.name}: {oct(mode)}"


def test_every_copied_path_exists_and_survives_dockerignore(
    instructions: list[Instruction],
) -> None:
    sources = copy_sources(instructions)
    assert {
        "pytest_tria_deploy",
        "service/tria_service",
        "service/knowledge",
        "suites",
        "tria.toml",
    } <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), source
        assert not dockerignored(source), f"{source} is copied but .dockerignore drops it"
    assert any((REPO / "service" / "knowledge").glob("*.md"))


@pytest.mark.parametrize(
    "path",
    [".env", ".env.docker", ".venv/bin/python", ".git/config", "reports/verdict.json", "tests",
     "pytest_tria_deploy/__pycache__/plugin.cpython-311.pyc",
     "suites/__pycache__/conftest.cpython-311-pytest-9.0.0.pyc"],
)  # fmt: skip
def test_dockerignore_keeps_secrets_and_clutter_out(path: str) -> None:
    assert dockerignored(path)


def test_the_build_stage_installs_both_packages_from_what_it_copies(
    instructions: list[Instruction], tmp_path: Path
) -> None:
    """`pip install .` on exactly the build stage's COPY set (what `docker build` would see)."""
    context = tmp_path / "context"
    build_stage = [i for i in instructions if i.stage == 0]
    for source in copy_sources(build_stage):
        target = context / source
        if (REPO / source).is_dir():
            shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / source, target)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("tria_deploy-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"tria_service/__main__.py", "pytest_tria_deploy/standins/openai.py"} <= names
