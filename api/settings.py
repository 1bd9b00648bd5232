"""One typed settings object, read once from the environment and `.env` (TRACKIT_ prefix)."""

from __future__ import annotations

import json
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_SECRETS_FILE = ".trackit-secrets.json"
# Values that must never reach production: the empty ones and the ones in our docs.
DEFAULT_SECRETS = {"", "change-me", "whsec_test", "dev"}


class ConfigError(RuntimeError):
    """Configuration that must stop the process at start-up, with a message saying why."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TRACKIT_", env_file=".env", extra="ignore", populate_by_name=True
    )

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite://trackit.db"
    redis_url: str | None = None
    # Keys in Redis (broker queues, pub/sub channels) live under this namespace, so
    # several deployments or test runs can share one Redis.
    redis_namespace: str = "trackit"
    stripe_webhook_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_tolerance_s: int = 300
    webhook_max_bytes: int = 1024 * 1024
    # A database that hangs (network black hole) answers 503 after this, so Stripe retries.
    webhook_store_timeout_s: float = 5.0
    jwt_secret: str = ""
    alert_webhook_url: str | None = None
    sentry_dsn: str | None = Field(
        default=None, validation_alias=AliasChoices("TRACKIT_SENTRY_DSN", "SENTRY_DSN")
    )
    stripe_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("TRACKIT_STRIPE_API_KEY", "STRIPE_API_KEY")
    )
    stripe_api_base: str = "https://api.stripe.com"
    match_window_s: int = 3 * 24 * 3600
    max_attempts: int = 10
    retry_base_s: float = 1.0
    retry_max_s: float = 3600.0
    sweep_interval_s: float = 30.0
    sweep_min_age_s: float = 60.0
    stuck_after_s: int = 3600
    # `trackit worker` serves its own /metrics on this port when set (distributed mode).
    worker_metrics_port: int | None = None
    # Reconciliations a process has in flight; the batcher groups them into shared
    # transactions, so 8 cut the 100 events/s push latency to about half of 4's, and 16
    # (two batches of ~8 in flight) drains a backlog ~1.4x faster than 8 at less CPU
    # per event (`python -m bench.reconcile --threads 8` / `16`, back to back).
    worker_threads: int = 16
    worker_timeout_ms: int = 100
    subscriber_buffer: int = 256
    max_query_depth: int = 10
    max_query_tokens: int = 2000
    log_level: str = "INFO"
    dev_secrets_file: str = DEV_SECRETS_FILE

    @field_validator("stripe_webhook_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @property
    def distributed(self) -> bool:
        """Distributed mode follows from configuration alone: a Redis URL is set."""
        return bool(self.redis_url)

    @property
    def production(self) -> bool:
        return self.env == "production"

    def with_dev_secrets(self) -> Settings:
        """Fill missing secrets: refuse in production, else generate once and keep them
        in `dev_secrets_file` (git-ignored), so restarts keep the same secrets."""
        problems = self._secret_problems()
        if not problems:
            return self
        if self.production:
            raise ConfigError(
                "refusing to start in production with a missing or default secret: "
                + "; ".join(f"TRACKIT_{name.upper()} {why}" for name, why in problems.items())
            )
        path = Path(self.dev_secrets_file)
        stored = _read_dev_secrets(path)
        generated = {
            "jwt_secret": stored.get("jwt_secret") or secrets.token_urlsafe(32),
            "stripe_webhook_secrets": stored.get("stripe_webhook_secrets")
            or "whsec_" + secrets.token_urlsafe(24),
        }
        if generated != stored:
            # Created private: the file holds secrets.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(generated, indent=2))
        update: dict[str, object] = {}
        if "jwt_secret" in problems:
            update["jwt_secret"] = generated["jwt_secret"]
        if "stripe_webhook_secrets" in problems:
            update["stripe_webhook_secrets"] = [generated["stripe_webhook_secrets"]]
        return self.model_copy(update=update)

    def _secret_problems(self) -> dict[str, str]:
        """Secret settings that cannot be used as they are, with the reason."""
        problems = {}
        if not self.jwt_secret:
            problems["jwt_secret"] = "is not set"
        elif self.jwt_secret in DEFAULT_SECRETS:
            problems["jwt_secret"] = "is a default value"
        if not self.stripe_webhook_secrets:
            problems["stripe_webhook_secrets"] = "is not set"
        elif any(s in DEFAULT_SECRETS for s in self.stripe_webhook_secrets):
            problems["stripe_webhook_secrets"] = "holds a default value"
        return problems


def _read_dev_secrets(path: Path) -> dict[str, str]:
    try:
        stored = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {k: v for k, v in stored.items() if isinstance(v, str)} if isinstance(stored, dict) else {}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, with development secrets filled in."""
    return Settings().with_dev_secrets()
