"""What a chat component talks through: the app's shared clients, or its own when built alone.

The integration guide builds components as ``KnowledgeBase(api_key=...)``; in the service they get
the orchestrator's ``Clients`` instead, so no component opens connections of its own there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openai import AsyncOpenAI
from pydantic import SecretStr

from tria_service.clients import Clients
from tria_service.config import Settings, load_settings


@dataclass(frozen=True)
class Resources:
    """Settings, clients, and the OpenAI client for this component's key and endpoint."""

    settings: Settings
    clients: Clients
    openai: AsyncOpenAI
    owned: bool

    async def close(self) -> None:
        """Close the clients if this component opened them (shared ones belong to the app)."""
        if self.owned:
            await self.clients.close()


def resolve(
    api_key: str | None = None,
    *,
    base_url: str | None = None,
    settings: Settings | None = None,
    clients: Clients | None = None,
) -> Resources:
    """Shared clients when given, else clients of its own from ``settings`` (or the environment).

    An ``api_key`` or ``base_url`` other than the clients' own gets a copy of their OpenAI client
    with those options: the copy shares the connection pool.
    """
    if clients is not None:
        openai = clients.openai
        if api_key and api_key != openai.api_key:
            openai = openai.with_options(api_key=api_key)
        if base_url and base_url.rstrip("/") != str(openai.base_url).rstrip("/"):
            openai = openai.with_options(base_url=base_url)
        return Resources(clients.settings, clients, openai, owned=False)
    updates: dict[str, Any] = {}
    if api_key:
        updates["openai_api_key"] = SecretStr(api_key)
    if base_url:
        updates["openai_base_url"] = base_url
    if settings is None:
        settings = load_settings(**updates)
    elif updates:
        settings = settings.model_copy(update=updates)
    own = Clients(settings)
    return Resources(settings, own, own.openai, owned=True)
