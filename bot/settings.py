"""Configuration from the environment (and an optional `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url


class Settings(BaseSettings):
    """Every setting gradtrack reads. Each is an environment variable of the same name."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    telegram_bot_token: str = Field(
        default="",
        description="Bot token from @BotFather. Empty: run against the built-in sandbox.",
    )
    telegram_api_base_url: str = Field(
        default="https://api.telegram.org/bot",
        description="Any server speaking the Bot API; the token is appended to it.",
    )
    database_url: str = Field(
        default="sqlite+aiosqlite:///var/gradtrack.sqlite3",
        description="SQLAlchemy URL (relative SQLite paths are from the working directory).",
    )
    public_url: str = Field(
        default="",
        description="Public https address of this service (webhook and dashboard links).",
    )
    bot_username: str = Field(
        default="",
        description="The bot's @username for t.me links; read from getMe when empty.",
    )
    port: int = Field(default=8080, description="Port `gradtrack serve` listens on.")
    host: str = Field(default="0.0.0.0", description="Address `gradtrack serve` binds.")
    webhook_secret: str = Field(
        default="",
        description="Secret sent with each webhook call; derived from the token if empty.",
    )
    sandbox_host: str = Field(default="127.0.0.1", description="Where the sandbox listens.")
    sandbox_port: int = Field(default=8081, description="Port of the sandbox and web chat.")
    privacy_notice_version: str = Field(
        default="2026-11",
        description="Version of the privacy notice graduates are shown; stored with consents.",
    )
    default_language: str = Field(default="en", description="Fallback language.")
    waves_file: str = Field(
        default="", description="Wave plan YAML; empty: conversations/waves.yaml."
    )
    bulk_send_per_second: float = Field(
        default=20.0,
        description="Invitations, reminders and news per second; the rest of Telegram's "
        "30/s is left for replies to graduates.",
    )
    dispatch_interval_seconds: float = Field(
        default=15.0, description="How often due invitations and reminders are claimed."
    )
    claim_lease_seconds: float = Field(
        default=300.0,
        description="A claimed invitation or news delivery whose sender died is sent again "
        "after this long.",
    )
    prompt_resend_seconds: float = Field(
        default=60.0,
        description="A question decided but not sent (a crash, Telegram failing) is sent again "
        "after this long.",
    )
    throttle_per_second: float = Field(
        default=3.0,
        description="Updates per second one chat may send on average; faster ones are dropped "
        "(the person is told once). 0 turns flood control off.",
    )
    throttle_burst: int = Field(
        default=20, description="Updates one chat may send at once before flood control."
    )
    retention_months: int = Field(
        default=36, description="Personal data is erased this long after graduation."
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: one readable line per record; json: one JSON object per line "
        "(time, level, logger, message, pid, update_id, chat, exception ...).",
    )
    metrics_token: str = Field(
        default="",
        description="If set, GET /metrics requires `Authorization: Bearer <token>`; empty: "
        "/metrics is open (keep it off the public internet then).",
    )
    secret_key: str = Field(
        default="",
        description="Secret for keyed hashes and signed links; required by `serve` with a "
        "real bot token. Empty in development: a fixed development key.",
    )

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def key(self) -> bytes:
        """The secret as bytes (a fixed development key when SECRET_KEY is unset)."""
        return (self.secret_key or "gradtrack-development-key-not-for-production").encode()

    @property
    def base_url(self) -> str:
        """Where people reach this service's web pages (the dashboard's login links)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def uses_sandbox(self) -> bool:
        return not self.telegram_bot_token

    @property
    def sandbox_state_file(self) -> Path | None:
        """Where the built-in sandbox keeps its users, chats and update numbers across
        restarts: next to a SQLite database file (`var/gradtrack.sqlite3` ->
        `var/gradtrack.sandbox.json`), else `var/sandbox-<database>.json`; None for an
        in-memory database. Without it, a restarted sandbox would number updates and users
        from the start again, and the bot would take them for ones it has seen."""
        url = make_url(self.database_url)
        name = url.database or ""
        if url.get_backend_name() == "sqlite":
            if not name or name == ":memory:" or name.startswith("file:"):
                return None
            path = Path(name)
            return path.with_name(path.stem + ".sandbox.json")
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "default"
        return Path("var") / f"sandbox-{safe}.json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
