"""Redact a pytest report before anyone sees it: terminal, JUnit XML, xdist's controller.

The report goes through pytest's own (public) serialisation hooks, every string in it is
redacted, and it is rebuilt, so tracebacks keep their structure and their crash line.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pytest

from pytest_tria_deploy.redact import redact

R = TypeVar("R", pytest.TestReport, pytest.CollectReport)


def scrub(config: pytest.Config, report: R) -> R:
    """The same report, or a rebuilt one when something in it had to be masked."""
    data = config.hook.pytest_report_to_serializable(config=config, report=report)
    if data is None:
        return report
    clean = _redact_tree(data)
    if clean == data:
        return report
    rebuilt: R | None = config.hook.pytest_report_from_serializable(config=config, data=clean)
    return rebuilt if rebuilt is not None else report


def _redact_tree(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact_tree(v) for v in value)
    return value
