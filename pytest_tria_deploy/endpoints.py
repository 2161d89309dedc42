"""Where a target's parts answer: what a provider yields, and what fixtures connect to."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class Endpoints(BaseModel):
    """Resolved addresses and credentials of one target; secrets stay SecretStr until used."""

    model_config = ConfigDict(frozen=True)

    service_urls: list[str] = Field(min_length=1)
    database_url: SecretStr
    redis_url: SecretStr
    openai_base_url: str | None = None
    openai_api_key: SecretStr
    openai_model: str = "gpt-4o-mini"
    openai_embedding_model: str = "text-embedding-3-small"
    chroma_url: str
    chroma_collection: str = "tria_knowledge"
    diagnostics_token: SecretStr | None = None
    secret_key: SecretStr | None = None
    env_file: str | None = None

    def secrets(self) -> list[str]:
        """Every secret value, for the redactor."""
        values = [self.database_url, self.redis_url, self.openai_api_key]
        values += [s for s in (self.diagnostics_token, self.secret_key) if s is not None]
        return [v.get_secret_value() for v in values if v.get_secret_value()]
