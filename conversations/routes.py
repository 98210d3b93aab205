"""Which flow answers which event: the tables the channels route by.

The Telegram adapter (bot/app.py) registers a python-telegram-bot handler per entry; the web
chat (bot/web/chat.py) calls `dispatch`, which routes the graduates' table only. The staff
flows (alumni news, /broadcasts, /stats, /dashboard) are in tables of their own, which only
the Telegram adapter registers: staff accounts are Telegram accounts. (Each staff flow also
checks the sender, so a staff command that reached another channel would be refused.)
Each staff flow carries the roles it is for (`staff_only(roles=…)` or `access.rule(…)`,
conversations/access.py); tests/test_roles.py fails for one without, or with another rule
than tests/test_refusals.py's CHAT_RULES.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from conversations import (
    account,
    invitations,
    news_compose,
    onboarding,
    reports,
    rights,
    staff,
    survey,
)
from conversations.channel import Turn

if TYPE_CHECKING:
    from bot.runtime import Runtime

Flow = Callable[["Runtime", Turn], Awaitable[object]]

#: /command -> flow, for graduates (and anyone not yet registered).
COMMANDS: dict[str, Flow] = {
    "start": onboarding.start,
    "help": account.help_command,
    "language": account.language_command,
    "privacy": account.privacy_command,
    "stop": account.stop_command,
    "survey": survey.survey_command,
    "mydata": rights.mydata_command,
    "delete": rights.delete_command,
}

#: Button data pattern -> flow, tried in order.
BUTTONS: tuple[tuple[str, Flow], ...] = (
    (survey.CALLBACK_PATTERN, survey.on_button),
    (invitations.PATTERN, invitations.on_button),
    (rf"^{onboarding.CB_PREFIX}:", onboarding.on_button),
    (rf"^{account.LANG_PREFIX}", account.on_language_button),
    (rf"^{account.PRIVACY_PREFIX}", account.on_privacy_button),
    (rights.DELETE_PATTERN, rights.on_delete_button),
)

_BUTTONS = tuple((re.compile(pattern), flow) for pattern, flow in BUTTONS)

#: /command -> flow, on Telegram only: the staff's commands, and /news (staff write news; a
#: graduate sees and changes their news choice there).
STAFF_COMMANDS: dict[str, Flow] = {
    "news": staff.news_command,
    "cancel": news_compose.cancel_command,
    "broadcasts": news_compose.broadcasts_command,
    "stats": reports.stats_command,
    "dashboard": reports.dashboard_command,
}

#: Button data pattern -> flow, on Telegram only, tried after BUTTONS.
STAFF_BUTTONS: tuple[tuple[str, Flow], ...] = (
    (staff.NEWS_PATTERN, staff.on_news_button),
    (news_compose.PATTERN, news_compose.on_button),
    (news_compose.CANCEL_PATTERN, news_compose.on_cancel_button),
)

#: A message that is no command, on Telegram: the news being written takes it (text, a
#: photo with a caption, a forward), else it goes where `flow_for` sends it.
STAFF_MESSAGE: Flow = news_compose.on_message


def flow_for(turn: Turn) -> Flow:
    """The flow that answers `turn`'s event (on a channel with graduates' flows only)."""
    event = turn.event
    if event.kind == "command":
        return COMMANDS.get(event.name, account.help_command)
    if event.kind == "button":
        for pattern, flow in _BUTTONS:
            if pattern.match(event.data):
                return flow
        return account.on_stale_button
    if event.forwarded:
        return account.on_forwarded
    if event.kind == "text":
        return account.on_text
    return account.on_unreadable


async def dispatch(rt: Runtime, turn: Turn) -> None:
    """Answer `turn` with its flow."""
    await flow_for(turn)(rt, turn)
