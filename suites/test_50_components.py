"""The customer-service components, through the service's chat API, in synthetic sessions:
the intent classifier, the knowledge base, the agent, the answer cache and the rate limiter.
Known messages and their answers are in expected_answers.toml."""

from __future__ import annotations

import asyncio
from typing import Any

from pytest_tria_deploy.conversations import SyntheticChat
from pytest_tria_deploy.helpers import soft_step


async def test_intent_classifier(
    tria_chat: SyntheticChat, expected_answers: dict[str, Any]
) -> None:
    """The intent classifier classifies known messages into the right intents."""
    known = expected_answers["intents"]
    turns = await asyncio.gather(*(tria_chat.turn(case["message"]) for case in known))
    wrong: list[str] = []
    for case, turn in zip(known, turns, strict=True):
        with soft_step(f"{case['intent']}: {case['message']}", wrong):
            assert turn.intent == case["intent"], (
                f"{case['message']!r}: {turn.intent} (expected {case['intent']})"
            )
    assert not wrong, "intent classifier: " + "; ".join(wrong)


async def test_knowledge_retrieval(
    tria_chat: SyntheticChat, expected_answers: dict[str, Any]
) -> None:
    """The knowledge base retrieves the right article for known questions."""
    known = expected_answers["knowledge"]
    turns = await asyncio.gather(*(tria_chat.turn(case["question"]) for case in known))
    wrong: list[str] = []
    for case, turn in zip(known, turns, strict=True):
        with soft_step(f"{case['source']}: {case['question']}", wrong):
            assert case["source"] in turn.source_ids, (
                f"{case['question']!r}: {turn.source_ids or 'no sources'} "
                f"(expected {case['source']})"
            )
    assert not wrong, "knowledge base: " + "; ".join(wrong)


async def test_agent_answers_with_sources(
    tria_chat: SyntheticChat, expected_answers: dict[str, Any]
) -> None:
    """The agent answers a help-centre question itself, citing its sources."""
    case = expected_answers["agent"]
    turn = await tria_chat.turn(case["question"])
    assert turn.reply.strip(), "agent: empty reply"
    assert not turn.escalated, f"agent: handed a help-centre question to a human: {turn.reply!r}"
    cited = {source.source_id: source.title for source in turn.sources}
    assert cited.get(case["source"]) == case["title"], (
        f"agent: expected to cite {case['source']} ({case['title']!r}), cited {cited or 'nothing'}"
    )


async def test_cache_hits_on_repeat(
    tria_chat: SyntheticChat, expected_answers: dict[str, Any]
) -> None:
    """The answer cache serves a question asked again in a new session."""
    question = expected_answers["cache"]["question"]
    first = await tria_chat.turn(question)
    repeat = await tria_chat.turn(question)
    assert repeat.session_id != first.session_id
    assert repeat.cached, f"cache: {question!r} asked again was answered afresh (cached: false)"
    assert (repeat.reply, repeat.sources) == (first.reply, first.sources), (
        "cache: the cached answer differs from the first one"
    )


async def test_rate_limiter_active(
    tria_chat: SyntheticChat, expected_answers: dict[str, Any]
) -> None:
    """The rate limiter counts every turn: RateLimit-Remaining drops by one per turn."""
    first_message, second_message = expected_answers["rate_limit"]["messages"]
    first = await tria_chat.turn(first_message)
    second = await tria_chat.turn(second_message, first.session_id)
    before, after = first.rate_remaining, second.rate_remaining
    missing = "rate limiter: no RateLimit headers: check TRIA_ENABLE_RATE_LIMITING and Redis"
    assert first.rate_limit, missing
    assert before is not None, missing
    assert after is not None, missing
    assert after == before - 1, (
        f"rate limiter: RateLimit-Remaining went {before} -> {after} over two turns of one "
        "session (expected a drop of one)"
    )
