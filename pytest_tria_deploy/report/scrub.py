"""Redact a pytest report before anyone sees it: terminal, JUnit XML, xdist's controller.

The report goes through pytest's own (public) serialisation hooks, every string in it is
redacted, and it is rebuilt, so tracebacks keep their structure and their crash line. Most
reports carry nothing to mask, so a cheap look at their text comes first.

The node id and location are kept: they are the test's identity (xdist matches reports to items
by id, and --lf and JUnit history key on it), and they are written in the suite's source, so a
run's resolved secrets never reach them (instance ids are host:port only).
"""

from __future__ import annotations

from typing import TypeVar

import pytest

from pytest_tria_deploy.redact import redact, redact_tree

R = TypeVar("R", pytest.TestReport, pytest.CollectReport)
_IDENTITY = frozenset({"nodeid", "location"})


def scrub(config: pytest.Config, report: R) -> R:
    """The same report, or a rebuilt one when something in it had to be masked."""
    if not _needs_scrub(report):
        return report
    data = config.hook.pytest_report_to_serializable(config=config, report=report)
    if data is None:
        return report
    clean = {k: v if k in _IDENTITY else redact_tree(v) for k, v in data.items()}
    if clean == data:
        return report
    rebuilt: R | None = config.hook.pytest_report_from_serializable(config=config, data=clean)
    return rebuilt if rebuilt is not None else report


def _needs_scrub(report: pytest.TestReport | pytest.CollectReport) -> bool:
    """Whether any text the report carries changes under redaction."""
    texts = [content for _, content in report.sections]
    if report.longrepr is not None:
        texts.append(report.longreprtext)
    texts += [str(value) for _, value in getattr(report, "user_properties", ())]
    return any(redact(text) != text for text in texts)
