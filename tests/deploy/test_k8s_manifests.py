"""deploy/k8s cannot drift from the code: probes, ports, variables, selectors, the shutdown
arithmetic, the gate Job and tria.toml's cluster target, and the read-only root filesystem."""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from tria_service.__main__ import load_configuration
from tria_service.config import ConfigError

from pytest_tria_deploy.interpolate import interpolate
from pytest_tria_deploy.provision.processes import start_service
from pytest_tria_deploy.provision.stack import DependencyEndpoints
from pytest_tria_deploy.targets import load_config
from tests.deploy.manifests import (
    K8S,
    K8S_EXAMPLES,
    KUSTOMIZATION,
    REPO,
    WRITE_AUDIT,
    Instruction,
    cli_options,
    dockerfile,
    k8s_files,
    k8s_objects,
    k8s_schema_problems,
    kustomization,
    option_words,
    pod_environment,
    pytest_options,
    serves,
    service_variables,
    shell_commands,
    target_references,
)
from tests.reliability.secrets_canaries import assert_no_secret

Objects = dict[tuple[str, str], dict[str, Any]]
DEPLOYMENT = ("Deployment", "tria-service")
SERVICE = ("Service", "tria-service")
PDB = ("PodDisruptionBudget", "tria-service")
CONFIG_MAP = ("ConfigMap", "tria-config")
SECRET = ("Secret", "tria-secrets")
JOB = ("Job", "tria-gate")
PROBES = {
    "startupProbe": "/api/v1/health/startup",
    "livenessProbe": "/health",
    "readinessProbe": "/api/v1/health/readiness",
}
CLUSTER = "cluster"


@pytest.fixture(scope="module")
def objects() -> Objects:
    return k8s_objects()


def _pod(objects: Objects, key: tuple[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = objects[key]["spec"]["template"]["spec"]
    return spec


def _container(objects: Objects, key: tuple[str, str]) -> dict[str, Any]:
    (container,) = _pod(objects, key)["containers"]
    found: dict[str, Any] = container
    return found


def _job_shell_line(objects: Objects) -> str:
    """The Job runs one ``sh -c`` line (so that its log can end with summary.md)."""
    container = _container(objects, JOB)
    shell, flag, line = container["command"]
    assert (shell, flag) == ("sh", "-c")
    assert "args" not in container  # sh -c would make them $0, $1...: never the verify's
    found: str = line
    return found


def _verify_argv(objects: Objects) -> list[str]:
    """The ``tria-deploy verify`` command of the Job's shell line: its first command."""
    return shell_commands(_job_shell_line(objects))[0]


def _secret_values() -> dict[str, str]:
    """Real-looking values for every key of the example Secret (URL-safe, as it asks)."""
    return {
        "DATABASE_URL": f"postgresql://tria:{secrets.token_urlsafe(16)}@postgres:5432/tria",
        "REDIS_PASSWORD": secrets.token_urlsafe(32),
        "OPENAI_API_KEY": f"sk-{secrets.token_urlsafe(32)}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "TRIA_DIAGNOSTICS_TOKEN": secrets.token_urlsafe(32),
        "TRIA_ADMIN_TOKEN": secrets.token_urlsafe(32),
    }


def _environment(
    objects: Objects, key: tuple[str, str], values: Mapping[str, str]
) -> dict[str, str]:
    """What the kubelet gives the container, with ``values`` as the tria-secrets Secret."""
    return pod_environment(
        _container(objects, key),
        config_maps={"tria-config": objects[CONFIG_MAP]["data"]},
        secrets={"tria-secrets": values},
    )


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No service variable from this process's environment and no .env file in the way."""
    for name in service_variables():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


# --- the files -----------------------------------------------------------------------------


def test_every_manifest_is_listed_by_its_kustomization_and_examples_by_none() -> None:
    listed: set[Path] = set()
    for path in k8s_files():
        if path.name == KUSTOMIZATION:
            resources = kustomization(path.parent)["resources"]
            listed |= {(path.parent / r).resolve() for r in resources}
    assert all(p.is_file() for p in listed)
    applied = {p for p in k8s_files() if p.name != KUSTOMIZATION} - K8S_EXAMPLES
    assert listed == applied
    assert set(k8s_files()) >= K8S_EXAMPLES


def test_the_objects_are_all_there(objects: Objects) -> None:
    assert set(objects) == {DEPLOYMENT, SERVICE, PDB, CONFIG_MAP, SECRET, JOB}
    assert "namespace" not in str([o["metadata"] for o in objects.values()])  # kubectl -n decides


@pytest.mark.parametrize("key", [DEPLOYMENT, SERVICE, PDB, CONFIG_MAP, SECRET, JOB], ids=str)
def test_each_object_fits_the_kubernetes_schema(objects: Objects, key: tuple[str, str]) -> None:
    assert k8s_schema_problems(objects[key]) == []


def test_the_schema_check_finds_misspelt_and_mistyped_fields(objects: Objects) -> None:
    broken = copy.deepcopy(objects[DEPLOYMENT])
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["livenessprobe"] = container.pop("livenessProbe")
    container["env"][1]["value"] = 8000  # env values must be strings
    problems = k8s_schema_problems(broken)
    assert any("livenessprobe" in p for p in problems), problems
    assert any("env.1.value" in p for p in problems), problems


def test_both_kustomizations_deploy_the_same_image(objects: Objects) -> None:
    images = [kustomization(p.parent)["images"] for p in k8s_files() if p.name == KUSTOMIZATION]
    assert len(images) == 2
    assert images[0] == images[1]
    (image,) = images[0]
    for key in (DEPLOYMENT, JOB):
        assert _container(objects, key)["image"] == image["name"]


# --- probes and ports ----------------------------------------------------------------------


def test_the_route_check_tells_a_route_from_none() -> None:
    assert serves("/health")
    assert not serves("/healthz")
    assert not serves("/api/v1/chat")  # POST only


@pytest.mark.parametrize(("probe", "path"), PROBES.items())
def test_each_probe_asks_its_endpoint_on_the_service_port(
    objects: Objects, probe: str, path: str
) -> None:
    container = _container(objects, DEPLOYMENT)
    action = container[probe]["httpGet"]
    assert action["path"] == path
    assert serves(action["path"])
    (port,) = [p for p in container["ports"] if action["port"] in (p["name"], p["containerPort"])]
    tria_port = {e["name"]: e.get("value") for e in container["env"]}["TRIA_PORT"]
    assert port["containerPort"] == int(tria_port)
    (expose,) = [i.args for i in dockerfile() if i.keyword == "EXPOSE"]
    assert port["containerPort"] == int(expose)


def test_the_service_routes_to_the_container_port_at_the_cluster_target_s_address(
    objects: Objects,
) -> None:
    (port,) = objects[SERVICE]["spec"]["ports"]
    (container_port,) = _container(objects, DEPLOYMENT)["ports"]
    assert port["targetPort"] in (container_port["name"], container_port["containerPort"])
    target = load_config(REPO, None, REPO).targets[CLUSTER]
    address = urlsplit(interpolate(target.service_url or "", {}))  # the Job sets no override
    assert (address.hostname, address.port) == (objects[SERVICE]["metadata"]["name"], port["port"])


def test_the_selectors_pick_the_service_s_pods_and_never_the_gate_s(objects: Objects) -> None:
    deployment = objects[DEPLOYMENT]["spec"]
    labels = deployment["template"]["metadata"]["labels"]
    selector = deployment["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert objects[SERVICE]["spec"]["selector"] == selector
    assert objects[PDB]["spec"]["selector"] == {"matchLabels": selector}
    gate_labels = objects[JOB]["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= gate_labels.items()


# --- environment ---------------------------------------------------------------------------


def test_every_variable_the_deployment_sets_is_a_setting_and_set_once(objects: Objects) -> None:
    container = _container(objects, DEPLOYMENT)
    explicit = [e["name"] for e in container["env"]]
    from_config_map = set(objects[CONFIG_MAP]["data"])
    assert len(explicit) == len(set(explicit))
    assert not from_config_map & set(explicit), "set in the ConfigMap and in env: which wins?"
    assert from_config_map | set(explicit) <= service_variables()
    assert {"TRIA_SHUTDOWN_DRAIN_DELAY", "TRIA_SHUTDOWN_GRACE", "TRIA_PORT"} <= set(explicit)


def test_every_secret_and_config_map_key_referenced_exists(objects: Objects) -> None:
    keys = {"tria-config": set(objects[CONFIG_MAP]["data"])}
    keys["tria-secrets"] = set(objects[SECRET]["stringData"])
    for key in (DEPLOYMENT, JOB):
        container = _container(objects, key)
        for source in container.get("envFrom", []):
            (ref,) = source.values()
            assert ref["name"] in keys, key
        for entry in container["env"]:
            for ref in entry.get("valueFrom", {}).values():
                assert ref["key"] in keys[ref["name"]], f"{key}: {entry['name']}"
    assert set(_secret_values()) == keys["tria-secrets"]


def test_the_deployment_gives_the_service_a_valid_configuration(
    objects: Objects, clean_env: pytest.MonkeyPatch
) -> None:
    """Every required setting is there and every value passes the service's own validation."""
    env = _environment(objects, DEPLOYMENT, _secret_values())
    for name, value in env.items():
        clean_env.setenv(name, value)
    settings, server = load_configuration()
    config_map = objects[CONFIG_MAP]["data"]
    assert settings.redis_host == config_map["REDIS_HOST"]
    assert settings.tria_env == "production"
    assert server.tria_port == 8000
    assert server.tria_host == "0.0.0.0"


def test_the_example_secret_is_refused_by_the_service(
    objects: Objects, clean_env: pytest.MonkeyPatch
) -> None:
    env = _environment(objects, DEPLOYMENT, objects[SECRET]["stringData"])
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        load_configuration()
    named = {problem.split(":", 1)[0] for problem in refused.value.problems}
    assert named == {"OPENAI_API_KEY", "SECRET_KEY", "TRIA_DIAGNOSTICS_TOKEN", "TRIA_ADMIN_TOKEN"}


def test_the_example_secret_s_kubectl_command_creates_the_same_keys(objects: Objects) -> None:
    text = (K8S / "secret.example.yaml").read_text(encoding="utf-8")
    command = " ".join(
        line.removeprefix("#").strip().removesuffix("\\")
        for line in text.splitlines()
        if "kubectl create secret" in line or "--from-literal=" in line
    )
    words = shlex.split(command)
    assert words[:5] == ["kubectl", "create", "secret", "generic", "tria-secrets"]
    created = {w.removeprefix("--from-literal=").split("=", 1)[0] for w in words[5:]}
    assert created == set(objects[SECRET]["stringData"])


# --- shutdown ------------------------------------------------------------------------------


def test_the_grace_period_outlasts_pre_stop_drain_and_grace(
    objects: Objects, clean_env: pytest.MonkeyPatch
) -> None:
    pod = _pod(objects, DEPLOYMENT)
    container = _container(objects, DEPLOYMENT)
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    for name, value in _environment(objects, DEPLOYMENT, _secret_values()).items():
        clean_env.setenv(name, value)
    settings, server = load_configuration()  # the values the service will really use
    grace = settings.tria_shutdown_grace
    drain = server.drain_delay(grace)
    assert server.tria_shutdown_drain_delay is not None  # explicit, not the derived default
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain + grace
    readiness = container["readinessProbe"]
    assert pre_stop >= readiness["periodSeconds"] * readiness["failureThreshold"]
    for probe in PROBES:
        assert container[probe]["timeoutSeconds"] < container[probe]["periodSeconds"]


# --- security ------------------------------------------------------------------------------


def _image_uid(instructions: list[Instruction]) -> int:
    created = " ".join(i.args for i in instructions if i.keyword == "RUN").split()
    return int(created[created.index("--uid") + 1])


@pytest.mark.parametrize("key", [DEPLOYMENT, JOB], ids=str)
def test_pods_run_as_the_image_s_user_on_a_read_only_root(
    objects: Objects, key: tuple[str, str]
) -> None:
    pod = _pod(objects, key)
    container = _container(objects, key)
    uid = _image_uid(dockerfile())
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["runAsGroup"] == uid  # the group the articles are readable by
    assert pod["automountServiceAccountToken"] is False
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]
    volumes = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    assert {m["name"] for m in container["volumeMounts"]} <= volumes


def test_the_deployment_runs_the_image_s_command(objects: Objects) -> None:
    (cmd,) = [i.args for i in dockerfile() if i.keyword == "CMD"]
    assert _container(objects, DEPLOYMENT)["command"] == json.loads(cmd)


# --- the gate Job and tria.toml ------------------------------------------------------------


def test_the_job_runs_tria_deploy_verify_on_the_cluster_target_from_the_image_s_app(
    objects: Objects,
) -> None:
    container = _container(objects, JOB)
    argv = _verify_argv(objects)
    assert argv[:3] == ["tria-deploy", "verify", "--target=cluster"]
    workdirs = [i.args for i in dockerfile() if i.keyword == "WORKDIR"]
    assert container["workingDir"] == workdirs[-1] == "/app"
    copied = " ".join(i.args for i in dockerfile() if i.keyword == "COPY" and "--from" in i.args)
    assert "./suites" in copied
    assert "./tria.toml" in copied
    config = load_config(REPO, None, REPO)
    assert not config.problems
    assert config.targets[CLUSTER].provider == "external"
    assert config.targets[CLUSTER].protected  # a post-deploy check on live traffic: read-only
    job = objects[JOB]["spec"]
    assert job["backoffLimit"] == 0
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_the_job_s_options_are_tria_deploy_verify_s_and_pytest_s(objects: Objects) -> None:
    argv = _verify_argv(objects)
    separator = argv.index("--")
    assert set(option_words(argv[2:separator])) <= cli_options("verify")
    assert set(option_words(argv[separator + 1 :])) <= pytest_options()


def test_the_job_logs_the_summary_after_verify_and_exits_with_verify_s_code(
    objects: Objects,
) -> None:
    """A finished Job keeps only its log (``kubectl cp`` needs a running container): the shell
    line runs verify, then prints summary.md, then exits with verify's code, in the image's
    /bin/sh (the Debian-based python image has one; a distroless base would not)."""
    verify, *rest = shell_commands(_job_shell_line(objects))
    assert verify[:2] == ["tria-deploy", "verify"]
    assert rest == [
        ["rc=$?"],
        ["cat", "reports/summary.md", "2", ">", "/dev/null"],
        ["exit", "$rc"],
    ]
    (base,) = [i.args for i in dockerfile() if i.keyword == "ARG" and "PYTHON_IMAGE=" in i.args]
    assert re.fullmatch(r"PYTHON_IMAGE=python:[\d.]+-slim(-\w+)?", base), base


def test_the_job_gives_the_cluster_target_exactly_the_variables_it_reads(
    objects: Objects,
) -> None:
    given = {e["name"] for e in _container(objects, JOB)["env"]}
    required, optional = target_references(CLUSTER)
    assert required <= given, f"the Job does not set {sorted(required - given)}"
    assert given <= required | optional, f"the target never reads {sorted(given - required)}"


def test_the_cluster_target_reaches_what_the_deployment_configures(objects: Objects) -> None:
    """The gate checks the database, Redis, Chroma, OpenAI and secrets the service really uses."""
    values = _secret_values()
    service = _environment(objects, DEPLOYMENT, values)
    job = _environment(objects, JOB, values)
    target = load_config(REPO, None, REPO).targets[CLUSTER].resolve(job)
    with pytest.MonkeyPatch.context() as patch:
        for name in service_variables():
            patch.delenv(name, raising=False)
        for name, value in service.items():
            patch.setenv(name, value)
        settings, _ = load_configuration()

    def secret(value: Any) -> str:
        plain: str = value.get_secret_value()
        return plain

    assert secret(target.database_url) == secret(settings.database_url)
    assert secret(target.redis_url) == settings.redis_dsn()
    assert target.chroma_url == settings.chroma_base_url()
    assert target.chroma_collection == settings.chroma_collection
    assert target.openai_base_url == settings.openai_endpoint()
    assert secret(target.openai_api_key) == secret(settings.openai_api_key)
    assert (target.openai_model, target.openai_embedding_model) == (
        settings.openai_model,
        settings.openai_embedding_model,
    )
    assert secret(target.diagnostics_token) == secret(settings.tria_diagnostics_token)
    assert secret(target.secret_key) == secret(settings.secret_key)


# --- read-only root filesystem -------------------------------------------------------------


def test_the_service_writes_no_file_from_start_to_shutdown(
    tmp_path: Path, service_env: Mapping[str, str]
) -> None:
    """readOnlyRootFilesystem holds: every write the service makes (audited by PEP 578 hooks,
    through a chat turn and a SIGTERM shutdown) lands under TMPDIR, the pod's /tmp emptyDir."""
    log = tmp_path / "writes.log"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {
        **service_env,
        "PYTHONPATH": str(WRITE_AUDIT),
        "TRIA_WRITE_AUDIT_LOG": str(log),
        "TMPDIR": str(tmp),
    }
    server = start_service(tmp_path / "service", env)
    try:
        for path in PROBES.values():
            assert httpx.get(f"{server.url}{path}", timeout=10).status_code == 200, path
        turn = httpx.post(
            f"{server.url}/api/v1/chat", json={"message": "Where is my order?"}, timeout=60
        )
        assert turn.status_code == 200, turn.text
    finally:
        server.stop(timeout=30)
    assert log.is_file(), "the audit hook did not load: is PYTHONPATH passed to the service?"
    writes = [line.split("\t", 1) for line in log.read_text().splitlines()]
    outside = [(event, path) for event, path in writes if not _allowed(path, [tmp])]
    assert outside == []


def _allowed(path: str, writable: list[Path]) -> bool:
    return path.startswith("/dev/") or any(Path(path).is_relative_to(d) for d in writable)


def test_the_write_audit_sees_writes_and_not_reads(tmp_path: Path) -> None:
    """The audit the read-only checks rely on records a write, a mkdir and a rename, no read."""
    log = tmp_path / "writes.log"
    script = (
        "import os, pathlib; p = pathlib.Path('a'); p.write_text('x'); p.read_text(); "
        "os.mkdir('d'); os.rename('a', 'b')"
    )
    env = {"PYTHONPATH": str(WRITE_AUDIT), "TRIA_WRITE_AUDIT_LOG": str(log)}
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, check=True)
    lines = log.read_text().splitlines()
    assert lines == [
        f"open\t{tmp_path / 'a'}",
        f"os.mkdir\t{tmp_path / 'd'}",
        f"os.rename\t{tmp_path / 'a'}",
        f"os.rename\t{tmp_path / 'b'}",
    ]


def _run_job(
    objects: Objects,
    tmp_path: Path,
    config_map: Mapping[str, str],
    secret: Mapping[str, str],
    service_url: str,
) -> subprocess.CompletedProcess[str]:
    """The Job's own command and environment, run as in the pod: from a copy of the image's /app
    (what the Dockerfile puts there, at ``tmp_path/app``), with the Job's variables resolved from
    ``config_map`` and ``secret``, and its writes audited into ``tmp_path/writes.log``. The one
    change: the in-cluster Service name does not resolve here, so TRIA_GATE_SERVICE_URL is
    ``service_url``."""
    app = tmp_path / "app"
    shutil.copytree(REPO / "suites", app / "suites", ignore=shutil.ignore_patterns("__py*"))
    shutil.copy2(REPO / "tria.toml", app / "tria.toml")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    container = _container(objects, JOB)
    env = pod_environment(container, {"tria-config": config_map}, {"tria-secrets": secret})
    env |= {
        "PATH": os.environ["PATH"],
        "HOME": str(app),  # the tria user's home is /app
        "TMPDIR": str(tmp),
        "PYTHONDONTWRITEBYTECODE": "1",  # as the image's ENV sets it
        "TRIA_GATE_SERVICE_URL": service_url,
        "PYTHONPATH": str(WRITE_AUDIT),
        "TRIA_WRITE_AUDIT_LOG": str(tmp_path / "writes.log"),
    }
    return subprocess.run(
        container["command"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_gate_job_passes_on_a_healthy_deployment_writing_only_to_its_volumes(
    objects: Objects, tmp_path: Path, deps: DependencyEndpoints, service_env: Mapping[str, str]
) -> None:
    """The Job against the local stack (a Secret holding its values): it passes, writes only to
    its two volumes, and its log ends with summary.md."""
    service = start_service(tmp_path / "service", service_env)
    try:
        redis = urlsplit(deps.redis_url)
        config_map = {
            **objects[CONFIG_MAP]["data"],
            "REDIS_HOST": redis.hostname or "",
            "REDIS_PORT": str(redis.port),
            "REDIS_DB": redis.path.strip("/") or "0",
            "CHROMA_URL": deps.chroma_url,
            "OPENAI_BASE_URL": deps.openai_base_url,
        }
        secret = {
            "DATABASE_URL": deps.database_url,
            "REDIS_PASSWORD": redis.password or "",
            "OPENAI_API_KEY": deps.openai_api_key,
            "SECRET_KEY": service_env["SECRET_KEY"],
            "TRIA_DIAGNOSTICS_TOKEN": service_env["TRIA_DIAGNOSTICS_TOKEN"],
        }
        done = _run_job(objects, tmp_path, config_map, secret, service.url)
    finally:
        service.stop(timeout=30)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    container = _container(objects, JOB)
    reports = tmp_path / "app" / "reports"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {f"{container['workingDir']}/reports", "/tmp"}
    verdict = json.loads((reports / "verdict.json").read_text())
    assert verdict["target"] == CLUSTER
    assert verdict["verdict"] in ("PASS", "WARN"), verdict["reason"]
    assert done.stdout.endswith((reports / "summary.md").read_text(encoding="utf-8"))
    writes = [line.split("\t", 1) for line in (tmp_path / "writes.log").read_text().splitlines()]
    outside = sorted(
        {path for _, path in writes if not _allowed(path, [reports, tmp_path / "tmp"])}
    )
    assert outside == []
    assert_no_secret({"the gate's output": output}, secret)


def test_a_failing_gate_job_logs_its_summary_and_exits_1(objects: Objects, tmp_path: Path) -> None:
    """A short SECRET_KEY (and nothing listening): the environment stage fails and blocks the
    rest; the Job still exits 1, the shell's ``cat`` notwithstanding, and the log says why."""
    closed = "127.0.0.1:1"
    config_map = {
        **objects[CONFIG_MAP]["data"],
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": "1",
        "CHROMA_URL": f"http://{closed}",
        "OPENAI_BASE_URL": f"http://{closed}/v1",
    }
    secret = {
        "DATABASE_URL": f"postgresql://tria:{secrets.token_urlsafe(16)}@{closed}/tria",
        "REDIS_PASSWORD": secrets.token_urlsafe(16),
        "OPENAI_API_KEY": f"sk-{secrets.token_urlsafe(16)}",
        "SECRET_KEY": secrets.token_urlsafe(8),
        "TRIA_DIAGNOSTICS_TOKEN": secrets.token_urlsafe(16),
    }

    done = _run_job(objects, tmp_path, config_map, secret, f"http://{closed}")

    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    summary = (tmp_path / "app" / "reports" / "summary.md").read_text(encoding="utf-8")
    assert summary.startswith("# ❌ tria-deploy: FAIL on cluster")
    assert done.stdout.endswith(summary)
    pytest.LineMatcher(summary.splitlines()).fnmatch_lines(
        ["| environment | FAIL | *", "| database | BLOCKED | *"]
    )
    assert_no_secret({"the gate's output": output}, secret)
