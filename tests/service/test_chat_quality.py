"""Answers over the shipped help centre (service/knowledge) with the OpenAI stand-in, over HTTP:
each realistic question is answered from, and cites, the article that answers it.

The stand-in's embeddings and intent choice are lexical similarity, so this is a tuning check of
the articles, the intents' descriptions and the retrieval settings (TRIA_RAG_MIN_SCORE, top k)
against that similarity: it is not a check of a real model's judgement.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tria_service.config import Settings

from tests.service.helpers import say, serve_in_process

SHIPPED = Path(__file__).resolve().parents[2] / "service" / "knowledge"

# question → the article that answers it
QUESTIONS = {
    "What are your opening hours?": "contact-support-hours",
    "How do I track my order?": "order-tracking",
    "I was charged twice for my order": "billing-disputes-double-charges",
    "How do I get a VAT invoice for my order?": "invoices-vat-receipts",
    "Can I pay in instalments with Klarna?": "payment-methods",
    "The password reset email never arrived": "account-password-reset",
    "How do I return an item?": "returns-refunds",
    "My parcel arrived damaged": "damaged-missing-items",
    "How do I cancel my membership?": "membership-plans-cancellation",
    "How do I turn on two-factor authentication?": "two-factor-login",
    "How long is the warranty?": "warranty-repairs",
    "Can I exchange an item for a different size?": "exchanges",
    "How do I delete my personal data?": "privacy-data-requests",
    "What delivery options do you have?": "delivery-shipping-options",
}


async def test_realistic_questions_cite_the_article_that_answers_them(
    chat_settings: Callable[..., Settings],
) -> None:
    settings = chat_settings(TRIA_KNOWLEDGE_DIR=str(SHIPPED))
    async with serve_in_process(settings) as running:
        replies = {question: await say(running.client, question) for question in QUESTIONS}

    cited = {q: [s["source_id"] for s in reply["sources"]] for q, reply in replies.items()}
    assert cited == {question: [article] for question, article in QUESTIONS.items()}
    escalated = [question for question, reply in replies.items() if reply["escalated"]]
    assert escalated == []  # understood, and answered from the help centre
    hours = replies["What are your opening hours?"]["reply"]
    assert "8am to 8pm Monday to Friday" in hours  # the hours themselves, not a sentence about them
