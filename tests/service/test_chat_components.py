"""The chat components on their own: built the integration guide's way, classification quality
against the stand-in, fallbacks, citation parsing and cache keys."""

from __future__ import annotations

import uuid

import pytest
from tria_service.chat import AsyncCustomerServiceAgent, Intent, IntentClassifier, SessionManager
from tria_service.chat.cache import ResponseCache, normalise
from tria_service.chat.knowledge import SearchHit
from tria_service.chat.prompts import cited, user_prompt
from tria_service.config import Settings

# Messages a customer means unambiguously: each must clear TRIA_ESCALATION_CONFIDENCE's default.
CLEAR = {
    "Where is my order? I need the tracking number for my parcel": Intent.ORDER_STATUS,
    "I was charged twice for my subscription and want a refund": Intent.BILLING,
    "The app crashes with an error message when I log in": Intent.TECHNICAL_SUPPORT,
    "This is unacceptable, your service is terrible and I am angry": Intent.COMPLAINT,
    "I want to speak to a real person, a human agent please": Intent.HUMAN_HANDOFF,
    "Hello, what are your opening hours?": Intent.GENERAL,
}


def hit(source_id: str, text: str = "Some text.") -> SearchHit:
    return SearchHit(f"{source_id}#0", source_id, source_id.title(), "Section", text, 0.5)


async def test_clear_messages_are_classified_above_the_escalation_threshold(
    seed_env: Settings,
) -> None:
    classifier = IntentClassifier(
        api_key=seed_env.openai_api_key.get_secret_value(), model="gpt-4o-mini", temperature=0.3
    )
    try:
        results = {message: await classifier.classify(message) for message in CLEAR}
    finally:
        await classifier.close()
    for message, result in results.items():
        assert result.intent is CLEAR[message], message
        assert result.error is None
        assert seed_env.tria_escalation_confidence <= result.confidence <= 1, message


async def test_a_failed_classification_falls_back_to_general_saying_why(
    seed_env: Settings,
) -> None:
    classifier = IntentClassifier(
        api_key=seed_env.openai_api_key.get_secret_value(), model="no-such-model", temperature=0
    )
    try:
        result = await classifier.classify("Where is my order?")
    finally:
        await classifier.close()
    assert (result.intent, result.confidence) == (Intent.GENERAL, 0.0)
    assert result.error is not None
    assert result.error.startswith("openai: HTTP 404")


async def test_the_agent_built_the_integration_guide_way_answers_and_persists(
    seed_env: Settings, migrated: None
) -> None:
    agent = AsyncCustomerServiceAgent(
        api_key=seed_env.openai_api_key.get_secret_value(),
        model="gpt-4o-mini",
        temperature=0.7,
        enable_rag=True,
        enable_escalation=True,
        enable_cache=True,
        enable_rate_limiting=True,
    )
    sessions = SessionManager(runtime=None)
    try:
        await agent.knowledge_base.ingest()
        reply = await agent.chat("How long do refunds take?", client_id=uuid.uuid4().hex)
        stored = await sessions.messages(reply.session_id)
    finally:
        await sessions.close()
        await agent.close()
    assert [s.source_id for s in reply.sources] == ["returns"]
    assert (reply.intent, reply.escalated, reply.cached) == (Intent.BILLING, False, False)
    assert [(m.role, m.content) for m in stored] == [
        ("user", "How long do refunds take?"),
        ("assistant", reply.reply),
    ]


def test_only_explicit_citations_of_retrieved_articles_count_in_citation_order() -> None:
    hits = [hit("returns"), hit("payments"), hit("passwords")]
    reply = (
        'Returns are free "within 30 days" (source: payments). Refunds take a week '
        "[Source: returns#1]; see also (sources: passwords, shipping). Our returns desk helps."
    )
    assert [h.source_id for h in cited(reply, hits)] == ["payments", "returns", "passwords"]
    assert cited("Our returns and payments pages explain it.", hits) == []


def test_the_prompt_carries_each_passage_under_its_source_line() -> None:
    prompt = user_prompt("When do refunds arrive?", [hit("returns", "Refunds take 5 days.")])
    assert "Source: returns\nRefunds take 5 days." in prompt
    assert prompt.endswith("Question: When do refunds arrive?")
    assert user_prompt("Hello", []) == "Hello"


@pytest.mark.parametrize(
    "variant",
    ["how long do refunds take", "  How long do REFUNDS take?? ", "How long\tdo refunds take."],
)
def test_cache_keys_ignore_case_spacing_and_closing_punctuation(variant: str) -> None:
    key = ResponseCache.key(variant, version="v1", model="m", knowledge="kb")
    assert key == ResponseCache.key(
        "How long do refunds take?", version="v1", model="m", knowledge="kb"
    )
    assert normalise(variant) == "how long do refunds take"


def test_cache_keys_change_with_the_knowledge_version_model_and_collection() -> None:
    keys = {
        ResponseCache.key("q", version="v1", model="m", knowledge="kb"),
        ResponseCache.key("q", version="v2", model="m", knowledge="kb"),
        ResponseCache.key("q", version="v1", model="m2", knowledge="kb"),
        ResponseCache.key("q", version="v1", model="m", knowledge="other"),
        ResponseCache.key("q", version="v1", model="m", knowledge=None),
    }
    assert len(keys) == 5
