"""A passing test's warnings (a budget overrun, a degraded dependency) reach Allure as the
result's status details, so that categories.json can sort them ("Budget exceeded").

Allure categories see nothing of a result but its status, message and trace; a warning is not a
failure, so the status stays ``passed`` and the warnings become ``statusDetails.message``, which
Allure's model allows on a passed result (allure-pytest itself puts "XPASS …" there). A failure's
own details are never replaced.

allure-pytest writes a test's result when the test has finished (its ``pytest_runtest_logfinish``),
right after the test's teardown report: the engine notes each finished test's warnings at that
report, and this allure-commons plugin puts them on the next result written in this process,
which is that test's (tests run one after the other in a process; xdist workers each have their
own engine and listener).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import allure_commons
from allure_commons.model2 import Status, StatusDetails


class WarningDetails:
    """Holds the last finished test's warnings until allure-pytest writes its result."""

    def __init__(self) -> None:
        self.pending: list[str] = []

    def note(self, warnings: Sequence[str]) -> None:
        """The warnings of the test that just finished (none: an empty list)."""
        self.pending = list(warnings)

    @allure_commons.hookimpl(tryfirst=True)
    def report_result(self, result: Any) -> None:
        warnings, self.pending = self.pending, []
        if warnings and result.status == Status.PASSED and result.statusDetails is None:
            result.statusDetails = StatusDetails(message="\n".join(warnings))


def register() -> tuple[WarningDetails, Callable[[], None]]:
    """Add a WarningDetails to allure-commons (process-wide); call the second item to remove it."""
    details = WarningDetails()
    allure_commons.plugin_manager.register(details)
    return details, lambda: allure_commons.plugin_manager.unregister(details)
