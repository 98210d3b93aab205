"""Links a graduate or a person trying the sandbox opens."""

from __future__ import annotations

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
