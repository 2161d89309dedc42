"""suites/expected_answers.toml against what the service ships: the articles (source ids and
titles), the intents, the dependencies and the metric families. The suites never import the
service, so this is where their known answers are kept from drifting away from it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from tria_service.chat.articles import read_folder
from tria_service.chat.intents import Intent
from tria_service.config import Dependency
from tria_service.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[2]
EXPECTED: dict[str, Any] = tomllib.loads(
    (ROOT / "suites" / "expected_answers.toml").read_text(encoding="utf-8")
)
TITLES = {
    article.source_id: article.title for article in read_folder(ROOT / "service/knowledge").articles
}


def cited_sources() -> list[str]:
    """Every source id the file expects a reply to cite."""
    steps = [*EXPECTED["knowledge"], EXPECTED["agent"], *EXPECTED["smoke"]]
    return [step["source"] for step in steps if "source" in step]


def test_the_shipped_knowledge_is_read() -> None:
    assert len(TITLES) >= 10
    assert "README" not in TITLES


@pytest.mark.parametrize("source", cited_sources())
def test_every_expected_source_is_a_shipped_article(source: str) -> None:
    assert source in TITLES, f"{source}: no service/knowledge/{source}.md"


def test_the_agent_cites_the_article_by_its_title() -> None:
    agent = EXPECTED["agent"]
    assert TITLES[agent["source"]] == agent["title"]


def test_one_known_message_for_every_intent_and_no_other() -> None:
    known = [case["intent"] for case in EXPECTED["intents"]]
    assert sorted(known) == sorted(intent.value for intent in Intent)


def test_smoke_intents_are_intents_and_only_a_complaint_escalates() -> None:
    steps = EXPECTED["smoke"]
    assert len(steps) == 3
    assert {step["intent"] for step in steps if "intent" in step} <= {i.value for i in Intent}
    escalating = [step for step in steps if step["escalated"]]
    assert [step.get("intent") for step in escalating] == [Intent.COMPLAINT.value]
    assert any("source" in step for step in steps)


def test_the_cache_and_rate_limit_messages_are_known_questions() -> None:
    """Questions the knowledge check already proves answerable (an escalated or failed turn is
    never cached, so an unanswerable cache question could never hit)."""
    questions = {case["question"] for case in EXPECTED["knowledge"]}
    assert EXPECTED["cache"]["question"] in questions
    assert set(EXPECTED["rate_limit"]["messages"]) <= questions
    assert len(EXPECTED["rate_limit"]["messages"]) == 2


def test_health_names_every_dependency() -> None:
    assert sorted(EXPECTED["health"]["dependencies"]) == sorted(d.value for d in Dependency)


def test_health_metrics_are_the_services() -> None:
    families = {metric.name for metric in ServiceMetrics().registry.collect()}
    missing = set(EXPECTED["health"]["metrics"]) - families
    assert not missing
