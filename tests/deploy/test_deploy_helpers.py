"""scripts/deploy/*.py, the deployment script's helpers, each run as the script runs it.

The redacting tee is the one that matters most: it is the only thing between the deploy's output
and its log, and no other test would notice a plain ``tee`` in its place (nothing the script runs
prints a secret raw).
"""

from __future__ import annotations

import http.server
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.reliability.secrets_canaries import assert_no_secret, make_canary
from tests.service.helpers import run_python
from tests.tiny_http import serve_handler

REPO = Path(__file__).resolve().parents[2]
HELPERS = REPO / "scripts" / "deploy"
LINE_TIMEOUT = 20.0


class Tee:
    """redact_stream.py as the script runs it, fed and read one line at a time."""

    def __init__(self, log: Path, watched: list[Path], env: dict[str, str]) -> None:
        args = [sys.executable, str(HELPERS / "redact_stream.py"), "--log", str(log)]
        for path in watched:
            args += ["--watch", str(path)]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"PATH": os.environ["PATH"], **env},
            start_new_session=True,
        )

    def line(self, text: str) -> str:
        """Send ``text``, return the line the tee printed for it."""
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(text.encode() + b"\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], LINE_TIMEOUT)
        assert ready, "the tee printed nothing"
        return self.process.stdout.readline().decode()

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=LINE_TIMEOUT)


@pytest.fixture
def tee_env(tmp_path: Path) -> Iterator[tuple[Tee, Path, Path, dict[str, str]]]:
    env_file = tmp_path / ".env.docker"
    stack_env = tmp_path / "stack.env"
    secrets = {
        "POSTGRES_PASSWORD": make_canary("POSTGRES_PASSWORD", "pg").value,
        "SECRET_KEY": make_canary("SECRET_KEY", "sk").value,
        "shell TRIA_ADMIN_TOKEN": make_canary("TRIA_ADMIN_TOKEN", "at").value,
        "stack password": make_canary("stack password", "sp").value,
        "stack OPENAI_API_KEY": make_canary("OPENAI_API_KEY", "oa").value,
    }
    env_file.write_text(
        f"POSTGRES_PASSWORD={secrets['POSTGRES_PASSWORD']}\n"
        f"SECRET_KEY={secrets['SECRET_KEY']}\n"
        "TRIA_AGENT_MAX_TOKENS=1024\n"
    )
    log = tmp_path / "deploy.log"
    tee = Tee(log, [env_file, stack_env], {"TRIA_ADMIN_TOKEN": secrets["shell TRIA_ADMIN_TOKEN"]})
    try:
        yield tee, log, stack_env, secrets
    finally:
        if tee.process.poll() is None:
            tee.process.kill()
            tee.process.wait()


def test_tee_masks_every_known_secret_including_a_file_written_mid_stream(
    tee_env: tuple[Tee, Path, Path, dict[str, str]],
) -> None:
    tee, log, stack_env, secrets = tee_env
    printed = [
        tee.line(f"postgres says {secrets['POSTGRES_PASSWORD']} and {secrets['SECRET_KEY']}"),
        tee.line(f"the shell's admin token {secrets['shell TRIA_ADMIN_TOKEN']}"),
        tee.line("minimum 1024MB"),  # a count whose name holds TOKENS is no secret
    ]
    assert printed[0] == "postgres says *** and ***\n"
    assert printed[1] == "the shell's admin token ***\n"
    assert printed[2] == "minimum 1024MB\n"
    # The local stack writes its env file once it is up, after the tee started.
    stack_env.write_text(
        f"DATABASE_URL=postgresql://tria:{secrets['stack password']}@127.0.0.1:5/tria\n"
        f"OPENAI_API_KEY={secrets['stack OPENAI_API_KEY']}\n"
    )
    printed.append(tee.line(f"raw {secrets['stack password']} / {secrets['stack OPENAI_API_KEY']}"))
    assert printed[-1] == "raw *** / ***\n"
    assert tee.close() == 0
    assert log.read_text() == "".join(printed)
    assert_no_secret({"log": log.read_text(), "stdout": "".join(printed)}, secrets)


def test_tee_masks_credential_shapes_but_keeps_the_services_own_messages(
    tee_env: tuple[Tee, Path, Path, dict[str, str]],
) -> None:
    tee, _, _, _ = tee_env
    unknown = make_canary("unknown", "un").value
    assert (
        tee.line(f"redis://:{unknown}@10.0.0.1:6379/0 Bearer {unknown} sk-{unknown}")
        == "redis://:***@10.0.0.1:6379/0 Bearer *** ***\n"
    )
    message = "  - SECRET_KEY: is a placeholder, not a secret — generate one with x"
    assert tee.line(message) == message + "\n"
    assert tee.close() == 0


def test_tee_outlives_ctrl_c_and_ends_at_end_of_input(
    tee_env: tuple[Tee, Path, Path, dict[str, str]],
) -> None:
    """Ctrl-C reaches the whole process group; the script logs its cleanup after it."""
    tee, log, _, _ = tee_env
    tee.line("before")
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        os.killpg(tee.process.pid, signum)
    assert tee.line("interrupted: stopping what this run started") != ""
    assert tee.close() == 0
    assert log.read_text().splitlines()[-1] == "interrupted: stopping what this run started"


def run_gate_env(env_file: Path, *published: str) -> dict[str, str]:
    args = [str(HELPERS / "gate_env.py"), "--env-file", str(env_file)]
    for pair in published:
        args += ["--published", pair]
    result = run_python(*args, env={})
    assert result.returncode == 0, result.stderr
    fields = result.stdout.split("\0")
    assert fields[-1] == ""
    return dict(zip(fields[0:-1:2], fields[1:-1:2], strict=True))


@pytest.fixture
def compose_env_file(tmp_path: Path) -> tuple[Path, str]:
    password = make_canary("POSTGRES_PASSWORD", "pg").value
    env_file = tmp_path / ".env.docker"
    env_file.write_text(
        f"DATABASE_URL=postgresql://tria:{password}@postgres:5432/tria\n"
        f"REDIS_PASSWORD={make_canary('REDIS_PASSWORD', 'rd').value}\n"
        "REDIS_URL=redis://localhost:1/0\n"
        "CHROMA_URL=http://localhost:2\n"
        f"OPENAI_API_KEY=sk-{make_canary('OPENAI_API_KEY', 'oa').value}\n"
        "OPENAI_BASE_URL=http://openai-standin:8080/v1\n"
        f"SECRET_KEY={make_canary('SECRET_KEY', 'sk').value}\n"
        f"TRIA_DIAGNOSTICS_TOKEN={make_canary('TRIA_DIAGNOSTICS_TOKEN', 'dt').value}\n"
    )
    return env_file, password


def test_gate_env_local_mode_reads_what_the_release_reads(
    compose_env_file: tuple[Path, str],
) -> None:
    env_file, password = compose_env_file
    values = run_gate_env(env_file)
    assert values["TRIA_GATE_DATABASE_URL"] == f"postgresql://tria:{password}@postgres:5432/tria"
    assert values["TRIA_GATE_REDIS_URL"] == "redis://localhost:1/0"
    assert values["TRIA_GATE_CHROMA_URL"] == "http://localhost:2"


def test_gate_env_compose_mode_uses_the_compose_addresses_then_the_published_ones(
    compose_env_file: tuple[Path, str],
) -> None:
    """The env file's REDIS_URL and CHROMA_URL are not what the compose service gets."""
    env_file, password = compose_env_file
    values = run_gate_env(
        env_file,
        "postgres=127.0.0.1:15432",
        "redis=127.0.0.1:16379",
        "chroma=127.0.0.1:18000",
        "openai-standin=127.0.0.1:18080",
    )
    assert values["TRIA_GATE_DATABASE_URL"] == f"postgresql://tria:{password}@127.0.0.1:15432/tria"
    assert values["TRIA_GATE_REDIS_URL"].endswith("@127.0.0.1:16379/0")
    assert values["TRIA_GATE_CHROMA_URL"] == "http://127.0.0.1:18000"
    assert values["TRIA_GATE_OPENAI_BASE_URL"].startswith("http://127.0.0.1:18080/")


def test_gate_env_compose_overrides_match_the_compose_file() -> None:
    """gate_env.COMPOSE_OVERRIDES restates deploy/docker-compose.yml's service environment."""
    sys.path.insert(0, str(HELPERS))
    try:
        from gate_env import COMPOSE_OVERRIDES
    finally:
        sys.path.remove(str(HELPERS))
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    environment = compose["services"]["service"]["environment"]
    literal = {name.lower(): value for name, value in environment.items() if value is not None}
    assert "REDIS_URL" not in environment  # never passed: the override unsets it
    assert COMPOSE_OVERRIDES.pop("redis_url") is None
    for name, value in COMPOSE_OVERRIDES.items():
        assert str(literal[name]) == str(value), name


def run_stages(tmp_path: Path, verdict: object) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "verdict.json"
    path.write_text(verdict if isinstance(verdict, str) else json.dumps(verdict))
    return run_python(str(HELPERS / "stages.py"), str(path), env={})


@pytest.mark.parametrize(
    ("verdict", "status"), [("PASS", 0), ("WARN", 0), ("FAIL", 1), ("BLOCKED", 1)]
)
def test_stages_prints_the_verdict_and_decides(tmp_path: Path, verdict: str, status: int) -> None:
    result = run_stages(tmp_path, {"verdict": verdict, "reason": "stage x failed", "targets": []})
    assert result.returncode == status
    assert result.stdout == f"gate verdict: {verdict} — stage x failed\n"


@pytest.mark.parametrize("text", ["{not json", "[]"], ids=["broken", "not-an-object"])
def test_stages_without_a_readable_verdict_is_2(tmp_path: Path, text: str) -> None:
    result = run_stages(tmp_path, text)
    assert result.returncode == 2
    assert "no readable verdict at" in result.stderr


def test_stages_without_a_file_is_2(tmp_path: Path) -> None:
    result = run_python(str(HELPERS / "stages.py"), str(tmp_path / "absent.json"), env={})
    assert result.returncode == 2
    assert "no readable verdict at" in result.stderr


def test_compose_secrets_names_each_placeholder_never_its_value(tmp_path: Path) -> None:
    real = make_canary("REDIS_PASSWORD", "rd").value
    env_file = tmp_path / ".env.docker"
    env_file.write_text(
        "POSTGRES_PASSWORD=replace-me-with-a-password\n"
        f"REDIS_PASSWORD={real}\n"
        "DATABASE_URL=postgresql://tria:changeme@postgres:5432/tria\n"
        "REDIS_URL=redis://:replace-me@redis:6379/0\n"
    )
    result = run_python(str(HELPERS / "compose_secrets.py"), str(env_file), env={})
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "POSTGRES_PASSWORD: is a placeholder, not a password — generate one",
        "DATABASE_URL: its password is a placeholder — put the real one in the URL",
        "REDIS_URL: its password is a placeholder — put the real one in the URL",
    ]
    assert "replace-me" not in result.stdout
    assert "changeme" not in result.stdout
    # The environment wins over the file, as with compose.
    fixed = run_python(
        str(HELPERS / "compose_secrets.py"),
        str(env_file),
        env={
            "POSTGRES_PASSWORD": real,
            "DATABASE_URL": f"postgresql://tria:{real}@postgres/tria",
            "REDIS_URL": f"redis://:{real}@redis:6379/0",
        },
    )
    assert fixed.returncode == 0, fixed.stdout
    assert_no_secret({"stdout": fixed.stdout, "stderr": fixed.stderr}, {"real": real})


class _Health(http.server.BaseHTTPRequestHandler):
    body = b'{"status": "pass", "releaseId": "r7"}'

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def health_url() -> Iterator[str]:
    with serve_handler(_Health) as url:
        yield f"{url}/health"


def test_probe_accepts_only_the_release_it_was_told(health_url: str) -> None:
    """Another process answering /health on the port is not the new release being live."""
    probe = str(HELPERS / "probe.py")
    assert run_python(probe, health_url, "--release", "r7", env={}).returncode == 0
    assert run_python(probe, health_url, "--release", "r8", env={}).returncode == 1
    assert run_python(probe, health_url, env={}).returncode == 0
    closed = health_url.rsplit(":", 1)[0] + ":9/health"
    assert run_python(probe, closed, env={}).returncode == 1


def test_running_stack_prints_the_live_owner_and_its_env_file(tmp_path: Path) -> None:
    from pytest_tria_deploy.provision.managed import this_process

    env_file = tmp_path / "stack.env"
    env_file.write_text("DATABASE_URL=postgresql://x\n")
    state = tmp_path / "tria-state"
    state.mkdir()
    record = {**this_process(), "env_file": str(env_file)}
    (state / "stack.json").write_text(json.dumps(record))
    script = str(HELPERS / "running_stack.py")
    found = run_python(script, env={"TRIA_STATE_DIR": str(state)})
    assert found.returncode == 0, found.stderr
    assert found.stdout == f"{os.getpid()} {env_file}\n"
    env_file.unlink()  # a stack that wrote no env file cannot be reused
    assert run_python(script, env={"TRIA_STATE_DIR": str(state)}).returncode == 1
