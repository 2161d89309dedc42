"""The orchestrator's "Component Initialization": build the chat components on the shared
clients, load the knowledge base, and register each one's shutdown and diagnostics section.

Ingestion needs PostgreSQL, OpenAI and Chroma. When one of them was unhealthy at startup (it can
only be so when it is not critical) ingestion is skipped, said so in the log and in diagnostics,
and left to POST /api/v1/knowledge/reindex. When all three are critical, a failed ingestion
refuses startup like a failed dependency would: the service would answer without its knowledge.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from tria_service.chat.agent import AsyncCustomerServiceAgent
from tria_service.chat.cache import ResponseCache
from tria_service.chat.errors import KnowledgeError
from tria_service.chat.intents import IntentClassifier
from tria_service.chat.knowledge import KnowledgeBase
from tria_service.chat.rate_limit import RateLimiter
from tria_service.chat.sessions import SessionManager
from tria_service.clients import Clients
from tria_service.config import Dependency, Settings
from tria_service.production.health_monitor import HealthMonitor
from tria_service.production.lifecycle_manager import LifecycleManager
from tria_service.production.probes import ProbeResult, ServiceStatus
from tria_service.production.startup_orchestrator import StartupError
from tria_service.redis_guard import RedisGuard

KNOWLEDGE_NEEDS = (Dependency.DATABASE, Dependency.OPENAI, Dependency.CHROMA)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ChatComponents:
    """Everything the chat API uses, built once per app on the orchestrator's clients."""

    settings: Settings
    knowledge: KnowledgeBase
    classifier: IntentClassifier
    sessions: SessionManager
    cache: ResponseCache
    rate_limiter: RateLimiter
    agent: AsyncCustomerServiceAgent
    redis_guard: RedisGuard

    @classmethod
    def build(cls, settings: Settings, clients: Clients) -> ChatComponents:
        api_key = settings.openai_api_key.get_secret_value()
        knowledge = KnowledgeBase(api_key, clients=clients)
        classifier = IntentClassifier(
            api_key, settings.openai_model, settings.tria_classifier_temperature, clients=clients
        )
        sessions = SessionManager(clients=clients)
        cache = ResponseCache(clients.redis_guard, settings)
        rate_limiter = RateLimiter(clients.redis_guard, settings)
        agent = AsyncCustomerServiceAgent(
            api_key=api_key,
            model=settings.openai_model,
            temperature=settings.tria_agent_temperature,
            enable_rag=settings.tria_enable_rag,
            enable_escalation=settings.tria_enable_escalation,
            enable_cache=settings.tria_enable_cache,
            enable_rate_limiting=settings.tria_enable_rate_limiting,
            clients=clients,
            classifier=classifier,
            knowledge_base=knowledge,
            sessions=sessions,
            cache=cache,
            rate_limiter=rate_limiter,
        )
        guard = clients.redis_guard
        return cls(settings, knowledge, classifier, sessions, cache, rate_limiter, agent, guard)

    async def start(
        self,
        startup_results: Mapping[str, ProbeResult],
        monitor: HealthMonitor,
        lifecycle: LifecycleManager,
    ) -> None:
        """Register shutdown and diagnostics, then load the knowledge base.

        Shutdown runs in reverse: the agent (which uses all the others), the rate limiter, the
        cache, the knowledge base, the classifier, the sessions, then (registered earlier) the
        health monitor and the app's clients. The knowledge base's step waits for an ingestion
        in progress (itself bounded) to finish. The cache and the rate limiter hold nothing but
        Redis keys, through the shared guard: their steps log their final counters, which end
        with the process. The others share the app's clients, so their steps release nothing;
        each releases clients only when its component opened its own (built alone, the
        integration guide's way), and is registered so that every component has its step.
        """
        lifecycle.register("chat.sessions", self.sessions.close)
        lifecycle.register("chat.intent-classifier", self.classifier.close)
        lifecycle.register("chat.knowledge", self.knowledge.close)
        lifecycle.register("chat.cache", self.cache.close)
        lifecycle.register("chat.rate-limiter", self.rate_limiter.close)
        lifecycle.register("chat.agent", self.agent.close)
        monitor.register_component("knowledge", self.knowledge.diagnostics)
        monitor.register_component("intent_classifier", self.classifier.diagnostics)
        monitor.register_component("sessions", self.sessions.diagnostics)
        monitor.register_component("cache", self.cache.diagnostics)
        monitor.register_component("rate_limiter", self.rate_limiter.diagnostics)
        monitor.register_component("agent", self.agent.diagnostics)
        monitor.register_component("redis_guard", self.redis_guard.diagnostics)
        if self.settings.tria_enable_rag:
            await self._load_knowledge(startup_results)

    async def _load_knowledge(self, startup_results: Mapping[str, ProbeResult]) -> None:
        down = [d.value for d in KNOWLEDGE_NEEDS if not startup_results[d.value].ok]
        if down:
            self.knowledge.note_skipped(
                f"{', '.join(down)} unhealthy at startup; POST /api/v1/knowledge/reindex once "
                "it is back"
            )
            return
        started = time.perf_counter()
        try:
            await self.knowledge.ingest()
        except KnowledgeError as exc:
            if not all(self.settings.is_critical(d) for d in KNOWLEDGE_NEEDS):
                log.error("knowledge.startup_ingestion_failed", error=str(exc))
                return
            raise StartupError([_knowledge_failure(str(exc), started)]) from None


def _knowledge_failure(error: str, started: float) -> ProbeResult:
    return ProbeResult(
        name="knowledge",
        status=ServiceStatus.UNHEALTHY,
        latency_ms=round((time.perf_counter() - started) * 1000.0, 3),
        checked_at=datetime.now(UTC),
        error=f"ingestion failed: {error}",
        hint="check TRIA_KNOWLEDGE_DIR and OPENAI_EMBEDDING_MODEL, or leave openai or chroma out "
        "of TRIA_CRITICAL_DEPENDENCIES to start without the knowledge base",
    )
