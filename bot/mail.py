"""Mail transport: building MIME messages and handing them to an SMTP server, or, with no
server configured, to a local mailbox folder.

Configuration (bot/settings.py):

- `SMTP_URL`:
  - `smtp://[user:password@]host[:port]` (port 587): STARTTLS when the server offers it; with a
    user name STARTTLS is required (a password never crosses the network in clear text);
  - `smtps://[user:password@]host[:port]` (port 465): TLS from the first byte (implicit TLS);
  - `smtp+insecure://host[:port]` (port 25): no TLS at all, only to a loopback address (a
    local relay or a test server); any other host is refused.
  User name and password are percent-decoded (`%40` for an @ in a user name). Certificates
  are verified against the system's trust store.
- `MAIL_FROM`: the sender, `School <noreply@school.example>` or a bare address; required with
  `SMTP_URL`. Its domain names the Message-IDs.
- No `SMTP_URL`: messages are written to a local mailbox (`LocalMailbox`): one `.eml` file per
  message in `var/mailbox/` next to the SQLite database, listed in `index.jsonl` there (one
  JSON object per line: file, to, subject, date, message_id), for the sandbox to show later.

`send` never raises for a failure of delivery: it returns a `SendResult` saying whether the
message was accepted (`SENT`), refused for good (`PERMANENT`: a 5xx reply to RCPT or DATA,
the address is bad or the mailbox gone: mark it bounced) or not now (`TEMPORARY`: a 4xx reply,
the server down, a timeout, a TLS or login failure, a 5xx to MAIL FROM, which is our
configuration's fault and not the address's: try again later). Log lines of this module never
carry an address (bot/logs.py redacts any that a server's reply quotes).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from enum import StrEnum
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

log = logging.getLogger(__name__)

SCHEMES: dict[str, tuple[str, int]] = {
    "smtp": ("starttls", 587),
    "smtps": ("tls", 465),
    "smtp+insecure": ("none", 25),
}
ONE_CLICK = "List-Unsubscribe=One-Click"
DEFAULT_TIMEOUT = 30.0
LOCAL_SENDER = "gradtrack <noreply@gradtrack.invalid>"


class MailConfigError(ValueError):
    """SMTP_URL or MAIL_FROM cannot be used; the message says what to write instead."""


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to reach the SMTP server (from SMTP_URL)."""

    host: str
    port: int
    #: "starttls" (when offered; required with a user name), "tls" (implicit), "none".
    security: str
    username: str | None = None
    password: str | None = None

    @property
    def require_starttls(self) -> bool:
        return self.security == "starttls" and self.username is not None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_smtp_url(url: str) -> SmtpConfig:
    """The SmtpConfig of an SMTP_URL (see the module docstring), or MailConfigError."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise MailConfigError(
            f"SMTP_URL must start with smtp://, smtps:// or smtp+insecure://, not {scheme!r}"
        )
    security, default_port = SCHEMES[scheme]
    host = parts.hostname
    if not host:
        raise MailConfigError("SMTP_URL names no host, e.g. smtp://user:password@mail.example:587")
    try:
        port = parts.port or default_port
    except ValueError as error:
        raise MailConfigError(f"SMTP_URL has a bad port: {error}") from error
    if security == "none" and not _loopback(host):
        raise MailConfigError(
            "smtp+insecure:// sends in clear text and is only for a loopback address "
            "(127.0.0.1, ::1, localhost): use smtp:// (STARTTLS) or smtps:// for "
            f"{host}"
        )
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return SmtpConfig(host, port, security, username, password)


def parse_sender(mail_from: str) -> Address:
    """MAIL_FROM as an address with an optional display name, or MailConfigError."""
    pairs = getaddresses([mail_from])
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        raise MailConfigError(
            f"MAIL_FROM must be one address, e.g. 'School <noreply@school.example>', "
            f"not {mail_from!r}"
        )
    name, address = pairs[0]
    local, domain = address.rsplit("@", 1)
    return Address(display_name=name, username=local, domain=domain)


# ---------------------------------------------------------------- messages


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    unsubscribe_url: str | None = None,
    now: datetime | None = None,
    headers: Mapping[str, str] | None = None,
    images: Mapping[str, bytes] | None = None,
) -> EmailMessage:
    """A UTF-8 message: plain text, and with `html` multipart/alternative (text first, as
    RFC 2046 orders them: the last is the richest). Date, Message-ID (in the sender's
    domain), and with `unsubscribe_url` the List-Unsubscribe and List-Unsubscribe-Post
    headers of RFC 8058 one-click unsubscription (the URL must be https and accept a POST).
    `images`: PNG images the HTML shows as `cid:<name>`, sent with it (multipart/related), so
    that no mail client has to fetch anything from the network."""
    from_address = parse_sender(sender)
    message = EmailMessage(policy=policy.SMTPUTF8)
    message["From"] = from_address
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    message["Message-ID"] = make_msgid(domain=from_address.domain or "gradtrack.invalid")
    message["MIME-Version"] = "1.0"
    if unsubscribe_url:
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = ONE_CLICK
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text, charset="utf-8")
    if html is not None:
        message.add_alternative(html, subtype="html", charset="utf-8")
        if images:
            html_part = message.get_body(preferencelist=("html",))
            assert isinstance(html_part, EmailMessage)
            for name, data in images.items():
                html_part.add_related(
                    data,
                    "image",
                    "png",
                    cid=f"<{name}>",
                    disposition="inline",
                    filename=f"{name}.png",
                )
    return message


# ---------------------------------------------------------------- sending


class Outcome(StrEnum):
    SENT = "sent"
    PERMANENT = "permanent"
    TEMPORARY = "temporary"


@dataclass(frozen=True)
class SendResult:
    """What became of one message. `code`: the SMTP reply code when there was one; `detail`:
    the server's words or the error (may quote the address: never log it unredacted)."""

    outcome: Outcome
    message_id: str
    code: int | None = None
    detail: str = ""

    @property
    def sent(self) -> bool:
        return self.outcome == Outcome.SENT

    @property
    def permanent(self) -> bool:
        return self.outcome == Outcome.PERMANENT


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> SendResult: ...

    async def close(self) -> None: ...


def _by_code(code: int, message_id: str, detail: str) -> SendResult:
    outcome = Outcome.PERMANENT if 500 <= code < 600 else Outcome.TEMPORARY
    return SendResult(outcome, message_id, code, detail)


def classify(error: BaseException, message_id: str = "") -> SendResult:
    """The SendResult of an exception raised while sending (see the module docstring)."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in error.recipients]
        detail = "; ".join(r.message for r in error.recipients)
        # One recipient per message here; with several, permanent only if all are.
        if codes and all(500 <= c < 600 for c in codes):
            return SendResult(Outcome.PERMANENT, message_id, codes[0], detail)
        return SendResult(Outcome.TEMPORARY, message_id, codes[0] if codes else None, detail)
    if isinstance(error, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        return _by_code(error.code, message_id, error.message)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        # MAIL FROM, AUTH, HELO refused: the configuration, not the address.
        return SendResult(Outcome.TEMPORARY, message_id, error.code, error.message)
    return SendResult(Outcome.TEMPORARY, message_id, None, f"{type(error).__name__}: {error}")


class SmtpMailer:
    """Sends through one SMTP connection, opened on the first message and kept for the next
    ones (reopened after an error or a disconnection). One message at a time."""

    def __init__(
        self,
        config: SmtpConfig,
        *,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.config = config
        self.tls_context = tls_context
        self.timeout = timeout
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    def _new_client(self) -> aiosmtplib.SMTP:
        config = self.config
        start_tls: bool | None
        if config.security == "starttls":
            start_tls = True if config.require_starttls else None
        else:
            start_tls = False
        return aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            use_tls=config.security == "tls",
            start_tls=start_tls,
            tls_context=self.tls_context,
            timeout=self.timeout,
        )

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        client = self._new_client()
        await client.connect()
        self._client = client
        return client

    async def send(self, message: EmailMessage) -> SendResult:
        message_id = str(message.get("Message-ID", ""))
        async with self._lock:
            try:
                client = await self._connected()
                await client.send_message(message)
            except (aiosmtplib.SMTPException, OSError, TimeoutError, ssl.SSLError) as error:
                result = classify(error, message_id)
                if not isinstance(
                    error,
                    aiosmtplib.SMTPRecipientsRefused
                    | aiosmtplib.SMTPRecipientRefused
                    | aiosmtplib.SMTPDataError,
                ):
                    await self._drop()
                elif self._client is not None and self._client.is_connected:
                    # Leave the connection ready for the next message.
                    try:
                        await self._client.rset()
                    except (aiosmtplib.SMTPException, OSError, TimeoutError):
                        await self._drop()
                log.info(
                    "mail %s not sent (%s, %s): %s",
                    message_id.strip("<>").split("@")[0],
                    result.outcome.value,
                    result.code,
                    result.detail,
                )
                return result
        return SendResult(Outcome.SENT, message_id)

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    client.close()


class LocalMailbox:
    """The embedded stand-in for an SMTP server: each message an `.eml` file in `folder`,
    listed in `folder/index.jsonl`. Always `SENT` (a disk that fails raises)."""

    INDEX = "index.jsonl"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = asyncio.Lock()
        self._count = 0

    async def send(self, message: EmailMessage) -> SendResult:
        message_id = str(message.get("Message-ID", ""))
        async with self._lock:
            await asyncio.to_thread(self._write, message, message_id)
        return SendResult(Outcome.SENT, message_id)

    def _write(self, message: EmailMessage, message_id: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._count += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{os.getpid()}-{self._count:06d}.eml"
        path = self.folder / name
        partial = path.with_suffix(".eml.partial")
        partial.write_bytes(message.as_bytes(policy=policy.SMTPUTF8))
        partial.replace(path)
        entry = {
            "file": name,
            "to": str(message.get("To", "")),
            "subject": str(message.get("Subject", "")),
            "date": str(message.get("Date", "")),
            "message_id": message_id,
        }
        with (self.folder / self.INDEX).open("a", encoding="utf-8") as index:
            index.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def entries(self) -> list[dict[str, str]]:
        """The index, oldest first (a torn last line, from a crash while writing, skipped)."""
        path = self.folder / self.INDEX
        if not path.exists():
            return []
        entries = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return entries

    async def close(self) -> None:
        return None


def sender_for(smtp_url: str, mail_from: str) -> str:
    """The From of outgoing mail: MAIL_FROM (checked); without SMTP_URL it may be empty (the
    local mailbox then uses LOCAL_SENDER); with SMTP_URL it is required."""
    if mail_from.strip():
        parse_sender(mail_from)
        return mail_from.strip()
    if smtp_url.strip():
        raise MailConfigError(
            "MAIL_FROM is not set: with SMTP_URL, set it to the sender, e.g. "
            "'School <noreply@school.example>'"
        )
    return LOCAL_SENDER


def make_mailer(
    smtp_url: str, mailbox: Path, *, tls_context: ssl.SSLContext | None = None
) -> Mailer:
    """An SmtpMailer for `smtp_url`, or the LocalMailbox in `mailbox` when it is empty."""
    if not smtp_url.strip():
        return LocalMailbox(mailbox)
    return SmtpMailer(parse_smtp_url(smtp_url), tls_context=tls_context)


__all__ = [
    "LOCAL_SENDER",
    "LocalMailbox",
    "MailConfigError",
    "Mailer",
    "Outcome",
    "SendResult",
    "SmtpConfig",
    "SmtpMailer",
    "build_message",
    "classify",
    "make_mailer",
    "parse_sender",
    "parse_smtp_url",
    "sender_for",
]
