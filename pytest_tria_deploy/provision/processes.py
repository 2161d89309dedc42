"""Public API for throwaway local servers: start, wait for and stop each component, once.

The work lives in small modules beside this one; this module is the stable import path.
"""

from __future__ import annotations

from pytest_tria_deploy.provision.binaries import (
    PG_BINDIR_ENV,
    REDIS_SERVER_ENV,
    postgres_bindir,
    redis_server_binary,
)
from pytest_tria_deploy.provision.chroma_server import ChromaServer, start_chroma
from pytest_tria_deploy.provision.errors import ComponentStartError, redact_text
from pytest_tria_deploy.provision.http_apps import (
    ServiceServer,
    StandinServer,
    start_openai_standin,
    start_service,
)
from pytest_tria_deploy.provision.managed import (
    RUNTIME_DIR_ENV,
    STATE_DIR_ENV,
    Launch,
    ManagedProcess,
    free_port,
    port_is_free,
    reap_orphans,
    runtime_dir,
    state_dir,
    wait_gone,
)
from pytest_tria_deploy.provision.postgres import PostgresServer, start_postgres
from pytest_tria_deploy.provision.redis_server import RedisServer, start_redis
from pytest_tria_deploy.provision.server import Server, SpawnHook

__all__ = [
    "PG_BINDIR_ENV",
    "REDIS_SERVER_ENV",
    "RUNTIME_DIR_ENV",
    "STATE_DIR_ENV",
    "ChromaServer",
    "ComponentStartError",
    "Launch",
    "ManagedProcess",
    "PostgresServer",
    "RedisServer",
    "Server",
    "ServiceServer",
    "SpawnHook",
    "StandinServer",
    "free_port",
    "port_is_free",
    "postgres_bindir",
    "reap_orphans",
    "redact_text",
    "redis_server_binary",
    "runtime_dir",
    "start_chroma",
    "start_openai_standin",
    "start_postgres",
    "start_redis",
    "start_service",
    "state_dir",
    "wait_gone",
]
