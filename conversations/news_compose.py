"""Alumni officers write news in the chat: text (or photo), versions in other languages,
audience, preview, then send now or schedule. `/broadcasts` lists and cancels them.

The draft is a `Broadcast` row from the first step, updated on every step; where the officer
is, is the `chat_state` row (flow "news"), so that a restart resumes. Buttons carry the
broadcast and the step (`nc:<broadcast>:<step>:<value>`): a button of another draft or of an
earlier step is stale and changes nothing.
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import extract
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import (
    _,
    format_datetime,
    language_name_here,
    ngettext,
    set_language,
    use_language,
)
from bot.reporting import wave_label
from bot.runtime import Runtime
from conversations import access
from conversations.channel import Button, Keyboard, Refused, Turn, Unreachable, keyboard
from conversations.followups import list_label
from conversations.news_html import NewsHtmlError, check_news_html
from conversations.prompting import Prompt, close_question, register, send_prompt
from conversations.questionnaire import Questionnaire
from conversations.rules import LANGUAGES
from conversations.staff import load_staff, refuse_role, staff_language, staff_only
from storage.followups import OFFER as OFFER_LIST
from storage.followups import WORK as WORK_LIST
from storage.models import (
    Broadcast,
    BroadcastStatus,
    ChatState,
    DeliveryStatus,
    Graduate,
    Institution,
    Programme,
    Segment,
    Staff,
)
from storage.news import (
    Audience,
    AudienceError,
    cancel,
    count_audience,
    count_by_language,
    failure_reasons,
    pending_count,
    reasons_text,
    schedule,
)
from storage.news import refresh_counts as refresh_broadcast
from storage.processed import claim
from storage.queries import get_chat_state, touch_state
from storage.types import row_id

log = logging.getLogger(__name__)

FLOW = "news"
TEXT = "text"
FIRST_LANG = "first_lang"
MORE = "more"
LANG_TEXT = "lang_text"
AUDIENCE = "audience"
SEG_NAME = "seg_name"
PREVIEW = "preview"
WHEN = "when"

CB_PREFIX = "nc"
PATTERN = rf"^{CB_PREFIX}:"
CANCEL_PREFIX = "bc:"
CANCEL_PATTERN = r"^bc:[0-9]+$"
CAPTION_LIMIT = 1024
DATE_FORMATS = ("%Y-%m-%d %H:%M", "%d-%m-%Y %H:%M", "%d/%m/%Y %H:%M", "%d.%m.%Y %H:%M")


def _cb(broadcast_id: int, step: str, value: str = "") -> str:
    return f"{CB_PREFIX}:{broadcast_id}:{step}:{value}"


# ---------------------------------------------------------------- what graduates get


@dataclass(frozen=True)
class NewsMessage:
    """A broadcast as one graduate receives it."""

    text: str  # Telegram HTML
    photo: str | None
    keyboard: Keyboard


def news_footer(school: str | None) -> str:
    """The line under every news message, in the current language: who sends it and how to
    stop it (HTML)."""
    stop = _("/privacy to stop news")
    return f"— {html.escape(school)} · {stop}" if school else f"— {stop}"


def render_news(
    broadcast: Broadcast, language: str | None, school: str | None = None
) -> NewsMessage:
    """The broadcast in `language` (its default language's version if there is none), signed
    with the school's name and how to stop news. A photo's caption leaves the footer out
    only when the two would not fit in Telegram's 1024 characters."""
    lang = language if language in broadcast.texts else broadcast.default_language
    text = broadcast.texts.get(lang) or next(iter(broadcast.texts.values()), "")
    with use_language(lang):
        footer = news_footer(school)
    plain = len(html.unescape(re.sub(r"<[^>]*>", "", text + footer))) + 2
    if not broadcast.photo or plain <= CAPTION_LIMIT:
        text = f"{text}\n\n{footer}"
    buttons: Keyboard = ()
    if broadcast.link_url:
        label = (
            broadcast.link_labels.get(lang)
            or broadcast.link_labels.get(broadcast.default_language)
            or broadcast.link_url
        )
        buttons = keyboard([[Button(label, url=broadcast.link_url)]])
    return NewsMessage(text, broadcast.photo, buttons)


# ---------------------------------------------------------------- helpers


def _audience(broadcast: Broadcast) -> Audience:
    try:
        return Audience.from_filter(broadcast.filter)
    except AudienceError:
        return Audience()


async def audience_count(session: AsyncSession, broadcast: Broadcast) -> int:
    return await count_audience(session, _audience(broadcast).within(broadcast.institution_id))


async def _school_timezone(session: AsyncSession, institution_id: int | None) -> str:
    school = await session.get(Institution, institution_id) if institution_id else None
    return school.timezone if school else "UTC"


def parse_when(text: str, timezone: str) -> datetime | None:
    """A typed local date and time (2026-12-01 10:00 or 01-12-2026 10:00) as aware UTC."""
    value = re.sub(r"\s+", " ", text.strip())
    for fmt in DATE_FORMATS:
        try:
            local = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return local.replace(tzinfo=ZoneInfo(timezone)).astimezone(ZoneInfo("UTC"))
    return None


def example_time(now: datetime, timezone: str) -> str:
    """Tomorrow at 10:00 on the school's clock, typed the way `parse_when` reads it."""
    tomorrow = now.astimezone(ZoneInfo(timezone)).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(10, 0)).strftime(DATE_FORMATS[0])


async def version_counts(session: AsyncSession, broadcast: Broadcast) -> tuple[dict[str, int], int]:
    """How many recipients get each language version: those who read it, and for the
    default version also those whose language has no version of its own (the second
    number: how many of those there are)."""
    by_language = await count_by_language(
        session, _audience(broadcast).within(broadcast.institution_id)
    )
    counts = {lang: by_language.get(lang, 0) for lang in _versions(broadcast)}
    others = sum(n for lang, n in by_language.items() if lang not in broadcast.texts)
    counts[broadcast.default_language] = counts.get(broadcast.default_language, 0) + others
    return counts, others


def _versions(broadcast: Broadcast) -> list[str]:
    """The broadcast's languages, its default first."""
    return sorted(broadcast.texts, key=lambda lang: lang != broadcast.default_language)


def version_header(lang: str, count: int, others: bool) -> str:
    """The line above a preview: who gets this version (in the staff member's language)."""
    name = language_name_here(lang, capital=False)
    if others:
        return ngettext(
            "For the {count} graduate who reads {language} or a language without a version:",
            "For the {count} graduates who read {language} or a language without a version:",
            count,
        ).format(count=count, language=name)
    return ngettext(
        "For the {count} graduate who reads {language}:",
        "For the {count} graduates who read {language}:",
        count,
    ).format(count=count, language=name)


def local_time(moment: datetime, timezone: str) -> str:
    """`moment` on the school's clock, written the way the current language writes it."""
    return format_datetime(moment, timezone)


async def _programmes(session: AsyncSession, institution_id: int | None) -> list[Programme]:
    query = select(Programme).where(col(Programme.active))
    if institution_id is not None:
        query = query.where(Programme.institution_id == institution_id)
    return list((await session.exec(query.order_by(col(Programme.name)).limit(20))).all())


async def _years(session: AsyncSession, institution_id: int | None) -> list[int]:
    year = extract("year", col(Graduate.graduation_date))
    query = select(year).distinct()
    if institution_id is not None:
        query = query.where(Graduate.institution_id == institution_id)
    years = sorted({int(y) for y in (await session.exec(query)).all() if y is not None})
    return years[-8:]


async def _segments(session: AsyncSession, institution_id: int | None) -> list[Segment]:
    query = select(Segment)
    if institution_id is not None:
        query = query.where(Segment.institution_id == institution_id)
    return list((await session.exec(query.order_by(col(Segment.id).desc()).limit(10))).all())


def _mark(on: bool, label: str) -> str:
    return f"{'✅' if on else '⬜'} {label}"


async def _audience_prompt(rt: Runtime, session: AsyncSession, broadcast: Broadcast) -> Prompt:
    assert broadcast.id is not None
    bid = broadcast.id
    audience = _audience(broadcast)
    rows: list[list[Button]] = []
    for programme in await _programmes(session, broadcast.institution_id):
        on = programme.id in audience.programme_ids
        rows.append([Button(_mark(on, programme.name), _cb(bid, AUDIENCE, f"p{programme.id}"))])
    years = [
        Button(_mark(y in audience.graduation_years, str(y)), _cb(bid, AUDIENCE, f"y{y}"))
        for y in await _years(session, broadcast.institution_id)
    ]
    rows.extend(years[i : i + 4] for i in range(0, len(years), 4))
    langs = [
        Button(
            _mark(code in audience.languages, code.upper()),
            _cb(bid, AUDIENCE, f"l{code}"),
        )
        for code in LANGUAGES
    ]
    rows.append(langs)
    for wave in rt.plans.default.waves:
        on = audience.wave == wave.name
        label = _("Not responded yet: {wave}").format(wave=wave_label(wave))
        rows.append([Button(_mark(on, label), _cb(bid, AUDIENCE, f"w{wave.name}"))])
    # The follow-up lists (storage/followups.py), and a narrower one chosen on the dashboard.
    tracking = _tracking(rt)
    lists = [WORK_LIST, OFFER_LIST]
    if audience.followup and audience.followup not in lists:
        lists.append(audience.followup)
    for key in lists:
        label = _mark(audience.followup == key, list_label(key, tracking))
        rows.append([Button(label[:60], _cb(bid, AUDIENCE, f"f{key}"))])
    for segment in await _segments(session, broadcast.institution_id):
        label = _("Segment: {name}").format(name=segment.name)
        rows.append([Button(label[:60], _cb(bid, AUDIENCE, f"g{segment.id}"))])
    rows.append(
        [
            Button(_("Save as segment"), _cb(bid, AUDIENCE, "save")),
            Button(_("Continue"), _cb(bid, AUDIENCE, "go")),
        ]
    )
    count = await audience_count(session, broadcast)
    text = _(
        "Who should receive it? Tap to choose programmes, graduation years, languages or a "
        "wave; nothing chosen means everyone.\n\nRecipients now: {count}"
    ).format(count=count)
    return Prompt(text, keyboard(rows))


async def _render(rt: Runtime, state: ChatState) -> Prompt | None:
    bid = state.data.get("broadcast_id")
    async with rt.db.session() as session:
        broadcast = await session.get(Broadcast, bid) if bid else None
        if broadcast is None or broadcast.status != BroadcastStatus.DRAFT.value:
            return None
        assert broadcast.id is not None
        step = state.step
        if step == TEXT:
            return Prompt(
                _(
                    "Send the news text. Formatting is kept. You can also send a photo with "
                    "a caption. /cancel discards the news."
                )
            )
        if step == FIRST_LANG:
            first = broadcast.default_language  # the school's until the officer chooses
            choices = sorted(LANGUAGES, key=lambda code: code != first)
            buttons = [
                Button(language_name_here(code), _cb(broadcast.id, FIRST_LANG, code))
                for code in choices
            ]
            return Prompt(
                _("Which language is this text in?"),
                keyboard([buttons[i : i + 2] for i in range(0, len(buttons), 2)]),
            )
        if step == MORE:
            buttons = [
                Button(
                    _("Add {language}").format(language=language_name_here(code)),
                    _cb(broadcast.id, MORE, code),
                )
                for code in LANGUAGES
                if code not in broadcast.texts
            ]
            rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
            rows.append([Button(_("Done"), _cb(broadcast.id, MORE, "done"))])
            written = ", ".join(
                language_name_here(code, capital=False) for code in _versions(broadcast)
            )
            return Prompt(
                _(
                    "Saved ({languages}). Add a version in another language, or tap Done. "
                    "Graduates without a version in their language get the {default} one."
                ).format(
                    languages=written,
                    default=language_name_here(broadcast.default_language, capital=False),
                ),
                keyboard(rows),
            )
        if step == LANG_TEXT:
            code = str(state.data.get("lang", ""))
            return Prompt(
                _("Send the {language} version of the news.").format(
                    language=language_name_here(code, capital=False) if code in LANGUAGES else code
                )
            )
        if step == AUDIENCE:
            return await _audience_prompt(rt, session, broadcast)
        if step == SEG_NAME:
            return Prompt(_("Type a name for this segment."))
        if step == PREVIEW:
            count = await audience_count(session, broadcast)
            school = (
                await session.get(Institution, broadcast.institution_id)
                if broadcast.institution_id
                else None
            )
            counts, others = await version_counts(session, broadcast)
            channel = rt.channel_for(state.chat_id)
            for lang in _versions(broadcast):
                with_others = lang == broadcast.default_language and others > 0
                await channel.send(state.chat_id, version_header(lang, counts[lang], with_others))
                news = render_news(broadcast, lang, school.name if school else None)
                # Exactly as graduates get it (bot/news.py sends the same NewsMessage).
                await channel.send(
                    state.chat_id, news.text, news.keyboard, html=True, photo=news.photo
                )
            return Prompt(
                _(
                    "Above is the news as graduates will see it, each language version with "
                    "how many get it. Recipients now: {count}."
                ).format(count=count),
                keyboard(
                    [
                        [
                            Button(_("Send now"), _cb(broadcast.id, PREVIEW, "now")),
                            Button(_("Schedule"), _cb(broadcast.id, PREVIEW, "later")),
                        ],
                        [
                            Button(
                                _("Change the audience"),
                                _cb(broadcast.id, PREVIEW, "back"),
                            )
                        ],
                    ]
                ),
            )
        if step == WHEN:
            timezone = await _school_timezone(session, broadcast.institution_id)
            return Prompt(
                _(
                    "When should it go out? Type the date and time ({timezone}), for example "
                    "{example} for tomorrow at 10:00."
                ).format(timezone=timezone, example=example_time(rt.clock.now(), timezone))
            )
    return None


def _move(state: ChatState, step: str) -> None:
    state.step = step
    state.prompt_pending = bool(step)
    if not step:
        state.flow = ""
        state.data = {}
    touch_state(state)


def _tracking(rt: Runtime) -> Questionnaire | None:
    """The tracking questionnaire (the follow-up lists' choices), if it is deployed."""
    try:
        return rt.questionnaires.deployed("tracking")
    except KeyError:
        return None


class Busy(Exception):
    """The staff member is writing other news in the chat."""


async def start_draft(
    rt: Runtime,
    staff: Staff,
    *,
    texts: dict[str, str],
    default_language: str,
    audience: Audience,
    lead: str,
    language: str,
) -> int:
    """Begin news for `staff` from elsewhere (the dashboard: "you said, we did", news to a
    follow-up list): a draft with `texts` (Telegram HTML, may be empty) and `audience`, and
    the composer in the staff member's Telegram chat, in `language`, at the step that comes
    next (the text if there is none, else adding languages), after the message `lead`.
    Returns the draft's id; `Busy` if they are writing other news (nothing changes then);
    `Unreachable`/`Refused` if their chat cannot be written to (the draft is cancelled)."""
    assert staff.telegram_user_id is not None
    chat_id = staff.telegram_user_id
    async with rt.db.session() as session:
        state = await get_chat_state(session, chat_id)
        bid = state.data.get("broadcast_id") if state.flow == FLOW else None
        current = await session.get(Broadcast, bid) if bid else None
        if current is not None and current.status == BroadcastStatus.DRAFT.value and state.step:
            raise Busy()
        broadcast = Broadcast(
            institution_id=staff.institution_id,
            created_by=staff.id,
            texts=dict(texts),
            default_language=default_language,
            filter=audience.to_filter(),
            report_chat_id=chat_id,
            status=BroadcastStatus.DRAFT.value,
        )
        session.add(broadcast)
        await session.flush()
        assert broadcast.id is not None
        state.flow = FLOW
        state.data = {"broadcast_id": broadcast.id}
        _move(state, MORE if texts else TEXT)
        state.language = language
        session.add(state)
        draft_id = broadcast.id
    try:
        await rt.channel_for(chat_id).send(chat_id, lead)
    except (Unreachable, Refused):
        # The chat cannot be written to (blocked the bot): nothing is begun after all.
        async with rt.db.session() as session:
            draft = await session.get(Broadcast, draft_id)
            if draft is not None:
                draft.status = BroadcastStatus.CANCELLED.value
                draft.cancelled_at = rt.clock.now()
                session.add(draft)
            state = await get_chat_state(session, chat_id)
            _move(state, "")
            session.add(state)
        raise
    await send_prompt(rt, chat_id)
    return draft_id


# ---------------------------------------------------------------- handlers


async def begin(rt: Runtime, turn: Turn, staff: Staff) -> None:
    """/news from staff: a new draft, or back to the one being written."""
    chat_id = turn.chat_id
    language = staff_language(staff, turn)
    resumed = False
    async with rt.db.session() as session:
        await claim(session)
        state = await get_chat_state(session, chat_id)
        draft = (
            await session.get(Broadcast, state.data.get("broadcast_id"))
            if state.flow == FLOW and state.data.get("broadcast_id")
            else None
        )
        if draft is not None and draft.status == BroadcastStatus.DRAFT.value:
            resumed = True
        else:
            school = (
                await session.get(Institution, staff.institution_id)
                if staff.institution_id
                else None
            )
            broadcast = Broadcast(
                institution_id=staff.institution_id,
                created_by=staff.id,
                default_language=school.default_language if school else "en",
                report_chat_id=chat_id,
                status=BroadcastStatus.DRAFT.value,
            )
            session.add(broadcast)
            await session.flush()
            state.flow = FLOW
            state.data = {"broadcast_id": broadcast.id}
            _move(state, TEXT)
        state.language = language
        state.prompt_pending = True
        session.add(state)
    set_language(language)
    if resumed:
        await turn.say(_("You are already writing news. Let's continue; /cancel discards it."))
    await send_prompt(rt, chat_id)


def _html_problem(text: str) -> str | None:
    """What Telegram would refuse in the news text, said to the officer, or None."""
    try:
        check_news_html(text)
    except NewsHtmlError as error:
        return _(
            "Telegram cannot show this text's formatting ({problem}). Please send it again."
        ).format(problem=error)
    return None


def _plain_length(turn: Turn) -> int:
    return len(turn.event.text or turn.event.caption or "")


async def on_message(rt: Runtime, turn: Turn) -> None:
    """Any message but a command or a service message: an open news step takes it (text, or
    a photo with a caption); otherwise a forward, text, or anything else (a sticker, a
    voice note …) goes to its handler in conversations.account."""
    from conversations import account

    event = turn.event
    chat_id = turn.chat_id
    async with rt.db.session() as session:
        state = await get_chat_state(session, chat_id)
        composing = state.flow == FLOW and bool(state.step)
        flow = state.flow
        session.add(state)
    if not composing:
        if event.forwarded:
            await account.on_forwarded(rt, turn)
        elif event.kind == "text":
            await account.on_text(rt, turn, flow)
        else:
            await account.on_unreadable(rt, turn)
        return
    staff = await load_staff(rt, turn)
    if staff is None or not access.permits(access.WRITERS, staff):
        # Removed from staff (or given a role that writes no news) while writing news: the
        # writing ends, and the message is answered as anyone's would be.
        async with rt.db.session() as session:
            state = await get_chat_state(session, chat_id)
            if state.flow == FLOW:
                _move(state, "")
                session.add(state)
        if event.kind == "text":
            await account.on_text(rt, turn)
        return
    error = ""
    done_text = ""
    async with rt.db.session() as session:
        await claim(session)
        state = await get_chat_state(session, chat_id)
        broadcast = await session.get(Broadcast, state.data.get("broadcast_id"))
        if broadcast is None or broadcast.status != BroadcastStatus.DRAFT.value:
            _move(state, "")
            session.add(state)
            error = _("This news is no longer being written. Send /news to begin again.")
        elif state.step in (TEXT, LANG_TEXT):
            html_text = event.html
            lang = (
                broadcast.default_language
                if state.step == TEXT
                else str(state.data.get("lang") or broadcast.default_language)
            )
            photo = event.photo if state.step == TEXT else None
            problem = _html_problem(html_text) if html_text else None
            if not html_text:
                error = _("Please send the news as text, or as a photo with a caption.")
            elif problem:
                error = problem
            elif (photo or broadcast.photo) and _plain_length(turn) > CAPTION_LIMIT:
                error = _(
                    "With a photo the text can be at most 1024 characters. Please shorten it."
                )
            else:
                broadcast.texts = {**broadcast.texts, lang: html_text}
                if state.step == TEXT:
                    broadcast.photo = photo
                session.add(broadcast)
                state.data.pop("lang", None)
                _move(state, FIRST_LANG if state.step == TEXT else MORE)
        elif state.step == SEG_NAME:
            name = event.text.strip()[:100]
            if not name:
                error = _("Type a name for this segment.")
            else:
                session.add(
                    Segment(
                        institution_id=broadcast.institution_id,
                        name=name,
                        filter=dict(broadcast.filter),
                        created_by=staff.id,
                    )
                )
                done_text = _("Segment saved: {name}").format(name=name)
                _move(state, AUDIENCE)
        elif state.step == WHEN:
            timezone = await _school_timezone(session, broadcast.institution_id)
            due = parse_when(event.text, timezone)
            if due is None:
                error = _(
                    "I could not read that date. Please type it like {example} (year-month-day "
                    "hour:minute)."
                ).format(example=example_time(rt.clock.now(), timezone))
            elif due <= rt.clock.now():
                error = _("That moment has passed. Please type a date and time in the future.")
            else:
                count = await audience_count(session, broadcast)
                await schedule(session, broadcast, due)
                _move(state, "")
                done_text = ngettext(
                    "Scheduled: the news goes to {count} graduate on {time} ({timezone}).",
                    "Scheduled: the news goes to {count} graduates on {time} ({timezone}).",
                    count,
                ).format(count=count, time=local_time(due, timezone), timezone=timezone)
        else:
            error = _("Please answer with the buttons below the question.")
        session.add(state)
        pending = state.prompt_pending
    if error:
        await turn.say(error)
        return
    if done_text:
        await turn.say(done_text)
    if pending:
        await send_prompt(rt, chat_id)


@access.rule(access.WRITERS)
async def on_button(rt: Runtime, turn: Turn) -> None:
    """`nc:<broadcast>:<step>:<value>`."""
    chat_id = turn.chat_id
    staff = await load_staff(rt, turn)
    if staff is None:
        from conversations.account import on_stale_button

        await on_stale_button(rt, turn)
        return
    if not access.permits(access.WRITERS, staff):
        await refuse_role(turn, staff)
        return
    _prefix, bid, step, value = [*turn.event.data.split(":", 3), "", "", ""][:4]
    label = ""
    edit: Prompt | None = None
    done_text = ""
    async with rt.db.session() as session:
        await claim(session)
        state = await get_chat_state(session, chat_id)
        broadcast_id = row_id(bid)
        broadcast = await session.get(Broadcast, broadcast_id) if broadcast_id else None
        if (
            broadcast is None
            or state.flow != FLOW
            or state.step != step
            or state.data.get("broadcast_id") != broadcast.id
            or broadcast.status != BroadcastStatus.DRAFT.value
        ):
            await turn.notice(_("This button is no longer active."))
            return
        if step == FIRST_LANG:
            if value not in LANGUAGES or not broadcast.texts:
                await turn.notice(_("This button is no longer active."))
                return
            text = next(iter(broadcast.texts.values()))
            broadcast.texts = {value: text}
            broadcast.default_language = value
            session.add(broadcast)
            _move(state, MORE)
            label = language_name_here(value)
        elif step == MORE:
            if value == "done":
                _move(state, AUDIENCE)
                label = _("Done")
            elif value in LANGUAGES and value not in broadcast.texts:
                state.data["lang"] = value
                _move(state, LANG_TEXT)
                label = language_name_here(value)
            else:
                await turn.notice(_("This button is no longer active."))
                return
        elif step == AUDIENCE:
            result = await _audience_button(session, broadcast, value)
            if result is None:
                await turn.notice(_("This button is no longer active."))
                return
            if value == "save":
                _move(state, SEG_NAME)
                label = _("Save as segment")
            elif value == "go":
                _move(state, PREVIEW)
                label = _("Continue")
            else:
                broadcast.filter = result.to_filter()
                session.add(broadcast)
                touch_state(state)
                await session.flush()
                edit = await _audience_prompt(rt, session, broadcast)
        elif step == PREVIEW:
            if value == "now":
                count = await audience_count(session, broadcast)
                await schedule(session, broadcast, rt.clock.now())
                _move(state, "")
                label = _("Send now")
                done_text = ngettext(
                    "Sending now to {count} graduate. I will report the progress here.",
                    "Sending now to {count} graduates. I will report the progress here.",
                    count,
                ).format(count=count)
            elif value == "later":
                _move(state, WHEN)
                label = _("Schedule")
            elif value == "back":
                _move(state, AUDIENCE)
                label = _("Change the audience")
            else:
                await turn.notice(_("This button is no longer active."))
                return
        else:
            await turn.notice(_("This button is no longer active."))
            return
        session.add(state)
        pending = state.prompt_pending
    await turn.notice()
    if edit is not None:
        await turn.edit(edit.text, edit.keyboard)  # not edited: the same press twice
        return
    await close_question(turn, label)
    if done_text:
        await turn.say(done_text)
    if pending:
        await send_prompt(rt, chat_id)


async def _audience_button(
    session: AsyncSession, broadcast: Broadcast, value: str
) -> Audience | None:
    """The audience after pressing `value`; None for a button that does not apply."""
    audience = _audience(broadcast)
    if value in ("save", "go"):
        return audience
    kind, arg = value[:1], value[1:]

    def toggle(items: tuple[Any, ...], item: Any) -> tuple[Any, ...]:
        return tuple(i for i in items if i != item) if item in items else (*items, item)

    data = audience.to_filter()
    number = row_id(arg)
    if kind == "p" and number:
        programme = await session.get(Programme, number)
        if programme is None or (
            broadcast.institution_id is not None
            and programme.institution_id != broadcast.institution_id
        ):
            return None
        data["programme_ids"] = list(toggle(audience.programme_ids, programme.id))
    elif kind == "y" and number:
        data["graduation_years"] = list(toggle(audience.graduation_years, number))
    elif kind == "l" and arg in LANGUAGES:
        data["languages"] = list(toggle(audience.languages, arg))
    elif kind == "f" and arg:
        data["followup"] = None if audience.followup == arg else arg
    elif kind == "w" and arg:
        if audience.wave == arg:
            data["wave"], data["wave_status"] = None, None
        else:
            data["wave"], data["wave_status"] = arg, "not_responded"
    elif kind == "g" and number:
        segment = await session.get(Segment, number)
        if segment is None or (
            broadcast.institution_id is not None
            and segment.institution_id != broadcast.institution_id
        ):
            return None
        try:
            return Audience.from_filter(dict(segment.filter))
        except AudienceError:
            return None
    else:
        return None
    try:
        return Audience.from_filter(data)
    except AudienceError:
        return None  # a list that does not exist


@staff_only(roles=access.WRITERS)
async def cancel_command(rt: Runtime, turn: Turn, staff: Staff) -> None:
    """/cancel: discard the news being written."""
    discarded = False
    async with rt.db.session() as session:
        await claim(session)
        state = await get_chat_state(session, turn.chat_id)
        if state.flow == FLOW:
            broadcast = await session.get(Broadcast, state.data.get("broadcast_id"))
            if broadcast is not None and broadcast.status == BroadcastStatus.DRAFT.value:
                broadcast.status = BroadcastStatus.CANCELLED.value
                broadcast.cancelled_at = rt.clock.now()
                session.add(broadcast)
                discarded = True
            _move(state, "")
            session.add(state)
    if discarded:
        await turn.say(_("The news draft is discarded."))
    else:
        await turn.say(_("There is nothing to cancel."))


# ---------------------------------------------------------------- /broadcasts


def _in_scope(staff: Staff, broadcast: Broadcast) -> bool:
    if staff.institution_id is None:
        return staff.role == "admin"
    return broadcast.institution_id == staff.institution_id


def status_name(status: str) -> str:
    names = {
        BroadcastStatus.DRAFT.value: _("draft"),
        BroadcastStatus.SCHEDULED.value: _("scheduled"),
        BroadcastStatus.SENDING.value: _("sending"),
        BroadcastStatus.DONE.value: _("sent"),
        BroadcastStatus.CANCELLED.value: _("cancelled"),
    }
    return names.get(status, status)


def delivery_status_name(status: str) -> str:
    """A delivery's status as staff read it, in the current language."""
    names = {
        DeliveryStatus.PENDING.value: _("pending"),
        DeliveryStatus.CLAIMED.value: _("being sent"),
        DeliveryStatus.SENT.value: _("sent"),
        DeliveryStatus.BLOCKED.value: _("blocked"),
        DeliveryStatus.FAILED.value: _("failed"),
        DeliveryStatus.CANCELLED.value: _("cancelled"),
    }
    return names.get(status, status)


def can_cancel(staff: Staff, broadcast: Broadcast) -> bool:
    """Whether `staff` may stop `broadcast` now (scheduled or sending, of their scope)."""
    return _in_scope(staff, broadcast) and broadcast.status in (
        BroadcastStatus.SCHEDULED.value,
        BroadcastStatus.SENDING.value,
    )


async def audience_description(
    session: AsyncSession,
    broadcast: Broadcast,
    wave_names: dict[str, str],
    questionnaire: Questionnaire | None = None,
) -> list[tuple[str, str]]:
    """Who a broadcast is for, as (what, who) lines in the current language; `wave_names`
    gives each wave code its label, `questionnaire` (the tracking one) the follow-up lists'
    choices."""
    audience = _audience(broadcast)
    everyone = _("all")
    names: list[str] = []
    if audience.programme_ids:
        found = (
            await session.exec(
                select(Programme).where(col(Programme.id).in_(audience.programme_ids))
            )
        ).all()
        names = sorted(p.name for p in found)
    wave = ""
    if audience.wave:
        label = wave_names.get(audience.wave, audience.wave)
        wave = (
            _("has not answered yet: {wave}")
            if audience.wave_status == "not_responded"
            else _("has answered: {wave}")
        ).format(wave=label)
    return [
        (_("Programmes"), ", ".join(names) or everyone),
        (
            _("Graduation years"),
            ", ".join(str(y) for y in sorted(audience.graduation_years)) or everyone,
        ),
        (
            _("Languages"),
            ", ".join(language_name_here(code, capital=False) for code in audience.languages)
            or everyone,
        ),
        (_("Wave"), wave or everyone),
        *(
            [(_("Follow-up list"), list_label(audience.followup, questionnaire))]
            if audience.followup
            else []
        ),
    ]


def failures_line(reasons: list[tuple[str, int]]) -> str:
    """Why messages failed, in the current language around Telegram's own words."""
    return _("Why they failed: {reasons}").format(
        reasons=reasons_text(reasons, _("no reason given"))
    )


def _snippet(broadcast: Broadcast) -> str:
    raw = broadcast.texts.get(broadcast.default_language) or next(
        iter(broadcast.texts.values()), ""
    )
    plain = html.unescape(re.sub(r"<[^>]+>", "", raw)).replace("\n", " ").strip()
    return plain if len(plain) <= 40 else plain[:39] + "…"


async def broadcasts_view(rt: Runtime, staff: Staff) -> tuple[str, Keyboard]:
    """The last 10 broadcasts in the staff member's scope, with a Cancel button for each
    that can still be stopped."""
    query = select(Broadcast).where(Broadcast.status != BroadcastStatus.DRAFT.value)
    if staff.institution_id is not None:
        query = query.where(Broadcast.institution_id == staff.institution_id)
    elif staff.role != "admin":
        query = query.where(col(Broadcast.id) < 0)
    async with rt.db.session() as session:
        found = list((await session.exec(query.order_by(col(Broadcast.id).desc()).limit(10))).all())
        timezones = {
            b.institution_id: await _school_timezone(session, b.institution_id) for b in found
        }
        reasons = await failure_reasons(session, [b.id for b in found if b.id is not None])
    rows: list[list[Button]] = []
    lines = [_("The latest news:")] if found else [_("No news has been sent yet.")]
    for item in found:
        assert item.id is not None
        if item.status == BroadcastStatus.SENDING.value:
            item = await refresh_broadcast(rt.db, item.id, rt.clock.now())
        when = local_time(item.due_at, timezones[item.institution_id]) if item.due_at else "—"
        lines.append("")
        lines.append(f"#{item.id} · {status_name(item.status)} · {when} · {_snippet(item)}")
        lines.append(
            _("sent {sent} · blocked {blocked} · failed {failed} · pending {pending}").format(
                sent=item.sent,
                blocked=item.blocked,
                failed=item.failed,
                pending=pending_count(item),
            )
        )
        why = reasons.get(item.id or 0)
        if why:
            lines.append(failures_line(why))
        if item.status in (BroadcastStatus.SCHEDULED.value, BroadcastStatus.SENDING.value):
            rows.append([Button(_("Cancel #{id}").format(id=item.id), f"{CANCEL_PREFIX}{item.id}")])
    return "\n".join(lines), keyboard(rows)


@staff_only(roles=access.WRITERS)
async def broadcasts_command(rt: Runtime, turn: Turn, staff: Staff) -> None:
    text, buttons = await broadcasts_view(rt, staff)
    await turn.say(text, buttons)


@staff_only(roles=access.WRITERS)
async def on_cancel_button(rt: Runtime, turn: Turn, staff: Staff) -> None:
    """`bc:<id>`: stop a scheduled or sending broadcast of the staff member's scope."""
    broadcast_id = row_id(turn.event.data[len(CANCEL_PREFIX) :])
    async with rt.db.session() as session:
        await claim(session)
        broadcast = await session.get(Broadcast, broadcast_id) if broadcast_id else None
        live = (
            broadcast is not None
            and _in_scope(staff, broadcast)
            and broadcast.status in (BroadcastStatus.SCHEDULED.value, BroadcastStatus.SENDING.value)
        )
    if not live or broadcast_id is None:
        await turn.notice(_("This button is no longer active."))
        return
    await cancel(rt.db, broadcast_id, rt.clock.now())
    await turn.notice(_("Cancelled."))
    text, buttons = await broadcasts_view(rt, staff)
    if not await turn.edit(text, buttons):
        log.debug("broadcast list not edited")


register(FLOW, _render)
