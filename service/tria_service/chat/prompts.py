"""What the agent says to the model and to the customer: prompts, fixed replies, citations.

Retrieved passages travel in the user message as a ``Context:`` block followed by ``Question:``, a
layout models follow well. Each passage is its article's title as a heading, a ``Source: <id>``
line, then the section's name leading into its text: a section often states its topic only in its
name ("Opening hours" over "We are available from 8am to 8pm"), and a heading line is read as a
label rather than as part of the passage, so the name goes with the text, as it does in what is
embedded. The reply cites passages as ``(source: <id>)``, which is how the sources actually used
are read back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tria_service.chat.knowledge import SearchHit

SYSTEM_PROMPT = (
    "You are Tria, the customer-service assistant of Northwind Home, an online retailer of "
    "home goods and electronics. Answer in a friendly and concise way, in the customer's "
    "language. Use only the help-centre passages that come with the question; never invent "
    "policies, prices, dates or order details. If those passages do not answer the question, "
    "say that you do not have that information and offer to connect the customer with a human "
    "agent."
)

COMPLAINT_REPLY = (
    "I'm sorry about your experience. I have passed your complaint to our customer care team, "
    "and a human agent will follow up with you shortly."
)
HANDOFF_REPLY = (
    "Of course. I have asked a human agent to take over this conversation, and they will "
    "follow up with you shortly."
)
UNAVAILABLE_ESCALATED_REPLY = (
    "I'm sorry, I cannot answer right now because of a technical problem. I have passed your "
    "message to a human agent, who will follow up with you shortly."
)
UNAVAILABLE_REPLY = (
    "I'm sorry, I cannot answer right now because of a technical problem. Please try again in "
    "a few minutes."
)
LOW_CONFIDENCE_NOTE = (
    "I'm not completely sure I have understood your request, so I have also asked a human agent "
    "to follow up with you."
)
REPEATED_FAILURE_NOTE = (
    "I'm sorry I have not been able to help so far. A human agent will follow up with you shortly."
)

_CITATION = re.compile(r"\bsources?\s*[:=]\s*([^)\]\n]+)", re.IGNORECASE)
_TOKEN_SPLIT = re.compile(r"[\s,;]+")


def user_prompt(message: str, hits: Sequence[SearchHit]) -> str:
    """The customer's message, preceded by the retrieved passages when there are any."""
    if not hits:
        return message
    passages = "\n\n".join(
        f"### {hit.title}\nSource: {hit.source_id}\n{_lead(hit.section)}{hit.text}" for hit in hits
    )
    return (
        "Answer from the help-centre passages below and cite each one you use as "
        f"(source: ID).\n\nContext:\n{passages}\n\nQuestion: {message}"
    )


def _lead(section: str) -> str:
    return f"{section} — " if section else ""


def cited(reply: str, hits: Sequence[SearchHit]) -> list[SearchHit]:
    """The retrieved articles the reply cites, once each, in the order it cites them."""
    known = {hit.source_id: hit for hit in reversed(hits)}  # the best hit of each source wins
    found: dict[str, SearchHit] = {}
    for span in _CITATION.findall(reply):
        for token in _TOKEN_SPLIT.split(span):
            source_id = token.strip(" .'\"`*").split("#", 1)[0]
            if source_id in known:
                found.setdefault(source_id, known[source_id])
    return list(found.values())
