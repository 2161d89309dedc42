"""Bearer tokens of the protected routes, checked in one place for every route that needs one."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping

from fastapi import HTTPException
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import SecretStr


def require_bearer(
    credentials: HTTPAuthorizationCredentials | None,
    accepted: Iterable[SecretStr | None],
    challenge: Mapping[str, str],
    detail: str = "unauthorized",
) -> None:
    """401 with ``detail`` unless the bearer token is one of ``accepted`` (unset ones skipped);
    every token is compared in constant time, so neither the match nor its position shows in the
    timing. ``detail`` is fixed text: what was sent is never echoed."""
    given = credentials.credentials.encode() if credentials is not None else b""
    matches = [
        secrets.compare_digest(given, token.get_secret_value().encode())
        for token in accepted
        if token is not None
    ]
    if not given or not any(matches):
        raise HTTPException(401, detail, headers=dict(challenge))
