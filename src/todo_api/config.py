"""Settings from the environment (and `.env`), checked once at start-up.

Production refuses to start with settings that would be unsafe rather than running insecurely.
"""

from __future__ import annotations

import ipaddress
import secrets
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_SECRET_BYTES = 32
_WEAK_SECRETS = frozenset({"changeme", "secret", "change-me", "dev", "development", "password"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "development"
    database_url: SecretStr | None = None
    secret_key: SecretStr | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_allow_credentials: bool = True
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (IPs or CIDRs). None by
    # default: the peer is the client, whatever headers it sends, so throttles cannot be dodged.
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] | None = None
    access_log: bool = True  # a line per request at INFO; off where a proxy already logs every request
    # FastAPI's native OpenTelemetry (traces, metrics, logs through the global providers). Off
    # unless asked for: /metrics already serves Prometheus, and when on, FastAPI looks the
    # providers up on every request even if no OpenTelemetry SDK is configured.
    otel_telemetry: bool = False

    # Connections per worker: at most size + overflow, opened as needed and kept (each new one pays
    # a connect and an empty statement cache) until idle for 30 min; requests beyond them wait
    # DB_POOL_TIMEOUT_S for one, plus DB_CONNECT_TIMEOUT_S when a connection must be opened.
    db_pool_size: int = Field(default=20, ge=1, le=100)
    db_max_overflow: int = Field(default=0, ge=0, le=100)
    db_pool_timeout_s: float = Field(default=3.0, gt=0)
    db_connect_timeout_s: float = Field(default=3.0, gt=0)
    db_statement_timeout_ms: int = Field(default=5_000, ge=0)
    db_pooler_mode: bool | None = None
    db_retry_after_s: int = Field(default=2, ge=1)

    password_pepper: SecretStr | None = None
    bcrypt_cost: int = Field(default=12, ge=4, le=16)
    bcrypt_threads: int = Field(default=1, ge=1, le=16)  # logins never take every core
    access_token_lifetime_s: int = Field(default=900, ge=60, le=86_400)
    refresh_token_lifetime_days: int = Field(default=30, ge=1, le=365)
    # How often each process reloads the sessions ended lately (on any replica): an ended session's
    # access tokens are refused everywhere within this many seconds, at no query per request.
    session_revocation_refresh_s: float = Field(default=5.0, gt=0, le=300)
    jwt_issuer: str = "todo-api"
    jwt_audience: str = "todo-api"
    refresh_cookie_samesite: Literal["lax", "strict", "none"] = "lax"
    auth_jwks_url: str | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_jwks_min_refetch_s: float = Field(default=30, ge=0)
    throttle_login_per_account: int = Field(default=5, ge=1)
    throttle_login_per_address: int = Field(default=20, ge=1)
    throttle_login_window_s: int = Field(default=900, ge=1)
    throttle_signup_per_address: int = Field(default=10, ge=1)
    throttle_signup_window_s: int = Field(default=3600, ge=1)

    # Live events (GET /api/{user_id}/events, docs/events.md). How streams hear of commits made on
    # any replica: `listen` (LISTEN on one direct connection per process), `poll` (one query per
    # interval for every person with an open stream), `auto`: poll when the pool goes through a
    # transaction-mode pooler (DB_POOLER_MODE, Neon `-pooler` hosts) and no EVENTS_LISTEN_URL
    # (a direct URL for the listener alone) is set, else listen.
    events_wakeup: Literal["auto", "listen", "poll"] = "auto"
    events_listen_url: SecretStr | None = None
    events_poll_interval_s: float = Field(default=0.5, gt=0, le=10)
    events_heartbeat_s: float = Field(default=15.0, gt=0, le=300)
    events_session_check_s: float = Field(default=20.0, gt=0, le=300)
    events_max_streams_per_user: int = Field(default=5, ge=1, le=10_000)  # per process
    events_ticket_lifetime_s: int = Field(default=30, ge=5, le=60)

    # Agents (docs/api.md#agents): /mcp, and the chat endpoint when a model is configured.
    mcp_enabled: bool = True
    # Host headers /mcp answers (DNS-rebinding protection: 421 for any other); `*` turns the check off.
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost"]
    )
    # Browser origins /mcp answers besides CORS_ORIGINS (403 for any other; agents send none).
    mcp_allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The API's external base URL, for the resource metadata; unset: the request's scheme and host.
    public_url: str | None = None
    chat_base_url: str | None = None  # any OpenAI-compatible chat-completions endpoint
    chat_model: str | None = None
    chat_api_key: SecretStr | None = None
    chat_max_steps: int = Field(default=8, ge=1, le=50)  # model calls per turn
    chat_turn_timeout_s: float = Field(default=60.0, gt=0, le=600)
    chat_history_messages: int = Field(default=40, ge=2, le=500)  # what the model sees of a conversation

    metrics_enabled: bool | None = None
    metrics_token: SecretStr | None = None

    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    docs_enabled: bool | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=1, ge=1, le=64)  # uvicorn worker processes
    embedded_data_dir: Path = Path(".data/postgres")

    # The change feed's workers (docs/operations.md): webhook and broker delivery, retention.
    run_workers: bool = True
    worker_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    worker_lease_s: float = Field(default=60.0, ge=5, le=3600)
    change_retention_days: int = Field(default=30, ge=1, le=3650)
    webhook_allow_private_targets: bool = False  # development and tests only: also allows http
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    webhook_retry_schedule_s: Annotated[tuple[float, ...], NoDecode] = ()  # empty: about a day (webhooks.py)
    webhook_disable_on_gone: bool = True
    event_publisher: Literal["none", "dapr"] = "none"
    dapr_http_endpoint: str | None = None
    dapr_http_port: int = Field(default=3500, ge=1, le=65535)
    dapr_pubsub_name: str = "pubsub"
    dapr_topic: str = "todo-events"

    @field_validator("mcp_allowed_hosts", "mcp_allowed_origins", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def chat_configured(self) -> bool:
        return bool(self.chat_base_url and self.chat_model)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_networks(cls, value: object) -> object:
        """`10.0.0.0/8, 192.168.1.7, fd00::/8`: a bare address is a network of one; host bits are allowed."""
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            return value
        try:
            return tuple(ipaddress.ip_network(str(item).strip(), strict=False) for item in items if str(item).strip())
        except ValueError as error:
            raise ValueError(f"TRUSTED_PROXIES: {error}") from None

    @field_validator("webhook_retry_schedule_s", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        """`5, 30, 120`: seconds to wait after the first, second, third failed attempt."""
        if isinstance(value, str):
            return tuple(float(item) for item in value.split(",") if item.strip())
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment != "production":
            return self
        if self.database_url is None:
            raise ValueError("DATABASE_URL must be set in production")
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if len(key.encode()) < MIN_SECRET_BYTES or key.lower() in _WEAK_SECRETS:
            raise ValueError(f"SECRET_KEY must be set to at least {MIN_SECRET_BYTES} random bytes in production")
        pepper = self.password_pepper.get_secret_value() if self.password_pepper else ""
        if len(pepper.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"PASSWORD_PEPPER must be set to at least {MIN_SECRET_BYTES} random bytes in production")
        return self

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> Settings:
        """Any origin plus cookies would let every website act as the signed-in user: refused everywhere."""
        if "*" in self.cors_origins and self.cors_allow_credentials:
            raise ValueError("CORS_ORIGINS may not contain '*' while credentials are allowed (CORS_ALLOW_CREDENTIALS)")
        return self

    @model_validator(mode="after")
    def _external_issuer_is_whole(self) -> Settings:
        external = (self.auth_jwks_url, self.auth_issuer, self.auth_audience)
        if any(external) and not all(external):
            raise ValueError("AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE are set together or not at all")
        return self

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def show_docs(self) -> bool:
        return self.docs_enabled if self.docs_enabled is not None else not self.is_production

    @property
    def serve_metrics(self) -> bool:
        """On in development; in production only when asked for (and then best behind METRICS_TOKEN)."""
        return self.metrics_enabled if self.metrics_enabled is not None else not self.is_production

    @property
    def json_logs(self) -> bool:
        return (self.log_format or ("json" if self.is_production else "console")) == "json"

    @property
    def dapr_endpoint(self) -> str:
        return (self.dapr_http_endpoint or f"http://localhost:{self.dapr_http_port}").rstrip("/")

    def signing_key(self) -> str:
        """The key for our own tokens; development without one gets a random key per process."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return _DEV_KEY

    def pepper(self) -> bytes:
        """The password pre-hash key. Development has a fixed one so its accounts survive restarts."""
        if self.password_pepper is not None:
            return self.password_pepper.get_secret_value().encode()
        return b"todo-api-development-pepper-not-for-production"


_DEV_KEY = secrets.token_urlsafe(MIN_SECRET_BYTES)
