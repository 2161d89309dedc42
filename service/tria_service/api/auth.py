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
) -> None:
    """401 unless the bearer token is one of ``accepted`` (unset ones skipped); every token is
    compared in constant time, so neither the match nor its position shows in the timing."""
    given = credentials.credentials.encode() if credentials is not None else b""
    matches = [
        secrets.compare_digest(given, token.get_secret_value().encode())
        for token in accepted
        if token is not None
    ]
    if not given or not any(matches):
        raise HTTPException(401, "unauthorized", headers=dict(challenge))
