"""What an invitation or reminder says, and what its button does.

The button `wv:<invitation id>` starts the wave's questionnaire, or resumes it. A button of a
wave that closed, or of a questionnaire already sent, says so and does nothing else.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.i18n import _, format_date, set_language
from bot.runtime import Runtime
from conversations import survey
from conversations.channel import Button, Keyboard, Turn, keyboard
from conversations.prompting import send_prompt
from storage.models import Institution, Invitation
from storage.processed import claim
from storage.queries import get_chat_state, graduate_by_chat
from storage.types import row_id

PREFIX = "wv:"
PATTERN = r"^wv:"


def invitation_message(invitation: Invitation, school: Institution) -> tuple[str, Keyboard]:
    """The invitation (seq 0) or a reminder, in the current language."""
    last_day = (invitation.closes_at - timedelta(seconds=1)).astimezone(ZoneInfo(school.timezone))
    until = format_date(last_day.date(), "long")
    if invitation.seq == 0:
        text = _(
            "Hello! {school} would like to know how you are doing. Could you answer a few "
            "questions? It takes about five minutes, and the questionnaire is open until {date}."
        ).format(school=school.name, date=until)
        button = _("Start the questionnaire")
    else:
        text = _(
            "A friendly reminder: the questionnaire of {school} is open until {date}. Every "
            "answer helps the school and the students after you."
        ).format(school=school.name, date=until)
        button = _("Answer now")
    markup = keyboard([[Button(button, f"{PREFIX}{invitation.id}")]])
    return text, markup


async def on_button(rt: Runtime, turn: Turn) -> None:
    chat_id = turn.chat_id
    raw_id = turn.event.data[len(PREFIX) :]
    now = rt.clock.now()
    outcome = ""
    async with rt.db.session() as session:
        await claim(session)
        state = await get_chat_state(session, chat_id)
        graduate = await graduate_by_chat(session, chat_id)
        set_language(state.language or (graduate.language if graduate else None))
        invitation_id = row_id(raw_id)
        invitation = await session.get(Invitation, invitation_id) if invitation_id else None
        if invitation is None or graduate is None or invitation.graduate_id != graduate.id:
            await turn.notice(_("This button is no longer active."))
            return
        if state.flow and state.flow != survey.SURVEY:
            await turn.notice(_("Let's first finish the questions above."))
            return
        if invitation.closes_at <= now:
            await turn.notice(_("This questionnaire has closed. Thank you all the same!"))
            return
        outcome = await survey.start_wave(rt, session, graduate, invitation, chat_id)
        if outcome == "done":
            await turn.notice(_("This questionnaire is already finished. Thank you!"))
            return
    await turn.notice()
    await turn.edit(None)
    await send_prompt(rt, chat_id)
