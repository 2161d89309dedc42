"""A stack whose every secret is a canary, and the tria.toml that points the gate at it.

The local provider makes up its own secrets (``LocalStack`` draws them, ``start_postgres`` draws
the password), so nothing can be planted through it. Here the dependencies start with the canary
OpenAI key (the stand-in accepts exactly the key in ``TRIA_STANDIN_API_KEY``) and Redis password,
PostgreSQL gets a role of its own whose password is the canary, and the service runs with the
canary SECRET_KEY and diagnostics token. The gate reaches it as an external target whose values
come from ``${VAR}``s, so no file under the run's directory holds a canary before the run; the
``canary`` target's env file (what the service runs with) lies outside it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import quote

import asyncpg

from pytest_tria_deploy.provision.processes import PostgresServer, ServiceServer, start_service
from pytest_tria_deploy.provision.stack import (
    DependencyEndpoints,
    DependencyServers,
    external_target_env,
    external_target_toml,
    service_env,
    start_dependencies,
)
from tests.reliability.secrets_canaries import Canary, make_canary

ROLE = DATABASE = "cnry_app"
ENV_FILE = "canary.env"

# Two targets on the same stack: ``canary`` with every secret right, and ``wrong`` (protected),
# whose database password and OpenAI key are wrong, and canaries too, so the failure paths
# (refused credentials, tracebacks with locals) are scanned as well as the passing ones.
TABLES = {
    "budgets": {
        "readiness_ms": 10000,
        "liveness_ms": 5000,
        "redis_p99_ms": 2000,
        "database_p99_ms": 5000,
        "database_connect_ms": 10000,
        "openai_ms": 30000,
        "chroma_ms": 10000,
    },
    "minimums": {"free_disk_mb": 1, "memory_mb": 1, "cpus": 1},
}
TRIA_TOML = (
    external_target_toml(
        "canary", "SCAN_", settings={"env_file": "${SCAN_ENV_FILE}"}, tables=TABLES
    )
    + "\n"
    + external_target_toml("wrong", "WRONG_", settings={"protected": True}, tables=TABLES)
)


@dataclass(frozen=True)
class Canaries:
    """Every secret the run handles; the last two are the ``wrong`` target's."""

    openai_api_key: Canary
    database_password: Canary
    redis_password: Canary
    diagnostics_token: Canary
    secret_key: Canary
    wrong_database_password: Canary
    wrong_openai_api_key: Canary

    @classmethod
    def fresh(cls) -> Canaries:
        # The database passwords hold a "!" so that their URL-encoded form differs.
        return cls(
            openai_api_key=make_canary("openai_api_key", "KEY"),
            database_password=make_canary("database_password", "PG", "!"),
            redis_password=make_canary("redis_password", "RD"),
            diagnostics_token=make_canary("diagnostics_token", "DT"),
            secret_key=make_canary("secret_key", "SK"),
            wrong_database_password=make_canary("wrong_database_password", "WP", "!"),
            wrong_openai_api_key=make_canary("wrong_openai_api_key", "WK"),
        )

    def __iter__(self) -> Iterator[Canary]:
        return (getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class PlantedStack:
    """The running stack, its logs, and the variables the tria.toml refers to."""

    workdir: Path
    servers: DependencyServers
    service: ServiceServer
    variables: dict[str, str] = field(repr=False)  # the canaries themselves

    @property
    def env_file(self) -> Path:
        """What the service runs with, as the ``canary`` target's env file."""
        return self.workdir / ENV_FILE

    @property
    def service_log(self) -> Path:
        return self.service.process.log_path

    def logs(self) -> list[Path]:
        """Every process's log: the service's and each dependency's."""
        return sorted(self.workdir.rglob("*.log"))

    def stop(self) -> None:
        self.service.stop(timeout=30.0)
        self.servers.stop()


def database_url(postgres: PostgresServer, password: str) -> str:
    return (
        f"postgresql://{ROLE}:{quote(password, safe='')}@{postgres.host}:{postgres.port}/{DATABASE}"
    )


async def _create_role(postgres: PostgresServer, password: str) -> None:
    """A login role with ``password`` owning a database of its own, made over the unix socket
    as the superuser (the server logs no statement, see ``postgres._FAST_SETTINGS``)."""
    conn = await asyncpg.connect(
        host=str(postgres.socket_dir), port=postgres.port, user="postgres", database="postgres"
    )
    try:
        create = await conn.fetchval(
            "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)", ROLE, password
        )
        await conn.execute(create)
        await conn.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
    finally:
        await conn.close()


def plant(workdir: Path, canaries: Canaries) -> PlantedStack:
    """Start the stack with the canaries as its secrets; everything started is stopped on error."""
    servers = start_dependencies(
        workdir / "deps",
        openai_api_key=canaries.openai_api_key.value,
        redis_password=canaries.redis_password.value,
    )
    try:
        pg = servers.postgres
        assert pg is not None  # all four were started
        asyncio.run(_create_role(pg, canaries.database_password.value))
        deps = replace(
            DependencyEndpoints.of(servers),
            database_url=database_url(pg, canaries.database_password.value),
        )
        env = service_env(
            deps,
            secret_key=canaries.secret_key.value,
            diagnostics_token=canaries.diagnostics_token.value,
        )
        env_file = workdir / ENV_FILE
        env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()), "utf-8")
        service = start_service(workdir / "service", env)
    except BaseException:
        servers.stop()
        raise
    endpoints = deps.endpoints(
        service.url,
        diagnostics_token=canaries.diagnostics_token.value,
        secret_key=canaries.secret_key.value,
    )
    wrong = replace(
        deps,
        database_url=database_url(pg, canaries.wrong_database_password.value),
        openai_api_key=canaries.wrong_openai_api_key.value,
    ).endpoints(
        service.url,
        diagnostics_token=canaries.diagnostics_token.value,
        secret_key=canaries.secret_key.value,
    )
    variables = {
        **external_target_env("SCAN_", endpoints),
        **external_target_env("WRONG_", wrong),
        "SCAN_ENV_FILE": str(env_file),
    }
    return PlantedStack(workdir, servers, service, variables)
