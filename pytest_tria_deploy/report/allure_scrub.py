"""Allure's results go through the run's redaction before allure-pytest's file logger writes them.

allure-pytest takes a failed test's message from the exception itself
(``call.excinfo.exconly()``), and a failed fixture's message and trace from the raw exception,
not from the report the engine has scrubbed; so a secret in an exception's message would reach
the results as it is. This allure-commons plugin sees every result and container first
(``tryfirst``) and redacts each string in it, in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import allure_commons
import attr

from pytest_tria_deploy.redact import redact


class AllureScrubber:
    """Redacts results and containers before any allure-commons reporter writes them."""

    @allure_commons.hookimpl(tryfirst=True)
    def report_result(self, result: Any) -> None:
        scrub_model(result)

    @allure_commons.hookimpl(tryfirst=True)
    def report_container(self, container: Any) -> None:
        scrub_model(container)


def scrub_model(item: Any) -> None:
    """Redact every string of an allure model object (attrs) and of the objects it holds."""
    for field in attr.fields(type(item)):
        setattr(item, field.name, _clean(getattr(item, field.name)))


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_clean(element) for element in value]
    if attr.has(type(value)):
        scrub_model(value)
    return value


def register() -> Callable[[], None]:
    """Add a scrubber to allure-commons (process-wide); call the result to remove it again."""
    scrubber = AllureScrubber()
    allure_commons.plugin_manager.register(scrubber)
    return lambda: allure_commons.plugin_manager.unregister(scrubber)
