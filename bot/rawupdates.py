"""Updates python-telegram-bot cannot read: skipped, confirmed, logged once, never fatal.

Telegram may deliver an update that `Update.de_json` cannot parse: a field of an unexpected
type (a newer Bot API, a bug on either side, a forged webhook call). python-telegram-bot
parses a whole getUpdates batch at once: one such update makes the batch fail, the offset
is never advanced, the same batch is fetched again and again (and logged at CRITICAL with the
raw updates, names and chat ids included), and nobody is answered any more.

Here each raw update is parsed on its own first. One that fails is replaced by a bare
stand-in (`{"update_id": n}`), so that the batch parses, its offset is confirmed (polling
moves past it) and the others are handled; the first handler (bot.throttle.check) stops the
stand-in silently. Behind the webhook the route answers 200 for it: Telegram would deliver
it again on any other status, forever, and no redelivery could make it readable. Either way
one WARNING line names it by update_id only: what failed to parse is the person's data.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import Update

log = logging.getLogger(__name__)


def parse(raw: Any, bot: Any = None) -> Update | None:
    """The update `raw` (a JSON object), or None, logged, when python-telegram-bot cannot
    read it."""
    try:
        return Update.de_json(raw, bot)
    except Exception as exc:  # any failure of the parser: the update is unreadable
        update_id = raw.get("update_id") if isinstance(raw, dict) else None
        log.warning(
            "update %s skipped: python-telegram-bot cannot read it (%s)",
            update_id if isinstance(update_id, int) else "?",
            type(exc).__name__,
        )
        return None


def bare(update_id: int) -> dict[str, Any]:
    """The stand-in for an unreadable update: parses, confirms its offset, says nothing."""
    return {"update_id": update_id}


def screen(updates: list[Any]) -> list[Any]:
    """A getUpdates batch with each unreadable update replaced by its bare stand-in."""
    kept: list[Any] = []
    for raw in updates:
        update_id = raw.get("update_id") if isinstance(raw, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            kept.append(raw)  # no update: python-telegram-bot's own error
            continue
        kept.append(bare(update_id) if len(raw) > 1 and parse(raw) is None else raw)
    return kept


def is_bare(update: Update) -> bool:
    """Whether `update` carries nothing but its id (a stand-in)."""
    return len(update.to_dict(recursive=False)) == 1


__all__ = ["bare", "is_bare", "parse", "screen"]
