"""Allure's categories.json: why a check did not simply pass, sorted into five causes.

Allure puts a result in EVERY category whose ``matchedStatuses`` holds its status and whose
``messageRegex`` matches its ``statusDetails.message`` (Allure 2 with Java's ``matches()``: the
whole message, DOTALL; Allure 3 with JavaScript's ``RegExp(regex, "s").test``: anywhere). So each
pattern here is anchored (``^…$``), spans lines with ``[\\s\\S]``, and the categories exclude each
other: by status first, then by negative look-ahead (unreachable wins over misconfigured, both
over a product defect).

The messages are the ones allure-pytest takes from the exception (``Failed: …``, ``Skipped: …``,
``ConnectionError: …``), worded by the plugin and the suites:

- blocked tests are skipped with ``blocked: <stage> failed: <nodeid>: <reason>`` (gate.py);
- a dependency that does not answer: ``timed out after Xs`` (``helpers.timed_out``),
  ``… did not answer …`` / ``did not accept a connection``, a refused connection, or a provider
  that could not start the target (``provider 'local' failed: …``);
- a misconfiguration names the variable: ``NAME is …``, ``NAME has …``, ``NAME does not …``,
  ``NAME disagrees …``, a refused credential or token, a missing env file or diagnostics_token;
- a budget overrun is a warning on a passing test (``… is over the readiness_ms budget: …``);
  ``allure_warnings`` gives the warnings to Allure as the passing result's status details;
- anything else that failed is a product defect. A *broken* result (an unexpected exception,
  not an assertion) that matches none is left to Allure's own "Test defects".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BLOCKED = "Blocked by an earlier stage"
UNREACHABLE = "Dependency unreachable"
MISCONFIGURED = "Misconfiguration"
BUDGET = "Budget exceeded"
PRODUCT = "Product defect"

BLOCKED_SIGNS = (r"\bblocked: \S+ failed: ",)
UNREACHABLE_SIGNS = (
    r"timed out after \d",
    r"did not answer",
    r"did not accept a connection",
    r"[Cc]onnection refused",
    r"ConnectionRefusedError",
    r"Connect call failed",
    r"ConnectError",
    r"provider '[^'\n]*' failed",
)
MISCONFIGURED_SIGNS = (
    r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]* (?:is|has|does not|disagrees)\b",
    r"refused the (?:credentials|diagnostics token)",
    r"env file \S+ (?:does not exist|cannot be read)",
    r"has no diagnostics_token",
)
BUDGET_SIGNS = (r"is over the \S+ budget",)


def _any(signs: Sequence[str]) -> str:
    return "(?:" + "|".join(signs) + ")"


def _containing(signs: Sequence[str], *, unless: Sequence[str] = ()) -> str:
    """A whole message holding one of ``signs`` and none of ``unless``."""
    guard = rf"(?![\s\S]*{_any(unless)})" if unless else ""
    return rf"^{guard}[\s\S]*{_any(signs)}[\s\S]*$"


def _none_of(signs: Sequence[str]) -> str:
    """A whole message holding none of ``signs``."""
    return rf"^(?![\s\S]*{_any(signs)})[\s\S]*$"


CATEGORIES: tuple[dict[str, Any], ...] = (
    {
        "name": BLOCKED,
        "description": "Not run: a critical stage it depends on failed (the reason names it).",
        "matchedStatuses": ["skipped"],
        "messageRegex": _containing(BLOCKED_SIGNS),
    },
    {
        "name": UNREACHABLE,
        "description": "A dependency or the service did not answer, refused the connection or "
        "timed out, or the target could not be started.",
        "matchedStatuses": ["failed", "broken"],
        "messageRegex": _containing(UNREACHABLE_SIGNS),
    },
    {
        "name": MISCONFIGURED,
        "description": "A variable, credential, token or env file of the target is wrong or "
        "missing (the message names it and the fix).",
        "matchedStatuses": ["failed", "broken"],
        "messageRegex": _containing(MISCONFIGURED_SIGNS, unless=UNREACHABLE_SIGNS),
    },
    {
        "name": BUDGET,
        "description": "Passed, but slower than the target's budget (a warning: WARN verdict).",
        "matchedStatuses": ["passed"],
        "messageRegex": _containing(BUDGET_SIGNS),
    },
    {
        "name": PRODUCT,
        "description": "The deployment answered, and answered wrong.",
        "matchedStatuses": ["failed"],
        "messageRegex": _none_of((*UNREACHABLE_SIGNS, *MISCONFIGURED_SIGNS)),
    },
)
