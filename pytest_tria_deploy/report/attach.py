"""Allure attachments that go through the run's redaction first.

A suite attaches diagnostics, latency baselines and response bodies to explain a verdict; those
bodies come from the target and may carry secrets, so nothing reaches the results unredacted.
"""

from __future__ import annotations

import json
from typing import Any

import allure

from pytest_tria_deploy.redact import redact


def attach_json(name: str, data: Any) -> None:
    """Attach ``data`` as pretty JSON, redacted."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    allure.attach(redact(text), name=name, attachment_type=allure.attachment_type.JSON)


def attach_text(name: str, text: str) -> None:
    """Attach plain text, redacted."""
    allure.attach(redact(text), name=name, attachment_type=allure.attachment_type.TEXT)
