"""The questionnaire as a chat: one question per message, buttons for choices.

The engine (conversations/engine.py) decides what is asked; this module translates between it
and Telegram. Where the graduate is (`survey_response.current`) and every answer are written
when they happen, before the next question is sent, so a restart or a pause of days resumes
exactly there. Buttons carry the response and the question they belong to:

    sv:<response>:<question>:<code>   answer a select_one or scale question
    st:<response>:<question>:<code>   toggle a choice of a select_multiple question
    sd:<response>:<question>          done with a select_multiple question
    sn:<response>:<question>          keep the answer given before and go on
    sb:<response>:<question>          back to the previous question
    sk:<response>:<question>          skip an optional question
    se:<response>:<question>          change this answer (from the review)
    ss:<response>                     send the answers (from the review)
    sp:<response>:<page>              show another page of the review
    sc:<response>:<question>:<page>   show another page of a long choice list

A button of an earlier question, of a finished questionnaire or of another response does
nothing but say so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from sqlalchemy.orm import aliased
from sqlmodel import col, func, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.i18n import _, format_date, format_month, month_name, ngettext, set_language
from bot.runtime import Runtime
from conversations import engine
from conversations.channel import Button, Keyboard, Turn, keyboard
from conversations.expressions import TEXT_REFERENCE_RE, to_text
from conversations.label_format import label_html, label_plain
from conversations.onboarding import not_registered_text
from conversations.prompting import (
    Decided,
    Prompt,
    close_question,
    decided,
    register,
    send_prompt,
)
from conversations.questionnaire import PAGE_CHOICES, Choice, Question, Questionnaire
from conversations.rules import choose_language
from storage.invitations import open_wave_invitation, wave_response
from storage.models import (
    Answer,
    ChatState,
    Graduate,
    Invitation,
    ResponseChannel,
    ResponseStatus,
    SurveyResponse,
)
from storage.processed import claim
from storage.queries import (
    chat_context,
    chat_context_with,
    get_chat_state,
    graduate_by_chat,
    is_web_chat,
    touch_state,
)
from storage.schools import for_graduate
from storage.types import MAX_ROW_ID, utcnow

log = logging.getLogger(__name__)

SURVEY = "survey"
REVIEW = "__review__"
CALLBACK_KINDS = ("sv", "st", "sd", "sn", "sb", "sk", "se", "ss", "sp", "sc")
CALLBACK_PATTERN = r"^s[vtdnbkespc]:"
MAX_MESSAGE = 4000
#: Telegram refuses an inline keyboard row of more buttons (BUTTON_ROWS_INVALID).
MAX_ROW_BUTTONS = 8

BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def encode_id(value: int) -> str:
    digits = ""
    while True:
        value, rest = divmod(value, 36)
        digits = BASE36[rest] + digits
        if not value:
            return digits


def decode_id(text: str, maximum: int = MAX_ROW_ID) -> int | None:
    """A number written by encode_id, up to `maximum` (by default what PostgreSQL's int4 id
    holds); None for anything else."""
    if not text or len(text) > 8 or any(c not in BASE36 for c in text):
        return None
    value = int(text, 36)
    return value if value <= maximum else None


@dataclass(frozen=True)
class ButtonPress:
    kind: str
    response_id: int
    question: str
    code: str


def parse_callback(data: str) -> ButtonPress | None:
    """Read a survey button's data; None for anything malformed."""
    parts = data.split(":", 3)
    if len(parts) < 2 or parts[0] not in CALLBACK_KINDS:
        return None
    response_id = decode_id(parts[1])
    if response_id is None:
        return None
    question = parts[2] if len(parts) > 2 else ""
    code = parts[3] if len(parts) > 3 else ""
    return ButtonPress(parts[0], response_id, question, code)


def _cb(kind: str, response_id: int, question: str = "", code: str = "") -> str:
    data = f"{kind}:{encode_id(response_id)}"
    if question:
        data += f":{question}"
    if code:
        data += f":{code}"
    return data


# ---------------------------------------------------------------- loading


@dataclass
class Loaded:
    response: SurveyResponse
    questionnaire: Questionnaire
    answers: dict[str, Any]
    """The graduate's own answers in this response (not the carried ones)."""
    language: str
    earlier: dict[str, Any] = field(default_factory=dict)
    """The previous response's answers (``${last-saved#name}``) and its ``_month``; empty:
    there is none."""
    earlier_id: int | None = None
    carried: set[str] = field(default_factory=set)
    """The questions stored as carried from `earlier_id` (`Answer.carried_from`)."""
    rows: dict[str, Answer] = field(default_factory=dict)
    """The response's stored answer rows (own and carried), by question, as loaded in this
    session: an answer is written without reading its row again."""


async def _answers(
    session: AsyncSession, response_id: int
) -> tuple[dict[str, Any], set[str], dict[str, Answer]]:
    """The response's own answers, the names of its carried ones, and all its rows."""
    rows = await session.exec(select(Answer).where(Answer.response_id == response_id))
    return _sorted_answers(rows.all())


def _sorted_answers(
    rows: Iterable[Answer],
) -> tuple[dict[str, Any], set[str], dict[str, Answer]]:
    own: dict[str, Any] = {}
    carried: set[str] = set()
    stored: dict[str, Answer] = {}
    for row in rows:
        stored[row.question] = row
        if row.carried_from is None:
            own[row.question] = row.value
        else:
            carried.add(row.question)
    return own, carried, stored


async def earlier_response(
    session: AsyncSession, response: SurveyResponse
) -> tuple[int | None, dict[str, Any]]:
    """The graduate's previous response to the same questionnaire (any version): the most
    recent one before `response` that was sent and not declined. Its id and its answers (its
    carried ones too), with ``_month`` (``YYYY-MM``, when it was completed); (None, {}) if
    there is none."""
    earlier = (
        await session.exec(
            select(SurveyResponse)
            .where(
                SurveyResponse.graduate_id == response.graduate_id,
                SurveyResponse.form_id == response.form_id,
                SurveyResponse.status == ResponseStatus.SUBMITTED.value,
                col(SurveyResponse.declined).is_(False),
                col(SurveyResponse.id) < (response.id or 0),
            )
            .order_by(col(SurveyResponse.id).desc())
            .limit(1)
        )
    ).first()
    if earlier is None or earlier.id is None:
        return None, {}
    rows = await session.exec(select(Answer).where(Answer.response_id == earlier.id))
    return earlier.id, _earlier_answers(earlier, list(rows.all()))


@dataclass
class _Fetched:
    """A response with its answer rows, and the graduate's earlier response
    (`earlier_response`) with its rows, read in one round trip (`_fetch`)."""

    response: SurveyResponse | None
    rows: list[Answer]
    earlier: SurveyResponse | None
    earlier_rows: list[Answer]


def _earlier_id(response_id: int) -> Any:
    """The id of the response `earlier_response` finds for response `response_id` (a scalar
    subquery)."""
    current = aliased(SurveyResponse, name="current_response")
    before = aliased(SurveyResponse, name="earlier_response")
    earlier_id = (
        select(func.max(before.id))
        .where(
            current.id == response_id,
            before.graduate_id == current.graduate_id,
            before.form_id == current.form_id,
            before.status == ResponseStatus.SUBMITTED.value,
            col(before.declined).is_(False),
            col(before.id) < col(current.id),
        )
        .scalar_subquery()
    )
    return earlier_id


def _fetched(response_id: int, rows: Iterable[tuple[Any, ...]]) -> _Fetched:
    """`_Fetched` from rows of (response, answer) as `_fetch` reads them."""
    fetched = _Fetched(None, [], None, [])
    for response, answer in rows:
        if response is None:
            continue
        if response.id == response_id:
            fetched.response = response
            if answer is not None:
                fetched.rows.append(answer)
        else:
            fetched.earlier = response
            if answer is not None:
                fetched.earlier_rows.append(answer)
    return fetched


def _wanted(response_id: int) -> Any:
    """The rows `_fetch` reads: the response and the earlier one."""
    return or_(
        col(SurveyResponse.id) == response_id, col(SurveyResponse.id) == _earlier_id(response_id)
    )


async def _fetch(session: AsyncSession, response_id: int) -> _Fetched:
    """Response `response_id` (None if there is none) and its answer rows, with the earlier
    response `earlier_response` would find and its rows: one statement, where reading them
    one by one takes four (this runs on every answer)."""
    found = await session.exec(
        select(SurveyResponse, Answer)
        .outerjoin(Answer, col(Answer.response_id) == col(SurveyResponse.id))
        .where(_wanted(response_id))
    )
    return _fetched(response_id, found.all())


async def _context_and_fetch(
    session: AsyncSession, chat_id: int, response_id: int
) -> tuple[ChatState, Graduate | None, _Fetched]:
    """`chat_context` and `_fetch` in one round trip: all an answer reads."""

    def extend(query: Any) -> Any:
        return (
            query.add_columns(SurveyResponse, Answer)
            .outerjoin(SurveyResponse, _wanted(response_id))
            .outerjoin(Answer, col(Answer.response_id) == col(SurveyResponse.id))
        )

    found = await chat_context_with(session, chat_id, extend)
    if found is None:
        state, graduate = await chat_context(session, chat_id)
        return state, graduate, await _fetch(session, response_id)
    state, graduate, rows = found
    return state, graduate, _fetched(response_id, rows)


def _earlier_answers(earlier: SurveyResponse, rows: list[Answer]) -> dict[str, Any]:
    """An earlier response's answers (its carried ones too) with ``_month``, as
    `earlier_response` gives them."""
    answers: dict[str, Any] = {row.question: row.value for row in rows}
    when = earlier.completed_at or earlier.submitted_at or earlier.started_at
    answers["_month"] = f"{when.year:04d}-{when.month:02d}"
    return answers


async def open_response(session: AsyncSession, graduate_id: int) -> SurveyResponse | None:
    result = await session.exec(
        select(SurveyResponse)
        .where(
            SurveyResponse.graduate_id == graduate_id,
            SurveyResponse.status == ResponseStatus.OPEN.value,
        )
        .order_by(col(SurveyResponse.id).desc())
    )
    return result.first()


def _language(questionnaire: Questionnaire, lang: str | None) -> str:
    return lang if lang in questionnaire.languages else questionnaire.default_language


def _text(texts: Any, lang: str, questionnaire: Questionnaire) -> str:
    if not texts:
        return ""
    return str(texts.get(lang) or texts.get(questionnaire.default_language) or "")


async def _stored_answer(
    session: AsyncSession, response_id: int, question: str, rows: dict[str, Answer] | None
) -> Answer | None:
    """The row of `question`'s answer: from `rows` (the response's rows loaded in this
    session) when given, else read."""
    if rows is not None:
        return rows.get(question)
    return (
        await session.exec(
            select(Answer).where(Answer.response_id == response_id, Answer.question == question)
        )
    ).first()


async def _set_answer(
    session: AsyncSession,
    response_id: int,
    question: str,
    value: Any,
    rows: dict[str, Answer] | None = None,
) -> None:
    row = await _stored_answer(session, response_id, question, rows)
    if row is None:
        row = Answer(response_id=response_id, question=question, value=value)
        session.add(row)
        if rows is not None:
            rows[question] = row
    else:
        row.value = value
        row.answered_at = utcnow()
        session.add(row)


async def _delete_answer(
    session: AsyncSession, response_id: int, question: str, rows: dict[str, Answer] | None = None
) -> None:
    row = await _stored_answer(session, response_id, question, rows)
    if row is not None:
        await session.delete(row)
        if rows is not None:
            rows.pop(question, None)


# ---------------------------------------------------------------- rendering


def _display(questionnaire: Questionnaire, question: Question, value: Any, lang: str) -> str:
    if value is None:
        return "—"
    if question.type == "date" and isinstance(value, str):
        try:
            from datetime import date

            return format_date(date.fromisoformat(value), "medium")
        except ValueError:
            return value
    if question.type == "month" and isinstance(value, str):
        year, _dash, month = value.partition("-")
        if year.isdigit() and month.isdigit() and 1 <= int(month) <= 12 and int(year) >= 1:
            return format_month(int(year), int(month))
        return value
    return engine.answer_label(questionnaire, question, value, lang)


def earlier_text(q: Questionnaire, earlier: engine.Answers, name: str, lang: str) -> str:
    """``${last-saved#name}`` as the graduate reads it: the earlier answer shown as answers are
    (choice labels in their language, dates and months written out), or for ``_month`` the
    month of the earlier response ("June", "juni"); '' when there is none. Month names are in
    the current language (set it first)."""
    value = earlier.get(name)
    if value is None or value == "" or value == []:
        return ""
    if name == "_month":
        month = str(value).partition("-")[2]
        return month_name(int(month)) if month.isdigit() and 1 <= int(month) <= 12 else ""
    if name not in q:
        return str(value)
    return _display(q, q.question(name), value, lang)


def answer_text(q: Questionnaire, values: engine.Answers, name: str, lang: str) -> str:
    """``${name}`` as the graduate reads it: this response's answer shown as answers are
    (choice labels in their language, dates and months written out), a calculation's value as
    text; '' when there is none (not answered, or not relevant)."""
    value = values.get(name)
    if value is None or value == "" or value == []:
        return ""
    if name not in q:
        return to_text(value)
    return _display(q, q.question(name), value, lang)


def piped(
    q: Questionnaire,
    earlier: engine.Answers,
    text: str,
    lang: str,
    values: engine.Answers | None = None,
) -> str:
    """A label or hint with each ``${last-saved#name}`` replaced by :func:`earlier_text` and
    each ``${name}`` by :func:`answer_text` (`values`: from engine.values; None: no answers)."""
    if "${" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return earlier_text(q, earlier, match.group(2), lang)
        return answer_text(q, values or {}, match.group(2), lang)

    return TEXT_REFERENCE_RE.sub(replace, text)


def _piped(loaded: Loaded, text: str) -> str:
    if "${" not in text:
        return text
    values = engine.values(loaded.questionnaire, loaded.answers, loaded.earlier)
    return piped(loaded.questionnaire, loaded.earlier, text, loaded.language, values)


def _offered(loaded: Loaded, question: Question) -> tuple[Choice, ...]:
    """The question's choices as the choice_filter leaves them for these answers."""
    if question.choice_filter is None:
        return loaded.questionnaire.choices_for(question)
    q = loaded.questionnaire
    values = engine.values(q, loaded.answers, loaded.earlier)
    return engine.choices_offered(q, question, values, loaded.earlier)


def _current(loaded: Loaded, question: Question) -> Any:
    """The graduate's answer to `question`, unless the choice_filter no longer offers it."""
    value = loaded.answers.get(question.name)
    if value is None or question.choice_filter is None:
        return value
    codes = {choice.name for choice in _offered(loaded, question)}
    if isinstance(value, list):
        return [code for code in value if code in codes] or None
    return value if value in codes else None


def _earlier_text(loaded: Loaded, name: str) -> str:
    return earlier_text(loaded.questionnaire, loaded.earlier, name, loaded.language)


def _typed_instruction(question: Question) -> str:
    low, high = question.bounds
    if low is not None or high is not None:
        return _range_text(low, high, _("Type a number from {min} to {max}."))
    if question.type in ("integer", "decimal"):
        return _("Type a number.")
    if question.type == "date":
        return _("Type the date as day-month-year, for example 30-06-2026.")
    if question.type == "month":
        return _("Type the month as month-year, for example 06-2026.")
    return _("Type your answer.")


def progress_heading(
    q: Questionnaire, answers: engine.Answers, name: str, earlier: engine.Answers | None = None
) -> str:
    """ "Question 3 · about 18 questions left": where the graduate is, and an estimate of the
    rest of their route that never grows as they answer (engine.remaining_estimate); carried
    questions are not asked, so not counted."""
    k, left = engine.remaining_estimate(q, answers, name, earlier)
    if left == 0:
        return _("Question {k} · the last one").format(k=k)
    return ngettext(
        "Question {k} · about {n} question left", "Question {k} · about {n} questions left", left
    ).format(k=k, n=left)


def choice_pages(q: Questionnaire, question: Question) -> int:
    """How many pages a select question's choices take (PAGE_CHOICES a page)."""
    return max(1, -(-len(q.choices_for(question)) // PAGE_CHOICES))


def _choice_page(state: ChatState, question: Question) -> int | None:
    """The page of the question's choices the person turned to, if they did."""
    saved = state.data.get(_CHOICE_PAGE)
    if isinstance(saved, list) and len(saved) == 2 and saved[0] == question.name:
        page = saved[1]
        return page if isinstance(page, int) and not isinstance(page, bool) else None
    return None


def _answer_page(choices: tuple[Choice, ...], current: Any) -> int:
    """The page of `choices` that shows the (first) choice of the answer given, else the
    first."""
    chosen = current if isinstance(current, list) else [current]
    for index, choice in enumerate(choices):
        if choice.name in chosen:
            return index // PAGE_CHOICES
    return 0


def _paged(
    choices: tuple[Choice, ...], question: Question, page: int, rid: int
) -> tuple[tuple[Choice, ...], list[Button]]:
    """The `choices` (those offered) on `page`, and the buttons that turn the pages (none for
    a short list): a list longer than PAGE_CHOICES is shown a page at a time, within
    Telegram's buttons."""
    pages = max(1, -(-len(choices) // PAGE_CHOICES))
    if pages == 1:
        return choices, []
    page = max(0, min(page, pages - 1))
    turn: list[Button] = []
    if page > 0:
        turn.append(Button(_("◀ Earlier"), _cb("sc", rid, question.name, str(page - 1))))
    if page < pages - 1:
        turn.append(Button(_("More ▶"), _cb("sc", rid, question.name, str(page + 1))))
    return choices[page * PAGE_CHOICES : (page + 1) * PAGE_CHOICES], turn


def _question_prompt(loaded: Loaded, question: Question, page: int | None = None) -> Prompt:
    """The question's message. `page`: of a long choice list (None: the page that shows the
    answer given, else the first)."""
    q, answers, lang = loaded.questionnaire, loaded.answers, loaded.language
    rid = loaded.response.id or 0
    # The label and hint keep the formatting XLSForm allows (**bold**, *emphasis*): the
    # message is Telegram HTML, every other text in it escaped.
    lines = [
        escape(progress_heading(q, answers, question.name, loaded.earlier)),
        "",
        label_html(_piped(loaded, _text(question.labels, lang, q))),
    ]
    hint = _piped(loaded, _text(question.hints, lang, q))
    if hint:
        lines += ["", label_html(hint)]
    current = _current(loaded, question)
    rows: list[list[Button]] = []
    offered = _offered(loaded, question) if question.is_select else ()
    if page is None:
        page = _answer_page(offered, current)
    shown, turn = _paged(offered, question, page, rid)
    if question.type == "select_multiple":
        chosen = set(current or [])
        for choice in shown:
            mark = "☑️" if choice.name in chosen else "⬜"
            rows.append(
                [
                    Button(
                        f"{mark} {_text(choice.labels, lang, q)}",
                        _cb("st", rid, question.name, choice.name),
                    )
                ]
            )
        rows.append(turn)
        rows.append([Button(_("Done ✔"), _cb("sd", rid, question.name))])
        lines += ["", escape(_("Choose all that apply, then tap Done."))]
    elif question.type == "scale":
        scale = [
            Button(
                f"✅ {value}" if current == value else str(value),
                _cb("sv", rid, question.name, str(value)),
            )
            for value in question.scale_values
        ]
        # One row, unless the questionnaire sets columns or there are more than Telegram
        # shows in a row: then rows as even as possible.
        columns = int(question.parameters.get("columns", 0))  # type: ignore[call-overload]
        if not columns:
            columns = -(-len(scale) // -(-len(scale) // MAX_ROW_BUTTONS))
        rows += [scale[i : i + columns] for i in range(0, len(scale), columns)]
    elif question.is_select:
        columns = int(question.parameters.get("columns", 1))  # type: ignore[call-overload]
        buttons = [
            Button(
                ("✅ " if current == choice.name else "") + _text(choice.labels, lang, q),
                _cb("sv", rid, question.name, choice.name),
            )
            for choice in shown
        ]
        rows += [buttons[i : i + columns] for i in range(0, len(buttons), columns)]
        rows.append(turn)
    else:
        if current is not None:
            lines += [
                "",
                escape(
                    _("Your answer: {answer}").format(answer=_display(q, question, current, lang))
                ),
            ]
        # A hint already says what to type (and how): the general instruction would repeat it.
        if not hint or question.type in ("date", "month"):
            lines += ["", escape(_typed_instruction(question))]
    nav: list[Button] = []
    if engine.previous_question(q, answers, question.name, loaded.earlier) is not None:
        nav.append(Button(_("◀ Back"), _cb("sb", rid, question.name)))
    if current is not None and question.type != "select_multiple":
        nav.append(Button(_("Next ▶"), _cb("sn", rid, question.name)))
    elif not question.required:
        nav.append(Button(_("Skip ▶"), _cb("sk", rid, question.name)))
    if nav:
        rows.append(nav)
    return Prompt("\n".join(lines), keyboard(rows), html=True)


#: The most answers one page of the review shows: with their change buttons (rows of
#: REVIEW_ROW), the page buttons and the send button, well within Telegram's 100 buttons.
REVIEW_PAGE_ITEMS = 40
REVIEW_ROW = 5
_REVIEW_PAGE = "review_page"
#: In chat_state.data: [question, page] of the long choice list the chat shows.
_CHOICE_PAGE = "choice_page"


def _review_pages(loaded: Loaded) -> list[list[tuple[int, Question, str]]]:
    """The review's answers, numbered, in pages that each fit one message: at most
    REVIEW_PAGE_ITEMS answers and MAX_MESSAGE characters with the header and page line."""
    q, answers, lang = loaded.questionnaire, loaded.answers, loaded.language
    room = MAX_MESSAGE - _units(_review_header()) - 200  # the header and the page line
    pages: list[list[tuple[int, Question, str]]] = [[]]
    used = 0
    carried = engine.carried(q, answers, loaded.earlier)
    items = engine.review_items(q, answers, loaded.earlier)
    for number, (question, value) in enumerate(items, start=1):
        label = label_plain(_piped(loaded, _text(question.labels, lang, q))).replace("\n", " ")
        if len(label) > 70:
            label = label[:67].rstrip() + "…"
        shown = _display(q, question, value, lang)
        if len(shown) > 1000:
            shown = shown[:999].rstrip() + "…"
        line = f"{number}. {label}\n    → {shown}"
        if question.name in carried:
            line += "  ↩ " + _("as in {month}").format(month=_earlier_text(loaded, "_month"))
        size = _units(line) + 2
        if pages[-1] and (len(pages[-1]) >= REVIEW_PAGE_ITEMS or used + size > room):
            pages.append([])
            used = 0
        pages[-1].append((number, question, line))
        used += size
    return pages


def _units(text: str) -> int:
    """The length of `text` as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def _review_header() -> str:
    return _("Please check your answers. Tap a number to change an answer, or send them.")


def _review_prompt(loaded: Loaded, page: int = 0) -> Prompt:
    """The review: one page of the answers with a change button each, the page buttons when
    there are several pages, and the send button. It fits one message and Telegram's button
    limits however many answers there are."""
    rid = loaded.response.id or 0
    pages = _review_pages(loaded)
    page = max(0, min(page, len(pages) - 1))
    text = _review_header()
    if len(pages) > 1:
        text += "\n" + _("Page {page} of {pages}").format(page=page + 1, pages=len(pages))
    for _number, _question, line in pages[page]:
        text += "\n\n" + line
    # A carried answer is changed by changing the answer that carried it ("same job").
    carried = engine.carried(loaded.questionnaire, loaded.answers, loaded.earlier)
    buttons = [
        Button(f"✏️ {number}", _cb("se", rid, question.name))
        for number, question, _line in pages[page]
        if question.name not in carried
    ]
    rows = [buttons[i : i + REVIEW_ROW] for i in range(0, len(buttons), REVIEW_ROW)]
    paging: list[Button] = []
    if page > 0:
        paging.append(Button(_("◀ Earlier"), _cb("sp", rid, str(page - 1))))
    if page < len(pages) - 1:
        paging.append(Button(_("More ▶"), _cb("sp", rid, str(page + 1))))
    if paging:
        rows.append(paging)
    rows.append([Button(_("✅ Send my answers"), _cb("ss", rid))])
    return Prompt(text, keyboard(rows))


async def _load(
    rt: Runtime,
    session: AsyncSession,
    response: SurveyResponse,
    lang: str | None,
    fetched: _Fetched | None = None,
) -> Loaded:
    """What answering `response` needs; `fetched`: its rows as `_fetch` read them (else they
    are read here)."""
    questionnaire = await rt.questionnaires.get(rt.db, response.form_id, response.version)
    # Choices as the graduate's school shows them (its country's variant, its own labels).
    graduate = await session.get(Graduate, response.graduate_id)
    questionnaire = await for_graduate(session, questionnaire, graduate)
    assert response.id is not None
    earlier_id: int | None
    if fetched is not None and fetched.response is response:
        answers, carried, rows = _sorted_answers(fetched.rows)
        earlier_id, earlier = None, {}
        if fetched.earlier is not None:
            earlier_id = fetched.earlier.id
            earlier = _earlier_answers(fetched.earlier, fetched.earlier_rows)
    else:
        answers, carried, rows = await _answers(session, response.id)
        earlier_id, earlier = await earlier_response(session, response)
    return Loaded(
        response,
        questionnaire,
        answers,
        _language(questionnaire, lang),
        earlier=earlier,
        earlier_id=earlier_id,
        carried=carried,
        rows=rows,
    )


async def render(rt: Runtime, state: ChatState) -> Prompt | None:
    """The chat's open survey question (the prompting renderer for SURVEY)."""
    response_id = state.data.get("response_id")
    async with rt.db.session() as session:
        response = await session.get(SurveyResponse, response_id) if response_id else None
        if response is None or response.status != ResponseStatus.OPEN.value:
            return None
        graduate = await session.get(Graduate, response.graduate_id)
        lang = state.language or (graduate.language if graduate else None)
        loaded = await _load(rt, session, response, lang)
    return _prompt_of(state, loaded)


def _prompt_of(state: ChatState, loaded: Loaded) -> Prompt:
    """The open question of the chat in `state`, from what was loaded (and changed since) in
    the transaction that decided it: `render` without reading it all again."""
    response = loaded.response
    page = state.data.get(_REVIEW_PAGE)
    page = page if isinstance(page, int) and not isinstance(page, bool) else 0
    q = loaded.questionnaire
    if response.current == REVIEW or response.current not in q:
        prompt = _review_prompt(loaded, page)
        if page == 0:  # the notes after the last question (a closing word) come first
            notes = _notes_before(loaded, len(q.questions), html=prompt.html)
            prompt.preface = notes + prompt.preface
        return prompt
    question = q.question(response.current)
    prompt = _question_prompt(loaded, question, _choice_page(state, question))
    notes = _notes_before(loaded, q.index(question.name), html=prompt.html)
    prompt.preface = notes + prompt.preface
    return prompt


def _notes_before(loaded: Loaded, index: int, *, html: bool) -> tuple[str, ...]:
    """Notes are said, not asked: the ones said with the row at `index` (engine.notes_before),
    in the person's language; formatted (`html`) when the prompt they go with is."""
    q = loaded.questionnaire
    shape = label_html if html else label_plain
    return tuple(
        shape(_piped(loaded, _text(note.labels, loaded.language, q)))
        for note in engine.notes_before(q, loaded.answers, index, loaded.earlier)
    )


register(SURVEY, render)


# ---------------------------------------------------------------- moving on


def first_position(questionnaire: Questionnaire, earlier: engine.Answers | None = None) -> str:
    """Where a new response starts: its first question (notes before it are said with it)."""
    question = engine.next_question(questionnaire, {}, None, earlier)
    while question is not None and not question.answerable:
        question = engine.next_question(questionnaire, {}, question.name, earlier)
    return question.name if question is not None else REVIEW


def _next_position(loaded: Loaded, after: str, editing: bool) -> str:
    """Where to go after `after` was answered (or kept, or skipped)."""
    q, answers, earlier = loaded.questionnaire, loaded.answers, loaded.earlier
    if editing:
        missing = engine.first_unanswered(q, answers, earlier)
        return missing.name if missing is not None else REVIEW
    question = engine.next_question(q, answers, after, earlier)
    while question is not None and not question.answerable:
        question = engine.next_question(q, answers, question.name, earlier)
    return question.name if question is not None else REVIEW


def _set_position(state: ChatState, response: SurveyResponse, position: str) -> None:
    response.current = position
    response.updated_at = utcnow()
    state.prompt_pending = True
    touch_state(state)


def mark_complete(
    response: SurveyResponse,
    questionnaire: Questionnaire,
    answers: engine.Answers,
    earlier: engine.Answers | None = None,
) -> None:
    """Set `complete` from the answers that apply, carried ones too (a declined response
    never is), and note when the response first became complete."""
    response.complete = not response.declined and engine.is_complete(
        questionnaire, engine.relevant_answers(questionnaire, answers, earlier), earlier
    )
    if response.complete and response.completed_at is None:
        response.completed_at = utcnow()


async def sync_carried(session: AsyncSession, loaded: Loaded) -> None:
    """Store the carried answers as answers of the response, marked with the response they
    come from, and drop the ones no longer carried (the graduate went back and said it is a
    new job): the statistics, exports and /mydata read the stored rows. An own answer to a
    question that is now carried gives way to the earlier one."""
    response_id = loaded.response.id
    assert response_id is not None
    wanted: dict[str, Any] = {}
    if loaded.earlier_id is not None:
        wanted = engine.carried(loaded.questionnaire, loaded.answers, loaded.earlier)
    gone = loaded.carried - set(wanted)
    new = {name: value for name, value in wanted.items() if name not in loaded.carried}
    if not gone and not new:
        return
    rows = await session.exec(
        select(Answer).where(
            Answer.response_id == response_id, col(Answer.question).in_(gone | set(new))
        )
    )
    existing = {row.question: row for row in rows.all()}
    for name in gone:
        row = existing.get(name)
        if row is not None and row.carried_from is not None:
            await session.delete(row)
            loaded.rows.pop(name, None)
    for name, value in new.items():
        row = existing.get(name) or Answer(response_id=response_id, question=name, value=value)
        row.value = value
        row.carried_from = loaded.earlier_id
        row.answered_at = utcnow()
        session.add(row)
        loaded.rows[name] = row
        loaded.answers.pop(name, None)
    loaded.carried = set(wanted)


async def _submit(
    session: AsyncSession, loaded: Loaded, state: ChatState, *, declined: bool = False
) -> None:
    """Keep only the answers that apply, mark the response sent, leave the survey flow."""
    response = loaded.response
    assert response.id is not None
    await sync_carried(session, loaded)
    kept = engine.relevant_answers(loaded.questionnaire, loaded.answers, loaded.earlier)
    for name in set(loaded.answers) - set(kept):
        await _delete_answer(session, response.id, name)
    response.status = ResponseStatus.SUBMITTED.value
    response.declined = declined
    mark_complete(response, loaded.questionnaire, kept, loaded.earlier)
    response.submitted_at = utcnow()
    response.updated_at = response.submitted_at
    response.current = ""
    state.flow, state.step = "", ""
    state.data = {}
    state.prompt_pending = False
    touch_state(state)
    session.add(response)
    session.add(state)


def _only_the_first_answered(loaded: Loaded) -> bool:
    """Declining the opening consent question ends the questionnaire without a review."""
    return len(engine.review_items(loaded.questionnaire, loaded.answers, loaded.earlier)) <= 1


# ---------------------------------------------------------------- starting


async def begin(
    rt: Runtime,
    session: AsyncSession,
    graduate: Graduate,
    form_id: str,
    state: ChatState,
    wave: str | None = None,
) -> SurveyResponse:
    """Open a response on the deployed version of `form_id` and point the chat at it."""
    questionnaire = rt.questionnaires.deployed(form_id)
    assert graduate.id is not None
    response = SurveyResponse(
        graduate_id=graduate.id,
        form_id=form_id,
        version=questionnaire.version,
        wave=wave,
        # The language its questions are shown in (as `render` chooses it).
        language=_language(questionnaire, state.language or graduate.language),
        # Where it begins: the dashboard counts response rates per channel.
        channel=(
            ResponseChannel.WEB if is_web_chat(state.chat_id) else ResponseChannel.TELEGRAM
        ).value,
        started_at=rt.clock.now(),
        updated_at=rt.clock.now(),
    )
    session.add(response)
    await session.flush()
    _earlier_id, earlier = await earlier_response(session, response)
    response.current = first_position(questionnaire, earlier)
    state.flow, state.step = SURVEY, ""
    state.graduate_id = graduate.id
    state.data = {"response_id": response.id, "editing": False}
    state.prompt_pending = True
    touch_state(state)
    session.add(state)
    return response


def stopped_text() -> str:
    return _(
        "You stopped all contact with /stop, so I send you no questionnaires. "
        "To turn contact back on, send /start."
    )


async def survey_command(rt: Runtime, turn: Turn) -> None:
    """/survey: resume the open questionnaire, or start the one that is due."""
    chat_id = turn.chat_id
    tg_language = turn.event.language
    async with rt.db.session() as session:
        await claim(session)
        state = await get_chat_state(session, chat_id)
        graduate = await graduate_by_chat(session, chat_id)
        set_language(
            choose_language(
                state.language or (graduate.language if graduate else None), tg_language, None
            )
        )
        if graduate is None or graduate.id is None:
            await turn.say(not_registered_text())
            return
        if graduate.opted_out_at is not None:
            await turn.say(stopped_text())
            return
        if state.flow and state.flow != SURVEY:
            session.add(state)
            await turn.say(_("Let's first finish the questions above."))
            resume = True
        else:
            resume = False
            response = await open_response(session, graduate.id)
            if response is not None:
                state.flow = SURVEY
                state.graduate_id = graduate.id
                state.data = {"response_id": response.id, "editing": False}
                state.prompt_pending = True
                touch_state(state)
                session.add(state)
                await turn.say(_("Let's continue where you left off."))
                resume = True
            elif not graduate.consent_survey:
                await turn.say(
                    _(
                        "You chose not to take part in the questionnaires. "
                        "You can change that with /privacy."
                    )
                )
                return
            else:
                invitation = await open_wave_invitation(
                    session, graduate.id, rt.clock.now(), rt.plans
                )
                if invitation is None:
                    await turn.say(
                        _(
                            "There is no questionnaire for you right now. "
                            "I will write to you when the next one opens."
                        )
                    )
                    return
                await start_wave(rt, session, graduate, invitation, chat_id)
                resume = True
    if resume:
        await send_prompt(rt, chat_id)


async def start_wave(
    rt: Runtime, session: AsyncSession, graduate: Graduate, invitation: Invitation, chat_id: int
) -> str:
    """Point the chat at the wave's response (new or open). Returns "started", "resumed" or
    "done" (already sent)."""
    assert graduate.id is not None
    state = await get_chat_state(session, chat_id)
    response = await wave_response(session, graduate.id, invitation.wave)
    if response is not None and response.status != ResponseStatus.OPEN.value:
        return "done"
    if response is None:
        await begin(rt, session, graduate, invitation.form_id, state, wave=invitation.wave)
        return "started"
    state.flow = SURVEY
    state.graduate_id = graduate.id
    state.data = {"response_id": response.id, "editing": False}
    state.prompt_pending = True
    touch_state(state)
    session.add(state)
    return "resumed"


# ---------------------------------------------------------------- answering


async def _stale(turn: Turn, response: SurveyResponse | None) -> None:
    if response is None:
        await turn.notice(_("This button is no longer active."))
    elif response.status == ResponseStatus.SUBMITTED.value:
        await turn.notice(_("This questionnaire is already finished. Thank you!"))
    else:
        await turn.notice(_("This question has already been answered."))


async def on_button(rt: Runtime, turn: Turn) -> None:
    chat_id = turn.chat_id
    press = parse_callback(turn.event.data)
    outcome = ""  # "next", "toggled", "finished"
    label = ""
    shown: Keyboard = ()
    async with rt.db.session() as session:
        await claim(session)
        fetched: _Fetched | None = None
        if press is not None:
            state, graduate, fetched = await _context_and_fetch(session, chat_id, press.response_id)
        else:
            state, graduate = await chat_context(session, chat_id)
        set_language(state.language or (graduate.language if graduate else None))
        response = fetched.response if fetched else None
        if (
            press is None
            or response is None
            or graduate is None
            or response.graduate_id != graduate.id
        ):
            await _stale(turn, None)
            return
        if (
            response.status != ResponseStatus.OPEN.value
            or state.flow != SURVEY
            or state.data.get("response_id") != response.id
        ):
            await _stale(turn, response)
            return
        loaded = await _load(rt, session, response, state.language or graduate.language, fetched)
        set_language(loaded.language)
        q = loaded.questionnaire
        assert response.id is not None
        editing = bool(state.data.get("editing"))

        if press.kind == "sp":
            pages = len(_review_pages(loaded))
            page = int(press.question) if press.question.isdecimal() else -1
            if response.current != REVIEW or not 0 <= page < pages:
                await _stale(turn, response)
                return
            state.data[_REVIEW_PAGE] = page
            touch_state(state)
            page_prompt = _review_prompt(loaded, page)
            shown, label = page_prompt.keyboard, page_prompt.text
            outcome = "page"
        elif press.kind == "ss":
            if response.current != REVIEW:
                await _stale(turn, response)
                return
            await _submit(session, loaded, state)
            outcome = "finished"
        elif press.kind == "se":
            if (
                response.current != REVIEW
                or press.question
                not in {
                    item.name for item, _v in engine.review_items(q, loaded.answers, loaded.earlier)
                }
                or press.question in engine.carried(q, loaded.answers, loaded.earlier)
            ):
                await _stale(turn, response)
                return
            state.data["editing"] = True
            _set_position(state, response, press.question)
            outcome = "next"
        else:
            if response.current != press.question:
                await _stale(turn, response)
                return
            question = q.question(press.question) if press.question in q else None
            if question is None or not question.answerable:
                await _stale(turn, response)
                return
            if press.kind == "sb":
                previous = engine.previous_question(
                    q, loaded.answers, question.name, loaded.earlier
                )
                if previous is None:
                    await _stale(turn, response)
                    return
                # Ticks are stored as they are tapped: leave none behind that Done refuses.
                ticked = loaded.answers.get(question.name) if question.is_multiple else None
                if ticked and not engine.check_constraint(
                    q, question, ticked, loaded.answers, loaded.earlier
                ):
                    await turn.notice(
                        engine.constraint_message(question, loaded.language)
                        or _("This answer is not possible here. Please check it."),
                        alert=True,
                    )
                    return
                _set_position(state, response, previous.name)
                label = _("◀ Back")
                outcome = "next"
            elif press.kind == "sk":
                if question.required:
                    await turn.notice(_("This question needs an answer."))
                    return
                await _delete_answer(session, response.id, question.name, loaded.rows)
                loaded.answers.pop(question.name, None)
                _set_position(state, response, _next_position(loaded, question.name, editing))
                label = _("Skipped")
                outcome = "next"
            elif press.kind == "sn":
                if _current(loaded, question) is None or question.is_multiple:
                    await _stale(turn, response)
                    return
                _set_position(state, response, _next_position(loaded, question.name, editing))
                label = _display(q, question, loaded.answers[question.name], loaded.language)
                outcome = "next"
            elif press.kind == "st":
                if question.type != "select_multiple":
                    await _stale(turn, response)
                    return
                try:
                    chosen = engine.toggle_choice(
                        q,
                        question,
                        list(_current(loaded, question) or []),
                        press.code,
                        loaded.answers,
                        loaded.earlier,
                    )
                except engine.AnswerError:
                    await _stale(turn, response)
                    return
                if chosen:
                    await _set_answer(session, response.id, question.name, chosen, loaded.rows)
                    loaded.answers[question.name] = chosen
                else:
                    await _delete_answer(session, response.id, question.name, loaded.rows)
                    loaded.answers.pop(question.name, None)
                response.updated_at = utcnow()
                shown = _question_prompt(loaded, question, _choice_page(state, question)).keyboard
                outcome = "toggled"
            elif press.kind == "sc":
                page = int(press.code) if press.code.isdecimal() and len(press.code) < 5 else -1
                if not question.is_select or not 0 <= page < choice_pages(q, question):
                    await _stale(turn, response)
                    return
                state.data[_CHOICE_PAGE] = [question.name, page]
                touch_state(state)
                shown = _question_prompt(loaded, question, page).keyboard
                outcome = "toggled"  # the other page's buttons, in place
            elif press.kind == "sd":
                if not question.is_multiple:
                    await _stale(turn, response)
                    return
                chosen = list(_current(loaded, question) or [])
                if not chosen and question.required:
                    await turn.notice(_("Please choose at least one option."))
                    return
                if chosen and not engine.check_constraint(
                    q, question, chosen, loaded.answers, loaded.earlier
                ):
                    await turn.notice(
                        engine.constraint_message(question, loaded.language)
                        or _("This answer is not possible here. Please check it."),
                        alert=True,
                    )
                    return
                _set_position(state, response, _next_position(loaded, question.name, editing))
                label = _display(q, question, chosen, loaded.language) if chosen else _("Skipped")
                outcome = "next"
            elif press.kind == "sv":
                if question.type not in ("select_one", "scale"):
                    await _stale(turn, response)
                    return
                try:
                    value = engine.check_choice(
                        q, question, press.code, loaded.answers, loaded.earlier
                    )
                except engine.AnswerError:
                    await _stale(turn, response)
                    return
                if not engine.check_constraint(q, question, value, loaded.answers, loaded.earlier):
                    await turn.notice(
                        engine.constraint_message(question, loaded.language)
                        or _("This answer is not possible here. Please check it."),
                        alert=True,
                    )
                    return
                await _set_answer(session, response.id, question.name, value, loaded.rows)
                loaded.answers[question.name] = value
                position = _next_position(loaded, question.name, editing)
                if position == REVIEW and _only_the_first_answered(loaded):
                    await _submit(session, loaded, state, declined=True)
                    outcome = "finished"
                else:
                    _set_position(state, response, position)
                    outcome = "next"
                label = _display(q, question, value, loaded.language)
            else:
                await _stale(turn, response)
                return
        if outcome == "next" and response.current == REVIEW:
            state.data["editing"] = False
            touch_state(state)
        if response.status == ResponseStatus.OPEN.value:
            await sync_carried(session, loaded)
        mark_complete(response, q, loaded.answers, loaded.earlier)
        session.add(response)
        session.add(state)
    await turn.notice()
    if outcome == "page":  # the review's other page, in place
        await turn.edit(label, shown)  # not shown: the page was shown already
        return
    if outcome == "toggled":
        await turn.edit(None, shown)  # not updated: the same press twice
        return
    if label:
        await close_question(turn, label)
    elif press is not None and press.kind in ("se", "ss"):
        await turn.edit(None)  # the review's buttons, gone
    if outcome == "finished":
        await turn.say(_("Thank you! Your answers have been saved."))
    else:
        await send_prompt(rt, chat_id, decided=_decided(state, graduate, loaded))


def _decided(state: ChatState, graduate: Graduate | None, loaded: Loaded) -> Decided:
    """The next question as `render` would show it, from what this answer's transaction
    loaded and changed (for `send_prompt`: nothing is read again)."""

    def rendered() -> Prompt | None:
        if state.flow != SURVEY or loaded.response.status != ResponseStatus.OPEN.value:
            return None
        return _prompt_of(state, loaded)

    return decided(state, graduate, rendered)


def _range_text(low: object, high: object, both: str) -> str:
    """`both` (with {min} and {max}) when there are both bounds, else "at least"/"at most"."""
    if low is not None and high is not None:
        return both.format(min=low, max=high)
    if low is not None:
        return _("Please type a number of at least {min}.").format(min=low)
    return _("Please type a number of at most {max}.").format(max=high)


_TYPED_ERRORS = {
    "empty": lambda p: _("Please type an answer."),
    "not_integer": lambda p: _("Please type a whole number, for example 12."),
    "not_number": lambda p: _("Please type a number, for example 12.5."),
    "not_date": lambda p: _("Please type a date as day-month-year, for example 30-06-2026."),
    "not_month": lambda p: _("Please type a month as month-year, for example 06-2026."),
    "out_of_range": lambda p: _range_text(
        p.get("min"), p.get("max"), _("Please type a number from {min} to {max}.")
    ),
    "too_long": lambda p: ngettext(
        "That is too long: please keep it under {max} character.",
        "That is too long: please keep it under {max} characters.",
        int(p.get("max", 1000)),
    ).format(max=p.get("max", 1000)),
}


async def on_text(rt: Runtime, turn: Turn) -> bool:
    """Typed text while a survey is open. False when no survey is open in this chat."""
    chat_id = turn.chat_id
    reply = ""
    async with rt.db.session() as session:
        state, graduate = await chat_context(session, chat_id)
        if state.flow != SURVEY:
            return False
        await claim(session)
        response_id = state.data.get("response_id")
        fetched = await _fetch(session, response_id) if isinstance(response_id, int) else None
        response = fetched.response if fetched else None
        set_language(state.language or (graduate.language if graduate else None))
        if response is None or response.status != ResponseStatus.OPEN.value:
            state.flow = ""
            touch_state(state)
            session.add(state)
            return False
        loaded = await _load(
            rt,
            session,
            response,
            state.language or (graduate.language if graduate else None),
            fetched,
        )
        set_language(loaded.language)
        question = (
            loaded.questionnaire.question(response.current)
            if response.current in loaded.questionnaire
            else None
        )
        assert response.id is not None
        if question is None or question.is_select or question.type == "scale":
            reply = (
                _("Please tap one of the buttons above.")
                if question is None
                else _("Please answer with the buttons below the question.")
            )
            state.prompt_pending = True
            touch_state(state)
            session.add(state)
        else:
            try:
                value = engine.parse_typed(question, turn.event.text)
            except engine.AnswerError as error:
                await turn.say(_TYPED_ERRORS.get(error.kind, _TYPED_ERRORS["empty"])(error.params))
                return True
            if not engine.check_constraint(
                loaded.questionnaire, question, value, loaded.answers, loaded.earlier
            ):
                await turn.say(
                    engine.constraint_message(question, loaded.language)
                    or _("This answer is not possible here. Please check it.")
                )
                return True
            await _set_answer(session, response.id, question.name, value, loaded.rows)
            loaded.answers[question.name] = value
            editing = bool(state.data.get("editing"))
            position = _next_position(loaded, question.name, editing)
            _set_position(state, response, position)
            if position == REVIEW:
                state.data["editing"] = False
            await sync_carried(session, loaded)
            mark_complete(response, loaded.questionnaire, loaded.answers, loaded.earlier)
            session.add(response)
            session.add(state)
    if reply:
        await turn.say(reply)
    await send_prompt(rt, chat_id, decided=_decided(state, graduate, loaded))
    return True
