"""``${VAR}`` and ``${VAR:-default}`` references: resolved late, so tria.toml holds no secrets."""

from __future__ import annotations

import re
from collections.abc import Mapping

_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class MissingVariable(LookupError):
    """A reference without a default names a variable that is unset or empty."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)


def missing(text: str, env: Mapping[str, str]) -> list[str]:
    """Every variable ``text`` needs that is unset or empty and has no default."""
    return [
        m["name"]
        for m in _REFERENCE.finditer(text)
        if not env.get(m["name"]) and m["default"] is None
    ]


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Substitute every reference; raises MissingVariable for the first one that cannot be."""

    def substitute(match: re.Match[str]) -> str:
        value = env.get(match["name"], "")
        if value:
            return value
        if match["default"] is not None:
            return match["default"]
        raise MissingVariable(match["name"])

    return _REFERENCE.sub(substitute, text)
