"""Intent classification: one chat completion with a JSON schema, validated with pydantic.

The schema's enum lists every intent, and the property's description says what each one covers,
so the model (or the stand-in, which chooses by similarity to these descriptions) picks among
known options. Any failure (OpenAI error, timeout, refusal, JSON that does not validate) gives
``general`` with confidence 0, and the reason is logged: classification never raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import BaseModel, Field, ValidationError

from tria_service.chat.resources import Resources, resolve
from tria_service.clients import Clients
from tria_service.config import Settings
from tria_service.production.failures import describe_error
from tria_service.redaction import redact

# Earlier messages sent with the one to classify ("yes, please do" needs what came before).
CONTEXT_MESSAGES = 4

log = structlog.get_logger(__name__)


class Intent(StrEnum):
    ORDER_STATUS = "order_status"
    BILLING = "billing"
    TECHNICAL_SUPPORT = "technical_support"
    COMPLAINT = "complaint"
    HUMAN_HANDOFF = "human_handoff"
    GENERAL = "general"


# What each intent covers, in the customers' words, including the help-centre topics that belong to
# it: the model (and the stand-in, which chooses by similarity to these phrases) needs to know that
# Klarna is a payment question or that two-factor codes are technical support.
DESCRIPTIONS: dict[Intent, str] = {
    Intent.ORDER_STATUS: (
        "where is my order, order tracking, tracking number, parcel or package, delivery date, "
        "delivery options, shipping status, late or missing delivery, damaged or missing item"
    ),
    Intent.BILLING: (
        "invoice, VAT invoice, VAT receipt, charge, charged twice, refund, payment, card, "
        "payment methods, PayPal, Klarna, pay in instalments, gift card, price, membership fee, "
        "subscription, cancel membership, return for a refund"
    ),
    Intent.TECHNICAL_SUPPORT: (
        "app or website not working, error message, cannot log in, password reset, "
        "verification code, two-factor authentication, change email address, crash, bug, "
        "account access"
    ),
    Intent.COMPLAINT: (
        "unhappy, unacceptable, terrible service, angry, disappointed, rude staff, "
        "make a complaint, complain"
    ),
    Intent.HUMAN_HANDOFF: (
        "talk to a human, speak to an agent, real person, representative, call me back"
    ),
    Intent.GENERAL: (
        "hello, hi, thanks, greeting, opening hours, phone number, contact details, exchanges, "
        "warranty, privacy, personal data, any other question"
    ),
}

SYSTEM_PROMPT = (
    "You classify the latest customer message sent to the customer-service chat of an online "
    "retailer. Choose exactly one intent from the schema, using the earlier messages only to "
    "understand short replies. Prefer complaint when the customer is unhappy with the service, "
    "and human_handoff when they ask for a person. Give your confidence in the choice as a "
    "number from 0 to 1."
)


class IntentResult(BaseModel):
    """The JSON the model must return."""

    intent: Intent
    confidence: float = Field(ge=0.0, le=1.0)


@dataclass(frozen=True)
class Classification:
    """An intent with its confidence; ``error`` says why it fell back to general, if it did."""

    intent: Intent
    confidence: float
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class _Counters:
    classified: int = 0
    fallbacks: int = 0
    last_fallback_reason: str | None = None
    last_fell_back: bool = False


def response_format() -> ResponseFormatJSONSchema:
    """The strict JSON schema sent as response_format."""
    listing = "; ".join(f"{intent.value}: {text}" for intent, text in DESCRIPTIONS.items())
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "intent_classification",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "intent": {
                        "type": "string",
                        "enum": [intent.value for intent in Intent],
                        "description": f"The customer's intent. {listing}",
                    },
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                },
                "required": ["intent", "confidence"],
                "additionalProperties": False,
            },
        },
    }


class IntentClassifier:
    """Classifies customer messages into Intent with a confidence."""

    def __init__(
        self,
        api_key: str | None = None,
        model: str | None = None,
        temperature: float | None = None,
        *,
        base_url: str | None = None,
        settings: Settings | None = None,
        clients: Clients | None = None,
    ) -> None:
        self._resources: Resources = resolve(
            api_key, base_url=base_url, settings=settings, clients=clients
        )
        self.settings = self._resources.settings
        self.model = model or self.settings.openai_model
        self.temperature = (
            self.settings.tria_classifier_temperature if temperature is None else temperature
        )
        self._format = response_format()
        self._counters = _Counters()

    async def close(self) -> None:
        await self._resources.close()

    async def classify(
        self, message: str, history: Sequence[ChatCompletionMessageParam] = ()
    ) -> Classification:
        """The message's intent; on any failure ``general`` with confidence 0 (logged)."""
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            *list(history)[-CONTEXT_MESSAGES:],
            {"role": "user", "content": message},
        ]
        try:
            async with asyncio.timeout(self.settings.tria_openai_request_timeout):
                completion = await self._resources.openai.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    temperature=self.temperature,
                    response_format=self._format,
                    max_completion_tokens=self.settings.tria_agent_max_tokens,
                )
            content = completion.choices[0].message.content
            if not content:
                return self._fallback("the model returned no content (refusal or empty)")
            result = IntentResult.model_validate_json(content)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            return self._fallback(f"invalid classification JSON ({problems})")
        except Exception as exc:
            return self._fallback(describe_error(exc, self.settings))
        self._counters.classified += 1
        self._counters.last_fell_back = False
        return Classification(result.intent, result.confidence)

    async def diagnostics(self) -> dict[str, Any]:
        """warn while the latest classification fell back: every message is then ``general``."""
        counters = self._counters
        return {
            "status": "warn" if counters.last_fell_back else "pass",
            "model": self.model,
            "temperature": self.temperature,
            "classified": counters.classified,
            "fallbacks": counters.fallbacks,
            "last_fallback_reason": counters.last_fallback_reason,
        }

    def _fallback(self, reason: str) -> Classification:
        """``general`` with confidence 0; the reason, redacted here whatever made it, goes to the
        log, the caller and diagnostics."""
        reason = redact(reason, self.settings.secret_values())
        log.warning("intent.fallback", model=self.model, reason=reason)
        counters = self._counters
        counters.fallbacks += 1
        counters.last_fallback_reason, counters.last_fell_back = reason, True
        return Classification(Intent.GENERAL, 0.0, reason)
