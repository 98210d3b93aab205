"""Onboarding: link a chat to a graduate, pick a language, check age, take the consents.

Two ways in:
- `/start i_<token>`: the personal invite link from the school's roster.
- `/start s_<code>`: the school's join link; the graduate registers themselves by choosing
  programme, graduation year and month, and giving their birth year.

Every step is a row in `chat_state`, committed before the next question is sent; the
question is marked sent afterwards. After a crash or a failure of Telegram the bot re-sends
questions that were decided but not sent (`resend_pending_prompts`), and any later message
from the person re-asks the open question. Buttons carry their step (`ob:<step>:<value>`), so
a button from an earlier question is recognised as stale and changes nothing.
"""

from __future__ import annotations

import calendar
import logging
from datetime import date

from bot.i18n import _, language_name, month_name, ngettext, set_language
from bot.runtime import Runtime
from conversations.channel import Button, Keyboard, Turn, keyboard
from conversations.notice import notice_messages, shown_version
from conversations.prompting import Prompt, close_question, register, send_prompt
from conversations.rules import (
    LANGUAGES,
    AgeCheck,
    PayloadKind,
    check_age,
    choose_language,
    consent_age,
    graduation_years,
    parse_birth_year,
    parse_start_payload,
)
from storage.invitations import mark_offered, open_wave_invitation, plan_invitations
from storage.models import ChatState, ConsentKind, Graduate, Institution, Invitation, Programme
from storage.processed import claim
from storage.queries import (
    active_programmes,
    get_chat_state,
    graduate_by_chat,
    graduate_by_token,
    institution_by_code,
    is_web_chat,
    set_consent,
    touch_state,
)
from storage.types import row_id, utcnow

log = logging.getLogger(__name__)

# Flows
ONBOARD = "onboard"  # linked by a personal invite
REGISTER = "register"  # self-registration from a school link
#: The flows whose open question may take typed text (`on_text`).
TEXT_FLOWS = (ONBOARD, REGISTER)

# Steps
LANGUAGE = "language"
PROGRAMME = "programme"
GRAD_YEAR = "grad_year"
GRAD_MONTH = "grad_month"
BIRTH_YEAR = "birth_year"
AGE = "age"
GUARDIAN = "guardian"
C_SURVEY = "c_survey"
C_FOLLOWUP = "c_followup"
C_NEWS = "c_news"

CONSENT_STEPS: dict[str, ConsentKind] = {
    C_SURVEY: ConsentKind.SURVEY,
    C_FOLLOWUP: ConsentKind.FOLLOWUP,
    C_NEWS: ConsentKind.NEWS,
}

CB_PREFIX = "ob"


def _cb(step: str, value: str) -> str:
    return f"{CB_PREFIX}:{step}:{value}"


def _today() -> date:
    return utcnow().date()


# ---------------------------------------------------------------- texts


def not_registered_text() -> str:
    return _(
        "Hello! This is your school's graduate chat. To begin, please open the personal "
        "link or scan the QR code your school gave you."
    )


def _yes_no(step: str) -> Keyboard:
    return keyboard(
        [
            [
                Button(_("Yes"), _cb(step, "y")),
                Button(_("No"), _cb(step, "n")),
            ]
        ]
    )


def language_keyboard(prefix: str) -> Keyboard:
    """Five language buttons, each labelled in its own language."""
    buttons = [Button(language_name(code), f"{prefix}{code}") for code in LANGUAGES]
    return keyboard([buttons[0:2], buttons[2:4], buttons[4:5]])


async def _render(rt: Runtime, state: ChatState) -> Prompt | None:
    """The question for the chat's current step, in the current language."""
    step = state.step
    async with rt.db.session() as session:
        school: Institution | None = None
        graduate = await session.get(Graduate, state.graduate_id) if state.graduate_id else None
        school_id = graduate.institution_id if graduate else state.data.get("institution_id")
        if school_id:
            school = await session.get(Institution, school_id)
        programmes = (
            await active_programmes(session, school.id)
            if step == PROGRAMME and school and school.id
            else []
        )
    if school is None:
        return None
    if step == LANGUAGE:
        return Prompt(
            _("Hello! This is the graduate chat of {school}. Which language do you prefer?").format(
                school=school.name
            ),
            language_keyboard(_cb(LANGUAGE, "")),
        )
    if step == PROGRAMME:
        rows = [[Button(p.name[:60], _cb(PROGRAMME, str(p.id)))] for p in programmes[:90]]
        return Prompt(
            _("Which programme are you taking (or did you take) at {school}?").format(
                school=school.name
            ),
            keyboard(rows),
        )
    if step == GRAD_YEAR:
        years = graduation_years(_today())
        return Prompt(
            _("In which year will you graduate (or did you graduate)?"),
            keyboard([[Button(str(y), _cb(GRAD_YEAR, str(y))) for y in years]]),
        )
    if step == GRAD_MONTH:
        buttons = [
            Button(month_name(m).capitalize(), _cb(GRAD_MONTH, str(m))) for m in range(1, 13)
        ]
        return Prompt(
            _("And in which month?"),
            keyboard([buttons[i : i + 3] for i in range(0, 12, 3)]),
        )
    if step == BIRTH_YEAR:
        return Prompt(_("In which year were you born? Please type it, for example 2006."))
    if step == AGE:
        age = consent_age(school.country)
        return Prompt(
            ngettext(
                "Are you {age} year old or older?", "Are you {age} years old or older?", age
            ).format(age=age),
            _yes_no(AGE),
        )
    if step == GUARDIAN:
        age = consent_age(school.country)
        return Prompt(
            _(
                "Because you are younger than {age}, a parent or guardian has to agree before "
                "you can take part. Please ask {school} about it. Once the school has recorded "
                "their agreement, send /start again."
            ).format(age=age, school=school.name)
        )
    if step == C_SURVEY:
        return Prompt(
            _(
                "May we ask you about your work and studies after your training? "
                "It takes about five minutes."
            ),
            _yes_no(C_SURVEY),
            preface=tuple(notice_messages(rt.settings, school)),
        )
    if step == C_FOLLOWUP:
        return Prompt(
            _("May we ask you again in a few months, to see how things are going?"),
            _yes_no(C_FOLLOWUP),
        )
    if step == C_NEWS:
        return Prompt(
            _(
                "Would you like to receive alumni news from {school}: events, jobs and courses?"
            ).format(school=school.name),
            _yes_no(C_NEWS),
        )
    return None


def consent_summary(graduate: Graduate) -> str:
    def mark(value: bool | None) -> str:
        if value is None:
            return "—"
        return "✅ " + _("yes") if value else "❌ " + _("no")

    return "\n".join(
        [
            _("Questionnaire: {answer}").format(answer=mark(graduate.consent_survey)),
            _("Follow-up questionnaires: {answer}").format(answer=mark(graduate.consent_followup)),
            _("Alumni news: {answer}").format(answer=mark(graduate.consent_news)),
        ]
    )


# ---------------------------------------------------------------- sending


async def _finish(rt: Runtime, chat_id: int) -> None:
    """The end of onboarding: the choices made and, when a wave is open for the graduate now,
    a "Start now" button (it is the wave's invitation: the dispatcher does not send another)."""
    from conversations.invitations import PREFIX

    now = rt.clock.now()
    invitation: Invitation | None = None
    async with rt.db.session() as session:
        graduate = await graduate_by_chat(session, chat_id)
        if graduate is not None and graduate.id is not None and graduate.consent_survey:
            invitation = await open_wave_invitation(session, graduate.id, now, rt.plans)
    if graduate is None:
        return
    lines = [_("Thank you! Your choices are saved:"), consent_summary(graduate), ""]
    markup: Keyboard = ()
    if invitation is not None:
        lines.append(_("A questionnaire is open for you now. It takes about five minutes."))
        markup = keyboard([[Button(_("Start now"), f"{PREFIX}{invitation.id}")]])
    elif graduate.consent_survey:
        lines.append(
            _("We will send you the questionnaire here when it opens for your year group.")
        )
    lines.append(
        _("You can change your choices at any time with /privacy. /help lists what I can do.")
    )
    if invitation is not None:
        # Recorded before sending, so that a dispatcher tick in between sends no second one.
        await mark_offered(rt.db, invitation, now)
    await rt.channel_for(chat_id).send(chat_id, "\n".join(lines), markup)


# ---------------------------------------------------------------- transitions


def _age_step(school: Institution, graduate_birth_year: int | None, guardian: bool) -> str:
    """The step after we know (or need to ask) whether the person is old enough."""
    if guardian:
        return C_SURVEY
    result = check_age(graduate_birth_year, _today(), consent_age(school.country))
    if result is AgeCheck.OLD_ENOUGH:
        return C_SURVEY
    if result is AgeCheck.TOO_YOUNG:
        return GUARDIAN
    return AGE


async def begin_onboarding(rt: Runtime, turn: Turn, graduate: Graduate) -> None:
    """A personal invite was accepted: link the chat (a Telegram chat; a web chat is the
    graduate's own already) and ask for the language."""
    chat_id = turn.chat_id
    async with rt.db.session() as session:
        graduate = await session.get(Graduate, graduate.id) or graduate
        state = await get_chat_state(session, chat_id)
        school = await session.get(Institution, graduate.institution_id)
        assert school is not None
        if not is_web_chat(chat_id):
            graduate.chat_id = chat_id
            graduate.linked_at = utcnow()
            graduate.unreachable_at = None
            graduate.unreachable_reason = None
        language = choose_language(graduate.language, turn.event.language, school.default_language)
        state.flow, state.step = ONBOARD, LANGUAGE
        state.graduate_id = graduate.id
        state.language = language
        state.data = {}
        state.prompt_pending = True
        touch_state(state)
        session.add(graduate)
        session.add(state)
    assert graduate.id is not None
    await plan_invitations(rt.db, rt.plans, now=rt.clock.now(), graduate_ids=[graduate.id])
    set_language(language)
    await send_prompt(rt, chat_id)


async def _link_registered(rt: Runtime, turn: Turn, graduate: Graduate) -> None:
    """Link a Telegram chat to a graduate who gave their choices on another channel, and go
    on with the questionnaire open for them, if any."""
    from conversations.survey import survey_command

    async with rt.db.session() as session:
        stored = await session.get(Graduate, graduate.id)
        assert stored is not None
        stored.chat_id = turn.chat_id
        stored.linked_at = utcnow()
        stored.unreachable_at = None
        stored.unreachable_reason = None
        stored.updated_at = utcnow()
        state = await get_chat_state(session, turn.chat_id)
        state.graduate_id = stored.id
        state.language = stored.language or state.language
        touch_state(state)
        session.add(stored)
        session.add(state)
    set_language(choose_language(stored.language, turn.event.language, None))
    await turn.say(_("Welcome back! You are already registered. /help lists what I can do."))
    await survey_command(rt, turn)


async def begin_registration(rt: Runtime, turn: Turn, school: Institution) -> None:
    chat_id = turn.chat_id
    language = choose_language(None, turn.event.language, school.default_language)
    async with rt.db.session() as session:
        state = await get_chat_state(session, chat_id)
        state.flow, state.step = REGISTER, LANGUAGE
        state.graduate_id = None
        state.language = language
        state.data = {"institution_id": school.id}
        state.prompt_pending = True
        touch_state(state)
        session.add(state)
    set_language(language)
    await send_prompt(rt, chat_id)


def _advance(state: ChatState, step: str) -> None:
    """Move to `step` (committed by the caller's session), or finish the flow."""
    state.step = step
    state.prompt_pending = bool(step)
    if not step:
        state.flow = ""
        state.data = {}
    touch_state(state)


async def _after_consent(state: ChatState, graduate: Graduate) -> str:
    if state.step == C_SURVEY:
        return C_FOLLOWUP if graduate.consent_survey else C_NEWS
    if state.step == C_FOLLOWUP:
        return C_NEWS
    return ""


# ---------------------------------------------------------------- handlers


async def start(rt: Runtime, turn: Turn) -> None:
    """/start, with or without a payload."""
    chat_id = turn.chat_id
    payload = parse_start_payload(" ".join(turn.event.args))
    if payload.kind is PayloadKind.STAFF:
        from conversations.staff import accept_staff_invite

        await accept_staff_invite(rt, turn, payload.value)
        return
    tg_language = turn.event.language
    async with rt.db.session() as session:
        await claim(session)
        state = await get_chat_state(session, chat_id)
        linked = await graduate_by_chat(session, chat_id)
        target: Graduate | None = None
        school: Institution | None = None
        if payload.kind is PayloadKind.INVITE:
            target = await graduate_by_token(session, payload.value)
        elif payload.kind is PayloadKind.SCHOOL:
            school = await institution_by_code(session, payload.value)
        restored = linked is not None and linked.opted_out_at is not None
        if linked is not None and (linked.opted_out_at or linked.unreachable_at):
            # /start after /stop or a block restores contact.
            linked.opted_out_at = None
            linked.unreachable_at = None
            linked.unreachable_reason = None
            session.add(linked)
        language = state.language or (linked.language if linked else None) or tg_language
        session.add(state)
    set_language(choose_language(language, None, None))
    if linked is not None:
        back_on = (
            _("Contact is back on: I will write to you again, as you chose in /privacy.") + "\n\n"
            if restored
            else ""
        )
        if target is not None and target.id != linked.id:
            await turn.say(
                _(
                    "This Telegram account is already linked to your registration. "
                    "If this link belongs to someone else, please pass it on to them."
                )
            )
            return
        if state.flow:
            if state.step == GUARDIAN and linked.guardian_consent_at is not None:
                await _resume_after_guardian(rt, chat_id)
            await turn.say(back_on + _("Welcome back! Let's continue where we left off."))
            await send_prompt(rt, chat_id)
            return
        if linked.consent_survey is None and linked.id is not None:
            # Never asked (a web link opened from an e-mail): ask now.
            await begin_onboarding(rt, turn, linked)
            return
        if is_web_chat(chat_id) and not restored:
            # The web link is opened to answer: the open questionnaire, or the one due.
            from conversations.survey import survey_command

            await survey_command(rt, turn)
            return
        await turn.say(
            back_on + _("Welcome back! You are already registered. /help lists what I can do.")
        )
        return

    if payload.kind is PayloadKind.INVITE:
        if target is None:
            await turn.say(
                _(
                    "I don't recognise this link. Please check that you opened the whole link, "
                    "or ask your school for your personal link."
                )
            )
            return
        if target.invite_revoked_at is not None:
            await turn.say(_("This link is no longer valid. Please ask your school for a new one."))
            return
        if target.chat_id is not None and target.chat_id != chat_id:
            await turn.say(
                _(
                    "This link has already been used from another Telegram account. "
                    "If that was not you, please contact your school."
                )
            )
            return
        if target.consent_survey is not None and target.opted_out_at is None:
            # Registered on another channel (the web chat): this chat is linked and goes
            # on from there, with the choices and answers already given.
            await _link_registered(rt, turn, target)
            return
        await begin_onboarding(rt, turn, target)
        return

    if payload.kind is PayloadKind.SCHOOL:
        if school is None:
            await turn.say(
                _("I don't recognise this school link. Please ask your school for the right one.")
            )
            return
        if state.flow == REGISTER and state.data.get("institution_id") == school.id:
            await turn.say(_("Welcome back! Let's continue where we left off."))
            await send_prompt(rt, chat_id)
            return
        await begin_registration(rt, turn, school)
        return

    if payload.kind is PayloadKind.INVALID:
        await turn.say(
            _(
                "I don't recognise this link. Please check that you opened the whole link, "
                "or ask your school for your personal link."
            )
        )
        return
    if state.flow == REGISTER:
        await turn.say(_("Welcome back! Let's continue where we left off."))
        await send_prompt(rt, chat_id)
        return
    await turn.say(not_registered_text())


async def on_button(rt: Runtime, turn: Turn) -> None:
    """A button of an onboarding question: `ob:<step>:<value>`."""
    chat_id = turn.chat_id
    _prefix, step, value = ([*turn.event.data.split(":", 2), "", ""])[:3]
    label = ""
    async with rt.db.session() as session:
        await claim(session)
        state = await get_chat_state(session, chat_id)
        graduate = await session.get(Graduate, state.graduate_id) if state.graduate_id else None
        set_language(state.language or (graduate.language if graduate else None))
        if state.flow not in (ONBOARD, REGISTER) or state.step != step:
            await turn.notice(_("This question has already been answered."))
            return
        school_id = graduate.institution_id if graduate else state.data.get("institution_id")
        school = await session.get(Institution, school_id) if school_id else None
        if school is None:
            await turn.notice(_("This question has already been answered."))
            return
        error = ""
        next_step = ""
        if step == LANGUAGE:
            if value not in LANGUAGES:
                error = _("Please choose one of the buttons.")
            else:
                state.language = value
                if graduate is not None:
                    graduate.language = value
                    graduate.updated_at = utcnow()
                    session.add(graduate)
                    next_step = _age_step(
                        school, graduate.birth_year, bool(graduate.guardian_consent_at)
                    )
                else:
                    next_step = PROGRAMME
                label = language_name(value)
                set_language(value)
        elif step == PROGRAMME:
            programme_id = row_id(value)
            programme = await session.get(Programme, programme_id) if programme_id else None
            if programme is None or programme.institution_id != school.id or not programme.active:
                error = _("Please choose one of the buttons.")
            else:
                state.data["programme_id"] = programme.id
                label = programme.name
                next_step = GRAD_YEAR
        elif step == GRAD_YEAR:
            if row_id(value) not in graduation_years(_today()):
                error = _("Please choose one of the buttons.")
            else:
                state.data["grad_year"] = int(value)
                label = value
                next_step = GRAD_MONTH
        elif step == GRAD_MONTH:
            if row_id(value) not in range(1, 13):
                error = _("Please choose one of the buttons.")
            else:
                state.data["grad_month"] = int(value)
                label = month_name(int(value)).capitalize()
                next_step = BIRTH_YEAR
        elif step == AGE:
            if value not in ("y", "n"):
                error = _("Please choose one of the buttons.")
            else:
                label = _("Yes") if value == "y" else _("No")
                next_step = C_SURVEY if value == "y" else GUARDIAN
        elif step in CONSENT_STEPS:
            if value not in ("y", "n") or graduate is None:
                error = _("Please choose one of the buttons.")
            else:
                set_consent(
                    session,
                    graduate,
                    CONSENT_STEPS[step],
                    value == "y",
                    shown_version(rt.settings, school),
                )
                label = _("Yes") if value == "y" else _("No")
                next_step = await _after_consent(state, graduate)
        else:
            error = _("This question has already been answered.")
        if error:
            await turn.notice(error)
            return
        _advance(state, next_step)
        session.add(state)
    await turn.notice()
    await close_question(turn, label)
    if next_step:
        await send_prompt(rt, chat_id)
    else:
        await _finish(rt, chat_id)


async def _resume_after_guardian(rt: Runtime, chat_id: int) -> None:
    async with rt.db.session() as session:
        state = await get_chat_state(session, chat_id)
        _advance(state, C_SURVEY)
        session.add(state)


def _register(state: ChatState, school: Institution) -> Graduate:
    """Create the graduate record of a self-registration from the answers so far."""
    year, month = int(state.data["grad_year"]), int(state.data["grad_month"])
    last_day = calendar.monthrange(year, month)[1]
    assert school.id is not None
    return Graduate(
        institution_id=school.id,
        programme_id=int(state.data["programme_id"]),
        student_ref=f"self-{state.chat_id}",
        graduation_date=date(year, month, last_day),
        language=state.language,
        birth_year=state.data.get("birth_year"),
        self_registered=True,
        chat_id=state.chat_id,
        linked_at=utcnow(),
    )


async def on_text(rt: Runtime, turn: Turn) -> bool:
    """Typed text during onboarding. Returns False when no onboarding question is open."""
    chat_id = turn.chat_id
    text = turn.event.text
    registered: int | None = None
    async with rt.db.session() as session:
        state = await get_chat_state(session, chat_id)
        if state.flow not in TEXT_FLOWS or not state.step:
            return False
        await claim(session)
        graduate = await session.get(Graduate, state.graduate_id) if state.graduate_id else None
        set_language(state.language or (graduate.language if graduate else None))
        if state.step != BIRTH_YEAR:
            session.add(state)
            await turn.say(_("Please answer with the buttons below the question."))
        else:
            year = parse_birth_year(text, _today())
            if year is None:
                await turn.say(_birth_year_error(text))
                return True
            school = await session.get(Institution, state.data.get("institution_id"))
            assert school is not None
            state.data["birth_year"] = year
            graduate = _register(state, school)
            session.add(graduate)
            await session.flush()
            state.graduate_id = registered = graduate.id
            _advance(state, _age_step(school, year, False))
            session.add(state)
    if registered is not None:
        # A new graduate: the waves open for them now can be answered at once.
        await plan_invitations(rt.db, rt.plans, now=rt.clock.now(), graduate_ids=[registered])
    await send_prompt(rt, chat_id)
    return True


def _birth_year_error(text: str) -> str:
    """Why a typed birth year was refused: not a year at all, or a year out of range."""
    value = text.strip()
    if value.isascii() and value.isdigit() and len(value) == 4:
        this_year = _today().year
        return _(
            "{year} is not possible as your year of birth. Please type a year between "
            "{earliest} and {latest}."
        ).format(year=value, earliest=this_year - 100, latest=this_year - 10)
    return _("Please type your year of birth as four digits, for example 2006.")


register(ONBOARD, _render)
register(REGISTER, _render)
