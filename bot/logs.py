"""Logging: plain text for a terminal, or one JSON object per line for a log collector, and
never a bot token in either.

`LOG_FORMAT=json` writes lines such as

    {"time": "2026-11-23T10:00:00.123Z", "level": "INFO", "logger": "bot.delivery",
     "message": "dispatch: ...", "pid": 4242, "update_id": 81, "chat": "3f9a0c51be27"}

with the fields given through `extra=` and those of the update being handled (`bind`, set
for every update by bot.metrics) added, and an exception as the string field `exception`.

Tokens: python-telegram-bot puts the token into every request URL
(`…/bot<token>/sendMessage`) and httpx logs those URLs at INFO. httpx and httpcore are kept
at WARNING, and `RedactTokens` replaces anything shaped like a bot token (and the configured
token itself, wherever it appears) in every record our handler writes: message, exception and
extra fields.

Personal data: a chat id is personal data (it is the person's Telegram account), and logs
outlive an erasure. Log lines name a chat by `chat_ref(chat_id)`: the first 12 hex digits of
an HMAC-SHA256 of the id, keyed with the server's secrets (given to `setup`; a random key
per process when there are none), so the same chat has the same reference in every line but
the id cannot be recovered (nor a known id checked) without the secret. An extra or bound
field named `chat_id` is written as `chat` with its reference. Our log lines never carry
names, student numbers, invite tokens or answers; an e-mail address anywhere in a record (an
SMTP server's reply quotes the recipient) is replaced by `<e-mail>`. The parameters
SQLAlchemy puts into a database error (`[parameters: ...]`) and PostgreSQL's `DETAIL:` line
(`Key (chat_id)=(1001) already exists`) are redacted. python-telegram-bot logs whole updates
and API calls (names, chat ids, message texts) at DEBUG, aiosqlite every statement with its
parameters: those libraries are kept at INFO or above whatever LOG_LEVEL says
(LOG_LEVEL=DEBUG debugs our own code).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets as _secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: A bot token: the bot's numeric id, a colon, and 30 or more URL-safe characters.
TOKEN_RE = re.compile(r"\d{1,20}:[A-Za-z0-9_-]{30,}")
REDACTED = "<redacted>"

#: An e-mail address (a roster's, one a person typed, one in an SMTP server's reply): personal
#: data that no log line keeps. The domain must end in a label with a letter, so that
#: `postgres@127.0.0.1` in a database URL stays readable.
EMAIL_RE = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@(?:[\w-]+\.)+[^\W\d_][\w-]*")
EMAIL_REDACTED = "<e-mail>"

#: The least level of libraries that log too much: request URLs (so the token) below WARNING;
#: whole updates, API calls (names, chat ids, texts) or SQL parameters at DEBUG.
NOISY_LOGGERS: dict[str, int] = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "aiohttp.access": logging.WARNING,
    "telegram": logging.INFO,
    "aiosqlite": logging.INFO,
    "asyncpg": logging.INFO,
}

#: Libraries whose routine INFO lines (a job ran, a migration context started) would bury the
#: links and messages a person looks for: WARNING and above unless LOG_LEVEL is DEBUG.
ROUTINE_LOGGERS: tuple[str, ...] = ("apscheduler", "alembic")

#: A database error's parameters (SQLAlchemy) and PostgreSQL's detail line: they hold values.
SQL_PARAMETERS_RE = re.compile(r"^\[parameters: .*\]$", re.MULTILINE)
SQL_DETAIL_RE = re.compile(r"^DETAIL: .*$", re.MULTILINE)

CHAT_REF_LENGTH = 12
_chat_key: bytes = _secrets.token_bytes(32)

_context: ContextVar[Mapping[str, Any] | None] = ContextVar("gradtrack_log_context", default=None)

# Every attribute a LogRecord has of its own; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def set_chat_key(secrets: tuple[str, ...] = ()) -> None:
    """Key `chat_ref` with the server's `secrets` (the same references in every process and
    after a restart); none given: a new random key (references valid for this process)."""
    global _chat_key
    given = [s for s in secrets if s]
    if given:
        material = "\0".join(["gradtrack-log-chat-ref", *given]).encode()
        _chat_key = hashlib.sha256(material).digest()
    else:
        _chat_key = _secrets.token_bytes(32)


def chat_ref(chat_id: int | str | None) -> str | None:
    """The pseudonym of a chat in log lines (see the module docstring); None stays None."""
    if chat_id is None:
        return None
    digest = hmac.new(_chat_key, str(chat_id).encode(), hashlib.sha256).hexdigest()
    return digest[:CHAT_REF_LENGTH]


def bind(**fields: Any) -> None:
    """Add `fields` (None: remove) to every record logged from here on in this context (the
    update being handled: its asyncio task)."""
    merged = {**context_fields(), **fields}
    _context.set({k: v for k, v in merged.items() if v is not None})


def clear() -> None:
    """Forget the fields of `bind` in this context."""
    _context.set(None)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """`bind(**fields)` for the duration of a `with` block."""
    token = _context.set({**context_fields(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def context_fields() -> Mapping[str, Any]:
    """The fields `bind` set in this context."""
    return _context.get() or {}


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with bot tokens (and each of `secrets`), the parameters of a database error and
    PostgreSQL's DETAIL line replaced by `<redacted>`, and e-mail addresses by `<e-mail>`."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    text = SQL_PARAMETERS_RE.sub(f"[parameters: {REDACTED}]", text)
    text = SQL_DETAIL_RE.sub(f"DETAIL: {REDACTED}", text)
    text = EMAIL_RE.sub(EMAIL_REDACTED, text)
    return TOKEN_RE.sub(REDACTED, text)


class RedactTokens(logging.Filter):
    """Removes bot tokens from a record before any formatter sees it: the message is
    formatted and redacted (its `args` dropped), the exception text too, and string extras."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        # Short values would redact ordinary words; real secrets are long.
        self.secrets = tuple(s for s in secrets if len(s) >= 16)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is
            message = str(record.msg)
        record.msg, record.args = redact(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_FIELDS and isinstance(value, str):
                setattr(record, key, redact(value, self.secrets))
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(context_fields())
    fields.update(
        (key, value) for key, value in record.__dict__.items() if key not in _RECORD_FIELDS
    )
    if "chat_id" in fields:  # never the raw id: its reference
        fields["chat"] = chat_ref(fields.pop("chat_id"))
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, pid, the
    context and `extra=` fields, and `exception` (the formatted traceback) if any."""

    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process or os.getpid(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic one-line format, with the context and `extra=` fields appended."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = _extras(record)
        if fields:
            line += " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"
        return line


class _Handler(logging.StreamHandler):
    """The handler `setup` installs (so that a second call replaces it)."""


def setup(
    level: str = "INFO",
    fmt: str = "text",
    *,
    secrets: tuple[str, ...] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Configure the root logger: one handler on `stream` (stderr) in `fmt` ("text" or
    "json") at `level`, tokens redacted, chats named by `chat_ref` keyed with `secrets`; the
    chatty libraries at their NOISY_LOGGERS level at least, the ROUTINE_LOGGERS at WARNING
    unless `level` is DEBUG. Replaces the handlers a previous
    call installed. Returns the handler."""
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(stream or sys.stderr)
    handler.addFilter(RedactTokens(secrets))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    set_chat_key(secrets)
    for name, least in NOISY_LOGGERS.items():
        logging.getLogger(name).setLevel(max(least, root.level))
    routine = root.level if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
    for name in ROUTINE_LOGGERS:
        logging.getLogger(name).setLevel(routine)
    return handler
