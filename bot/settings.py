"""Configuration from the environment (and an optional `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from storage.roster import Limits as RosterLimits

#: The shortest SECRET_KEY accepted with a real bot token.
MIN_SECRET_KEY = 32
#: How to make a good one, for the messages that ask for it.
MAKE_SECRET_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
DEVELOPMENT_KEY = "gradtrack-development-key-not-for-production"


class SecretKeyMissing(RuntimeError):
    """A real bot token without a SECRET_KEY of at least MIN_SECRET_KEY characters."""


#: Telegram's overall limit: about 30 messages per second for one bot.
TELEGRAM_PER_SECOND = 30.0


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
        default="2026-12",
        description="Base of the privacy notice's version: the version shown and stored with "
        "consents is this plus a hash of the notice's text for the school.",
    )
    default_language: str = Field(default="en", description="Fallback language.")
    waves_file: str = Field(
        default="", description="Wave plan YAML; empty: conversations/waves.yaml."
    )
    bulk_send_per_second: float = Field(
        default=20.0,
        description="Invitations, reminders and news per second, at most what replies leave "
        f"of Telegram's {TELEGRAM_PER_SECOND:.0f}/s (replies go first); higher values are "
        f"clamped to {TELEGRAM_PER_SECOND:.0f}.",
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
    roster_max_rows: int = Field(
        default=50_000,
        ge=1,
        description="Rows a roster file may have (dashboard upload and `gradtrack import`); "
        "a longer file is refused as soon as the limit is passed.",
    )
    roster_max_columns: int = Field(
        default=100, ge=1, description="Columns a roster file's header and rows may have."
    )
    roster_max_cell_chars: int = Field(
        default=1_000, ge=1, description="Characters one cell of a roster file may hold."
    )
    upload_max_unpacked_mb: int = Field(
        default=50,
        ge=1,
        description="Megabytes an uploaded .xlsx may unpack to (checked before it is opened: "
        "a zip bomb is refused), and the largest roster CSV.",
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
    roster_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        description="Largest roster file (CSV or XLSX) the dashboard accepts, in bytes.",
    )
    web_header_timeout: float = Field(
        default=30.0,
        description="Seconds a connection may take to send a request's headers, counted from "
        "its opening or from the previous response; also how long an idle keep-alive "
        "connection stays open.",
    )
    web_body_timeout: float = Field(
        default=60.0,
        description="Seconds a request's body (a form, an update, a roster file) may take to "
        "arrive once its headers are in; a slower one is cut off.",
    )
    web_max_connections: int = Field(
        default=256,
        description="Open connections the web server keeps at most; more are answered 503 and "
        "closed at once.",
    )
    smtp_url: str = Field(
        default="",
        description="SMTP server for e-mail: smtp://user:pass@host:587 (STARTTLS; required "
        "with a user), smtps://user:pass@host:465 (TLS), smtp+insecure://127.0.0.1:25 (no TLS, "
        "loopback only). Empty: mail is kept in the local mailbox (var/mailbox/).",
    )
    mail_from: str = Field(
        default="",
        description="Sender of e-mail, e.g. 'School <noreply@school.example>'; required with "
        "SMTP_URL.",
    )
    mail_send_per_second: float = Field(
        default=5.0,
        description="Invitation and reminder e-mails per second at most (0: no limit); keep "
        "it under what the SMTP provider allows.",
    )
    secret_key: str = Field(
        default="",
        description="Secret for keyed hashes and the dashboard's session cookie; at least "
        f"{MIN_SECRET_KEY} characters, required with a real bot token. Empty in the sandbox: "
        "a fixed development key.",
    )

    @field_validator("bulk_send_per_second")
    @classmethod
    def _at_most_telegram(cls, value: float) -> float:
        # Above Telegram's overall limit a bulk rate has no effect: clamp it, so that what
        # the settings say is what is sent (bot/ratelimit.py gives replies priority).
        return min(value, TELEGRAM_PER_SECOND)

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def secret_key_problem(self) -> str | None:
        """Why this configuration may not run against real Telegram, or None: with a real bot
        token, the public development key would let anyone forge a dashboard session and
        compute the pseudonyms of exports."""
        if self.uses_sandbox or len(self.secret_key) >= MIN_SECRET_KEY:
            return None
        what = "is not set" if not self.secret_key else "is too short"
        return (
            f"SECRET_KEY {what}: with a real TELEGRAM_BOT_TOKEN it must be a secret of at "
            f"least {MIN_SECRET_KEY} characters (it keys the dashboard's session cookies and "
            "the hashes of exports and erased student numbers). Make one with\n"
            f"    {MAKE_SECRET_KEY}\n"
            "and set it as SECRET_KEY in the environment (or .env), the same in every process."
        )

    @property
    def key(self) -> bytes:
        """The secret as bytes: a fixed development key in the sandbox when SECRET_KEY is
        unset; with a real bot token a missing or short SECRET_KEY raises SecretKeyMissing."""
        problem = self.secret_key_problem
        if problem is not None:
            raise SecretKeyMissing(problem)
        return (self.secret_key or DEVELOPMENT_KEY).encode()

    @property
    def roster_limits(self) -> RosterLimits:
        """The limits of one roster file (storage.roster.Limits)."""
        from storage.roster import Limits

        return Limits(
            rows=self.roster_max_rows,
            columns=self.roster_max_columns,
            cell_chars=self.roster_max_cell_chars,
            unpacked_bytes=self.upload_max_unpacked_mb * 1024 * 1024,
        )

    @property
    def base_url(self) -> str:
        """Where people reach this service's web pages (the dashboard's login links)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def mailbox_dir(self) -> Path:
        """The local mailbox used when SMTP_URL is empty: `mailbox/` next to a SQLite database
        file (`var/gradtrack.sqlite3` -> `var/mailbox/`), else `var/mailbox/`."""
        url = make_url(self.database_url)
        name = url.database or ""
        sqlite_file = name and name != ":memory:" and not name.startswith("file:")
        if url.get_backend_name() == "sqlite" and sqlite_file:
            return Path(name).parent / "mailbox"
        return Path("var") / "mailbox"

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
