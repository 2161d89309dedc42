"""``${VAR}`` and ``${VAR:-default}`` references: resolved late, so tria.toml holds no secrets."""

from __future__ import annotations

import re
from collections.abc import Mapping

_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class MissingVariables(LookupError):
    """References without a default name variables that are unset or empty; ``names`` has all."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(", ".join(names))


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Substitute every reference; raises MissingVariables naming every one that cannot be."""
    absent: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        value = env.get(match["name"], "")
        if value:
            return value
        if match["default"] is not None:
            return match["default"]
        absent.append(match["name"])
        return ""

    result = _REFERENCE.sub(substitute, text)
    if absent:
        raise MissingVariables(list(dict.fromkeys(absent)))
    return result
