"""Links a graduate or a person trying the sandbox opens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import TYPE_CHECKING
from urllib.parse import urlencode

if TYPE_CHECKING:
    from bot.settings import Settings

#: The bot `gradtrack run` creates in the built-in sandbox when no token is set.
SANDBOX_BOT_USERNAME = "gradtrack_demo_bot"


def start_link(bot_username: str, payload: str) -> str:
    """Telegram's deep link: opens the bot and sends `/start <payload>`."""
    return f"https://t.me/{bot_username}?start={payload}"


def sandbox_chat_link(sandbox_url: str, bot: str, payload: str) -> str:
    """The sandbox's web chat page, as a new virtual graduate opening a deep link. `bot` is
    the bot's username, id or token (only its id part is ever put in the link)."""
    bot_ref = bot.split(":", 1)[0]
    return f"{sandbox_url}/chat?{urlencode({'bot': bot_ref, 'start': payload})}"


def sandbox_url(settings: Settings) -> str:
    """Where `gradtrack run` serves the sandbox and its web chat."""
    return f"http://{settings.sandbox_host}:{settings.sandbox_port}"


def chat_link(settings: Settings, payload: str) -> str | None:
    """The link that opens the bot with `/start <payload>`: the sandbox's web chat when no
    token is set (what `gradtrack run` serves), else Telegram's deep link to BOT_USERNAME;
    None when there is a token but no BOT_USERNAME."""
    if settings.uses_sandbox:
        return sandbox_chat_link(sandbox_url(settings), SANDBOX_BOT_USERNAME, payload)
    username = settings.bot_username.lstrip("@")
    return start_link(username, payload) if username else None


def web_chat_link(settings: Settings, token: str) -> str:
    """A graduate's personal web chat link (bot/web/chat.py): PUBLIC_URL/c/<invite token>."""
    return f"{settings.base_url.rstrip('/')}/c/{token}"


#: The path of the e-mail unsubscribe page and of its one-click POST (RFC 8058).
UNSUBSCRIBE_PATH = "/u/"
_UNSUBSCRIBE_RE = re.compile(r"^([1-9][0-9]{0,18})-([A-Za-z0-9_-]{22})$")


def _unsubscribe_mac(key: bytes, graduate_id: int) -> str:
    digest = hmac.new(key, f"gradtrack-unsubscribe:{graduate_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()[:16]).decode().rstrip("=")


def unsubscribe_token(key: bytes, graduate_id: int) -> str:
    """The credential of a graduate's unsubscribe link: their id and an HMAC of it with
    SECRET_KEY (128 bits). Nothing is stored: every mail of the graduate carries the same
    link, it works for as long as the key is the same, and it cannot be guessed or made
    for another graduate."""
    return f"{graduate_id}-{_unsubscribe_mac(key, graduate_id)}"


def unsubscribed_graduate(key: bytes, token: str) -> int | None:
    """The graduate id an unsubscribe token was made for, or None for a forged, mistyped or
    foreign one (compared in constant time)."""
    found = _UNSUBSCRIBE_RE.match(token)
    if found is None:
        return None
    graduate_id = int(found.group(1))
    if not hmac.compare_digest(found.group(2), _unsubscribe_mac(key, graduate_id)):
        return None
    return graduate_id


def unsubscribe_link(settings: Settings, graduate_id: int) -> str:
    """The page that stops e-mail to a graduate; also the List-Unsubscribe URL."""
    return f"{settings.base_url}{UNSUBSCRIBE_PATH}{unsubscribe_token(settings.key, graduate_id)}"
