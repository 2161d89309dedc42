"""The customer-service components: sessions, intents, knowledge, cache, rate limits, the agent."""

from tria_service.chat.agent import AsyncCustomerServiceAgent, ChatReply, EscalationReason
from tria_service.chat.intents import Intent, IntentClassifier
from tria_service.chat.knowledge import IngestReport, KnowledgeBase, SearchHit
from tria_service.chat.sessions import SessionManager

__all__ = [
    "AsyncCustomerServiceAgent",
    "ChatReply",
    "EscalationReason",
    "IngestReport",
    "Intent",
    "IntentClassifier",
    "KnowledgeBase",
    "SearchHit",
    "SessionManager",
]
