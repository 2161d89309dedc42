"""Tria Deploy: a pytest plugin that decides whether a Tria deployment may take traffic.

The public surface: the models a suite or a hook touches (Target, Budgets, Endpoints, Stage),
the read-only and rolled-back transaction helpers for protected databases, the namespaced Redis
key helper, synthetic conversations through the service's chat API (what ``tria_chat`` yields),
and the one redaction every output goes through.

The pydantic models are imported on first use: pytest imports this package for every run
(through the plugin's entry point), and an unrelated project should not pay for pydantic.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from pytest_tria_deploy.redact import redact, register_secrets
from pytest_tria_deploy.stages import BUILTIN_STAGES, Stage

if TYPE_CHECKING:
    from pytest_tria_deploy.conversations import ChatError, CleanupError, SyntheticChat, Turn
    from pytest_tria_deploy.endpoints import Endpoints
    from pytest_tria_deploy.helpers import KeyNamespace, read_only, rolled_back
    from pytest_tria_deploy.provision.base import Provider, ProvisionError
    from pytest_tria_deploy.targets import Budgets, Target

_LAZY = {
    "Budgets": "targets",
    "ChatError": "conversations",
    "CleanupError": "conversations",
    "Endpoints": "endpoints",
    "KeyNamespace": "helpers",
    "Provider": "provision.base",
    "ProvisionError": "provision.base",
    "SyntheticChat": "conversations",
    "Target": "targets",
    "Turn": "conversations",
    "read_only": "helpers",
    "rolled_back": "helpers",
}

__all__ = [
    "BUILTIN_STAGES",
    "Budgets",
    "ChatError",
    "CleanupError",
    "Endpoints",
    "KeyNamespace",
    "Provider",
    "ProvisionError",
    "Stage",
    "SyntheticChat",
    "Target",
    "Turn",
    "read_only",
    "redact",
    "register_secrets",
    "rolled_back",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
