"""Smoke: a short conversation end to end, on each instance, in a synthetic session that is
deleted afterwards, so no message or escalation stays behind."""

from __future__ import annotations

from typing import Any

import allure

from pytest_tria_deploy.conversations import SyntheticChat, Turn


async def test_three_turn_conversation(
    tria_chat: SyntheticChat, expected_answers: dict[str, Any]
) -> None:
    """A three-turn conversation: a cited answer, history kept, a complaint that escalates."""
    script = expected_answers["smoke"]
    turns: list[Turn] = []
    for number, step in enumerate(script, 1):
        with allure.step(f"turn {number}: {step['message']}"):
            session = turns[0].session_id if turns else None
            turn = await tria_chat.turn(step["message"], session)
            turns.append(turn)
            assert turn.session_id == turns[0].session_id, f"turn {number} opened a new session"
            if "source" in step:
                assert step["source"] in turn.source_ids, (
                    f"turn {number}: expected {step['source']}, cited {turn.source_ids}"
                )
            if "intent" in step:
                assert turn.intent == step["intent"], f"turn {number}: intent {turn.intent}"
            assert turn.escalated == step["escalated"], (
                f"turn {number}: escalated is {turn.escalated}, expected {step['escalated']}"
            )
    session_id = turns[0].session_id
    with allure.step("history: the session's messages, in order"):
        messages = await tria_chat.messages(session_id)
        expected = [
            pair
            for step, turn in zip(script, turns, strict=True)
            for pair in (("user", step["message"]), ("assistant", turn.reply))
        ]
        kept = [(m["role"], m["content"]) for m in messages]
        assert kept == expected, f"history lost or reordered: {[role for role, _ in kept]}"
    with allure.step("cleanup: the session and its escalation are deleted"):
        deleted = await tria_chat.delete(session_id)
        escalations = sum(step["escalated"] for step in script)
        assert (deleted["messages"], deleted["escalations"]) == (len(messages), escalations)
        assert await tria_chat.is_gone(session_id), "the deleted session is still there"
