"""Tria Deploy: a pytest plugin that decides whether a Tria deployment may take traffic.

The public surface: the models a suite or a hook touches (Target, Budgets, Endpoints, Stage),
the read-only helper for protected databases, the namespaced Redis key helper, and the
one redaction every output goes through.
"""

from pytest_tria_deploy.endpoints import Endpoints
from pytest_tria_deploy.helpers import KeyNamespace, read_only
from pytest_tria_deploy.provision.base import Provider, ProvisionError
from pytest_tria_deploy.redact import redact, register_secrets
from pytest_tria_deploy.stages import BUILTIN_STAGES, Stage
from pytest_tria_deploy.targets import Budgets, Target

__all__ = [
    "BUILTIN_STAGES",
    "Budgets",
    "Endpoints",
    "KeyNamespace",
    "Provider",
    "ProvisionError",
    "Stage",
    "Target",
    "read_only",
    "redact",
    "register_secrets",
]
