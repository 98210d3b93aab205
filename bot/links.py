"""Links a graduate or a person trying the sandbox opens."""

from __future__ import annotations

from urllib.parse import urlencode


def start_link(bot_username: str, payload: str) -> str:
    """Telegram's deep link: opens the bot and sends `/start <payload>`."""
    return f"https://t.me/{bot_username}?start={payload}"


def sandbox_chat_link(sandbox_url: str, token: str, payload: str) -> str:
    """The sandbox's web chat page, as a new virtual graduate opening a deep link."""
    bot_id = token.split(":", 1)[0]
    return f"{sandbox_url}/chat?{urlencode({'bot': bot_id, 'start': payload})}"
