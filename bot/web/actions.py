"""Results into decisions on the dashboard (issue 18): actions per programme ("you said, we
did") and the follow-up lists (graduates who asked for help finding work or offered to help
the school).

- An action: what, why (an EQAVET indicator and/or graduates' comments, the free-text
  answers of the programme, linked by answer id), who, by when, status (open, in progress,
  done); closed with what was done. From a closed action, "you said, we did" news to the
  programme's graduates is begun in the news composer, in the staff member's Telegram chat
  (conversations/news_compose.start_draft), prefilled, and recorded on the action.
- The follow-up lists (storage/followups.py): who may be contacted, handled and a note, a
  message through the bot (Telegram, else the web chat, else e-mail), news to a list.

Every form is checked as the dashboard's others (session, Origin, CSRF: bot/web/dashboard.py's
middleware). Who may do what: `may_act` (officers and admins); the scope is the dashboard's
(`scope_of`: one school, or all for admins without one).
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import date
from email.headerregistry import Address
from typing import Any

from aiohttp import web
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot import i18n
from bot.i18n import _, use_language
from bot.runtime import Runtime, mark_unreachable
from bot.web import access as web_access
from bot.web.dashboard import (
    PREFIX,
    _query,
    _session,
    dashboard,
    indicator_name,
    render,
    scope_of,
)
from conversations import access
from conversations.channel import Refused, Unreachable
from conversations.feedback import comment_questions
from conversations.followups import list_label, offer_codes, offered
from conversations.news_compose import Busy, start_draft, status_name
from conversations.news_html import NewsHtmlError, check_news_html
from conversations.questionnaire import Questionnaire
from storage import followups
from storage.followups import OFFER, WORK, FollowupError, ListKey
from storage.models import (
    ActionStatus,
    Answer,
    Broadcast,
    BroadcastStatus,
    Graduate,
    Institution,
    Programme,
    ProgrammeAction,
    Staff,
    SurveyResponse,
)
from storage.news import Audience
from storage.types import row_id

log = logging.getLogger(__name__)

INDICATORS = ("5a", "5b", "6a", "6a_occupation", "6b1")
"""What an action may be linked to: the EQAVET indicators (6a's two figures)."""
WHAT_LIMIT = 500
TEXT_LIMIT = 2000
WHO_LIMIT = 200
NEWS_LIMIT = 3500
"""Characters of a "you said, we did" text: room for the footer in Telegram's 4096."""
MESSAGE_LIMIT = 2000
COMMENTS_SHOWN = 100


# ---------------------------------------------------------------- who may


def may_act(staff: Staff) -> bool:
    """Whether `staff` may record and close actions, mark list entries and write to
    graduates: officers and admins (other roles may only read, where they may see)."""
    return access.permits(access.WRITERS, staff)


def may_see_followups(staff: Staff) -> bool:
    """Whether `staff` may see the follow-up lists (graduates' names with what they asked
    or offered): officers and admins, who may also act on them. A role without names (a
    researcher, regional aggregates) is refused."""
    return may_act(staff)


def _acting(request: web.Request) -> Staff:
    staff = _session(request).staff
    if not may_act(staff):
        raise web.HTTPForbidden(reason=_("Your role can see this page but not change it."))
    return staff


# ---------------------------------------------------------------- labels


def indicator_label(key: str) -> str:
    if key == "5a":
        return "5a · " + _("Destinations")
    shown = "6a" if key == "6a_occupation" else key
    return f"{shown} · {indicator_name(key)}"


def action_status_label(status: str) -> str:
    return {
        ActionStatus.OPEN.value: _("Open"),
        ActionStatus.IN_PROGRESS.value: _("In progress"),
        ActionStatus.DONE.value: _("Done"),
    }.get(status, status)


# ---------------------------------------------------------------- scope


async def _programme(request: web.Request, session: AsyncSession) -> Programme:
    """The URL's programme, if the staff member's scope holds it (else 404)."""
    scope = scope_of(request)
    programme_id = row_id(request.match_info["programme"])
    programme = await session.get(Programme, programme_id) if programme_id else None
    if programme is None or not scope.holds(programme.institution_id, programme.id):
        raise web.HTTPNotFound(reason=_("There is no such programme."))
    return programme


async def _action(request: web.Request, session: AsyncSession) -> tuple[ProgrammeAction, Programme]:
    staff = _session(request).staff
    action_id = row_id(request.match_info["action"])
    action = await session.get(ProgrammeAction, action_id) if action_id else None
    programme = await session.get(Programme, action.programme_id) if action else None
    if (
        action is None
        or programme is None
        or (staff.institution_id is not None and action.institution_id != staff.institution_id)
        or not scope_of(request).holds(programme.institution_id, programme.id)
    ):
        raise web.HTTPNotFound(reason=_("There is no such action."))
    return action, programme


# ---------------------------------------------------------------- comments


@dataclass(frozen=True)
class Comment:
    """A free-text answer of one of the programme's graduates, without a name."""

    id: int
    question: str
    label: str
    text: str
    answered: date
    wave: str | None


def _text_questions(rt: Runtime) -> dict[tuple[str, str], str]:
    """(form, question) -> label (current language) of every question whose answers are
    comments on the programme (conversations.feedback.comment_questions)."""
    found: dict[tuple[str, str], str] = {}
    lang = i18n.current_language()
    for form_id in rt.questionnaires.form_ids:
        for q in comment_questions(rt.questionnaires.deployed(form_id)):
            found[(form_id, q.name)] = q.label(lang)
    return found


async def comments_of(
    rt: Runtime,
    session: AsyncSession,
    programme_id: int,
    *,
    ids: list[int] | None = None,
    limit: int = COMMENTS_SHOWN,
) -> list[Comment]:
    """The programme's comments, newest first (`ids`: only those)."""
    questions = _text_questions(rt)
    if not questions:
        return []
    query = (
        select(Answer, SurveyResponse)
        .join(SurveyResponse, col(SurveyResponse.id) == col(Answer.response_id))
        .join(Graduate, col(Graduate.id) == col(SurveyResponse.graduate_id))
        .where(
            col(Graduate.programme_id) == programme_id,
            col(Answer.question).in_(sorted({q for _f, q in questions})),
            col(Answer.carried_from).is_(None),
        )
    )
    if ids is not None:
        if not ids:
            return []
        query = query.where(col(Answer.id).in_(ids))
    rows = (
        await session.exec(query.order_by(col(Answer.answered_at).desc()).limit(limit * 2))
    ).all()
    comments = []
    for answer, response in rows:
        label = questions.get((response.form_id, answer.question))
        if label is None or not isinstance(answer.value, str) or not answer.value.strip():
            continue
        assert answer.id is not None
        comments.append(
            Comment(
                answer.id,
                answer.question,
                label,
                answer.value,
                answer.answered_at.date(),
                response.wave,
            )
        )
    return comments[:limit]


# ---------------------------------------------------------------- actions


@dataclass
class ActionForm:
    """What the staff member typed (kept as typed when something is wrong)."""

    what: str = ""
    why: str = ""
    indicator: str = ""
    comments: tuple[int, ...] = ()
    who: str = ""
    due: str = ""
    status: str = ActionStatus.OPEN.value

    @classmethod
    def of(cls, form: Any) -> ActionForm:
        def text(name: str) -> str:
            value = form.get(name)
            return value.strip() if isinstance(value, str) else ""

        given = form.getall("comment", []) if hasattr(form, "getall") else []
        comments = tuple(n for n in (row_id(v) for v in given if isinstance(v, str)) if n)
        return cls(
            what=text("what"),
            why=text("why"),
            indicator=text("indicator"),
            comments=comments,
            who=text("who"),
            due=text("due"),
            status=text("status") or ActionStatus.OPEN.value,
        )


def check_action(form: ActionForm, today: date, known_comments: set[int]) -> list[str]:
    """What is wrong with a new action, in the current language (nothing: [])."""
    errors = []
    if not form.what:
        errors.append(_("Please say what will be done."))
    elif len(form.what) > WHAT_LIMIT:
        errors.append(_("“What” can be at most {n} characters.").format(n=WHAT_LIMIT))
    if len(form.why) > TEXT_LIMIT:
        errors.append(_("“Why” can be at most {n} characters.").format(n=TEXT_LIMIT))
    if len(form.who) > WHO_LIMIT:
        errors.append(_("“Who” can be at most {n} characters.").format(n=WHO_LIMIT))
    if form.indicator and form.indicator not in INDICATORS:
        errors.append(_("There is no such indicator. Please choose one from the list."))
    if set(form.comments) - known_comments:
        errors.append(_("A chosen comment is not one of this programme's. Please choose again."))
    if form.status not in (ActionStatus.OPEN.value, ActionStatus.IN_PROGRESS.value):
        errors.append(_("Please choose the status from the list."))
    if form.due:
        try:
            due = date.fromisoformat(form.due)
        except ValueError:
            errors.append(_("Please give the date as year-month-day, e.g. 2027-03-31."))
        else:
            if due < today:
                errors.append(_("The date has passed. Please give a date from today on."))
    return errors


@web_access.allow(access.TEAMS)
async def actions_page(request: web.Request) -> web.Response:
    d = dashboard(request)
    async with d.rt.db.session() as session:
        programme = await _programme(request, session)
        assert programme.id is not None
        actions = (
            await session.exec(
                select(ProgrammeAction)
                .where(ProgrammeAction.programme_id == programme.id)
                .order_by(col(ProgrammeAction.id).desc())
            )
        ).all()
        comments = await comments_of(d.rt, session, programme.id)
    return _actions_view(request, programme, list(actions), comments, ActionForm.of({}), [])


def _actions_view(
    request: web.Request,
    programme: Programme,
    actions: list[ProgrammeAction],
    comments: list[Comment],
    form: ActionForm,
    errors: list[str],
    status: int = 200,
) -> web.Response:
    chosen = request.query.getall("comment", [])
    if not form.comments and chosen:  # from a comment: ?comment=<answer id>
        form.comments = tuple(n for n in (row_id(v) for v in chosen) if n)
    return render(
        request,
        "actions.html",
        status=status,
        programme=programme,
        open_actions=[a for a in actions if a.status != ActionStatus.DONE.value],
        done_actions=[a for a in actions if a.status == ActionStatus.DONE.value],
        comments=comments,
        form=form,
        errors=errors,
        indicators=[(key, indicator_label(key)) for key in INDICATORS],
        indicator_label=indicator_label,
        action_status_label=action_status_label,
        may_act=may_act(_session(request).staff),
        today=dashboard(request).rt.clock.now().date().isoformat(),
        query=_query(scope_of(request)),
    )


@web_access.allow(access.WRITERS)
async def action_create(request: web.Request) -> web.StreamResponse:
    d = dashboard(request)
    staff = _acting(request)
    form = ActionForm.of(await request.post())
    async with d.rt.db.session() as session:
        programme = await _programme(request, session)
        assert programme.id is not None
        comments = await comments_of(d.rt, session, programme.id)
        known = {c.id for c in comments}
        if set(form.comments) - known:  # older than the newest shown: look them up
            known |= {
                c.id
                for c in await comments_of(d.rt, session, programme.id, ids=list(form.comments))
            }
        errors = check_action(form, d.rt.clock.now().date(), known)
        if not errors:
            now = d.rt.clock.now()
            action = ProgrammeAction(
                institution_id=programme.institution_id,
                programme_id=programme.id,
                what=form.what,
                why=form.why,
                indicator=form.indicator or None,
                answer_ids=list(dict.fromkeys(form.comments)),
                who=form.who,
                due_on=date.fromisoformat(form.due) if form.due else None,
                status=form.status,
                created_by=staff.id,
                created_at=now,
                updated_at=now,
            )
            session.add(action)
            await session.flush()
            created = action.id
        else:
            created = None
        actions = (
            await session.exec(
                select(ProgrammeAction).where(ProgrammeAction.programme_id == programme.id)
            )
        ).all()
    if created is not None:  # committed: the session has ended
        raise web.HTTPSeeOther(f"{PREFIX}/actions/{created}")
    return _actions_view(request, programme, list(actions), comments, form, errors, status=400)


def you_said_we_did(action: ProgrammeAction, lang: str) -> str:
    """The news text an action suggests, in `lang` (plain text: what was found, what was
    done), for the staff member to change before it goes out."""
    with use_language(lang):
        found = action.why or action.what
        return "\n\n".join(
            [
                _("You said, we did"),
                _("You told us: {found}").format(found=found),
                _("What we did: {done}").format(done=action.result or action.what),
                _("Thank you for answering our questions!"),
            ]
        )


@web_access.allow(access.TEAMS)
async def action_page(request: web.Request, status: int = 200, **values: Any) -> web.Response:
    d = dashboard(request)
    async with d.rt.db.session() as session:
        action, programme = await _action(request, session)
        assert programme.id is not None
        comments = await comments_of(d.rt, session, programme.id, ids=list(action.answer_ids))
        school = await session.get(Institution, action.institution_id)
        news = await session.get(Broadcast, action.broadcast_id) if action.broadcast_id else None
    lang = request.query.get("news_lang") or (school.default_language if school else "en")
    if lang not in i18n.LANGUAGES:
        lang = school.default_language if school else "en"
    values.setdefault("news_text", you_said_we_did(action, lang))
    values.setdefault("news_lang", lang)
    values.setdefault("result_text", "")
    values.setdefault("errors", [])
    return render(
        request,
        "action.html",
        status=status,
        action=action,
        programme=programme,
        comments=comments,
        news=news,
        news_open=_news_open(news),
        news_status=status_name,
        indicator_label=indicator_label,
        action_status_label=action_status_label,
        may_act=may_act(_session(request).staff),
        started=request.query.get("news") == "started",
        query="",
        **values,
    )


def _news_open(news: Broadcast | None) -> bool:
    """Whether new "you said, we did" news may be begun: none yet, or the last one was
    discarded or cancelled (a draft being written is replaced)."""
    return news is None or news.status in (
        BroadcastStatus.DRAFT.value,
        BroadcastStatus.CANCELLED.value,
    )


@web_access.allow(access.WRITERS)
async def action_status(request: web.Request) -> web.StreamResponse:
    d = dashboard(request)
    staff = _acting(request)
    form = await request.post()
    value = form.get("status")
    async with d.rt.db.session() as session:
        action, _programme = await _action(request, session)
        if action.status == ActionStatus.DONE.value:
            return await action_page(
                request, status=409, errors=[_("This action is done already.")]
            )
        if value not in (ActionStatus.OPEN.value, ActionStatus.IN_PROGRESS.value):
            return await action_page(
                request, status=400, errors=[_("Please choose the status from the list.")]
            )
        action.status = str(value)
        action.updated_at = d.rt.clock.now()
        session.add(action)
    log.debug("action %s: %s by staff %s", action.id, value, staff.id)
    raise web.HTTPSeeOther(f"{PREFIX}/actions/{action.id}")


@web_access.allow(access.WRITERS)
async def action_close(request: web.Request) -> web.StreamResponse:
    d = dashboard(request)
    staff = _acting(request)
    form = await request.post()
    result = form.get("result")
    result = result.strip() if isinstance(result, str) else ""
    async with d.rt.db.session() as session:
        action, _programme = await _action(request, session)
        if action.status == ActionStatus.DONE.value:
            return await action_page(
                request, status=409, errors=[_("This action is done already.")]
            )
        problem = ""
        if not result:
            problem = _("Please say what was done.")
        elif len(result) > TEXT_LIMIT:
            problem = _("“What was done” can be at most {n} characters.").format(n=TEXT_LIMIT)
        if problem:
            return await action_page(request, status=400, errors=[problem], result_text=result)
        now = d.rt.clock.now()
        action.status = ActionStatus.DONE.value
        action.result = result
        action.closed_at = now
        action.closed_by = staff.id
        action.updated_at = now
        session.add(action)
    raise web.HTTPSeeOther(f"{PREFIX}/actions/{action.id}")


@web_access.allow(access.WRITERS)
async def action_news(request: web.Request) -> web.StreamResponse:
    """ "You said, we did": the (edited) text becomes a news draft to the programme's
    graduates, in the composer in the staff member's Telegram chat."""
    d = dashboard(request)
    staff = _acting(request)
    form = await request.post()
    text = form.get("text")
    text = text.strip() if isinstance(text, str) else ""
    lang = form.get("lang")
    async with d.rt.db.session() as session:
        action, programme = await _action(request, session)
        news = await session.get(Broadcast, action.broadcast_id) if action.broadcast_id else None
    keep = {"news_text": text, "news_lang": lang if lang in i18n.LANGUAGES else "en"}
    problem = ""
    if action.status != ActionStatus.DONE.value:
        problem = _("Close the action with what was done first.")
    elif not _news_open(news):
        problem = _("Graduates have been told about this action already.")
    elif lang not in i18n.LANGUAGES:
        problem = _("Please choose the language of the text.")
    elif not text:
        problem = _("Please write the news text.")
    elif len(text) > NEWS_LIMIT:
        problem = _("The news text can be at most {n} characters.").format(n=NEWS_LIMIT)
    elif staff.telegram_user_id is None:
        problem = _("News is written in the chat with the bot, and you have no chat.")
    if problem:
        return await action_page(request, status=400, errors=[problem], **keep)
    body = html.escape(text, quote=False)
    try:
        check_news_html(body)
    except NewsHtmlError as error:  # pragma: no cover - escaped text is always fine
        return await action_page(request, status=400, errors=[str(error)], **keep)
    assert isinstance(lang, str) and programme.id is not None
    lead = _(
        "“You said, we did” news from the dashboard, for the graduates of {programme}: "
        "add other languages, check the audience and send it here."
    ).format(programme=programme.name)
    try:
        draft = await start_draft(
            d.rt,
            staff,
            texts={lang: body},
            default_language=lang,
            audience=Audience(
                institution_ids=(programme.institution_id,), programme_ids=(programme.id,)
            ),
            lead=lead,
            language=i18n.current_language(),
        )
    except Busy:
        return await action_page(request, status=409, errors=[_busy_text()], **keep)
    except (Unreachable, Refused):
        return await action_page(request, status=409, errors=[_no_chat_text()], **keep)
    async with d.rt.db.session() as session:
        stored = await session.get(ProgrammeAction, action.id)
        assert stored is not None
        stored.broadcast_id = draft
        stored.updated_at = d.rt.clock.now()
        session.add(stored)
    raise web.HTTPSeeOther(f"{PREFIX}/actions/{action.id}?news=started")


def _no_chat_text() -> str:
    return _(
        "The bot cannot write to your chat. Open the chat with the bot, send /start, and try again."
    )


def _busy_text() -> str:
    return _(
        "You are writing other news in the chat with the bot. Send it or discard it there "
        "(/cancel) first."
    )


# ---------------------------------------------------------------- follow-up lists


def _tracking(rt: Runtime) -> Questionnaire | None:
    try:
        return rt.questionnaires.deployed("tracking")
    except KeyError:
        return None


def _list_key(value: object, questionnaire: Questionnaire | None) -> ListKey:
    try:
        return ListKey.parse(str(value or WORK), offer_codes(questionnaire))
    except FollowupError:
        raise web.HTTPNotFound(reason=_("There is no such list.")) from None


@web_access.allow(access.WRITERS)
async def followups_page(
    request: web.Request, status: int = 200, list_value: str | None = None, **values: Any
) -> web.Response:
    d = dashboard(request)
    if not may_see_followups(_session(request).staff):
        raise web.HTTPForbidden(reason=_("Your role does not show graduates' names."))
    scope = scope_of(request)
    questionnaire = _tracking(d.rt)
    key = _list_key(list_value or request.query.get("list"), questionnaire)
    codes = offer_codes(questionnaire)
    async with d.rt.db.session() as session:
        rows = await followups.list_rows(session, key, scope.institution_id, offers=codes)
    values.setdefault("errors", {})
    values.setdefault("notes", {})
    values.setdefault("messages", {})
    return render(
        request,
        "followups.html",
        status=status,
        key=key,
        list_name=key.name,
        title=list_label(str(key), questionnaire),
        lists=[(WORK, list_label(WORK, questionnaire)), (OFFER, list_label(OFFER, questionnaire))],
        offers=[(f"{OFFER}:{c}", list_label(f"{OFFER}:{c}", questionnaire)) for c in codes],
        rows=rows,
        what=lambda row: (
            _("Help finding work")
            if key.name == WORK
            else ", ".join(offered(row.answer, questionnaire))
        ),
        may_act=may_act(_session(request).staff),
        sent=request.query.get("sent", ""),
        news_started=request.query.get("news") == "started",
        scope_query=_query(scope),
        query=_query(scope),
        **values,
    )


async def _listed(request: web.Request, session: AsyncSession, list_name: str) -> Graduate:
    d = dashboard(request)
    scope = scope_of(request)
    graduate_id = row_id(request.match_info["graduate"])
    codes = offer_codes(_tracking(d.rt))
    graduate = (
        await followups.listed_graduate(
            session, graduate_id, list_name, scope.institution_id, codes
        )
        if graduate_id
        else None
    )
    if graduate is None:
        raise web.HTTPNotFound(reason=_("This graduate is not on your follow-up lists."))
    return graduate


@web_access.allow(access.WRITERS)
async def followup_handled(request: web.Request) -> web.StreamResponse:
    d = dashboard(request)
    staff = _acting(request)
    form = await request.post()
    list_name = _list_key(request.match_info["list"], _tracking(d.rt)).name
    note = form.get("note")
    note = note.strip() if isinstance(note, str) else ""
    async with d.rt.db.session() as session:
        graduate = await _listed(request, session, list_name)
        assert graduate.id is not None
        if len(note) > followups.NOTE_LIMIT:
            error = _("The note can be at most {n} characters.").format(n=followups.NOTE_LIMIT)
            return await _followups_again(
                request, list_name, {graduate.id: error}, notes={graduate.id: note}
            )
        await followups.set_handled(
            session,
            graduate.id,
            list_name,
            handled=form.get("handled") == "1",
            note=note,
            staff_id=staff.id,
            now=d.rt.clock.now(),
        )
    raise web.HTTPSeeOther(f"{PREFIX}/followups{_with_list(request, list_name)}#g{graduate.id}")


def _with_list(request: web.Request, list_name: str, **extra: str) -> str:
    scope = scope_of(request)
    return _query(scope, list=list_name, **extra)


async def _followups_again(
    request: web.Request,
    list_name: str,
    errors: dict[int, str],
    *,
    notes: dict[int, str] | None = None,
    messages: dict[int, str] | None = None,
) -> web.Response:
    """The list page again with the problem beside the graduate and what was typed."""
    return await followups_page(
        request,
        status=400,
        list_value=list_name,
        errors=errors,
        notes=notes or {},
        messages=messages or {},
    )


def message_text(school: str, text: str) -> str:
    """A staff member's message as the graduate gets it, in the current language (HTML)."""
    head = _("A message from {school}:").format(school=school)
    return f"<b>{html.escape(head)}</b>\n\n{html.escape(text, quote=False)}"


@web_access.allow(access.WRITERS)
async def followup_message(request: web.Request) -> web.StreamResponse:
    """Write to a graduate on a list through the bot: their Telegram chat, else their web
    chat, else e-mail (as news goes)."""
    d = dashboard(request)
    _acting(request)
    form = await request.post()
    list_name = _list_key(form.get("list"), _tracking(d.rt)).name
    text = form.get("text")
    text = text.strip() if isinstance(text, str) else ""
    async with d.rt.db.session() as session:
        graduate = await _listed(request, session, list_name)
        school = await session.get(Institution, graduate.institution_id)
    assert graduate.id is not None and school is not None
    problem = ""
    if not text:
        problem = _("Please write the message.")
    elif len(text) > MESSAGE_LIMIT:
        problem = _("The message can be at most {n} characters.").format(n=MESSAGE_LIMIT)
    if problem:
        return await _followups_again(
            request, list_name, {graduate.id: problem}, messages={graduate.id: text}
        )
    how = await deliver_message(d.rt, graduate, school, text)
    if how is None:
        return await _followups_again(
            request,
            list_name,
            {graduate.id: _("This graduate cannot be reached now: no chat and no usable e-mail.")},
            messages={graduate.id: text},
        )
    async with d.rt.db.session() as session:
        await followups.mark_contacted(session, graduate.id, list_name, d.rt.clock.now())
    target = _with_list(request, list_name, sent=how)
    raise web.HTTPSeeOther(f"{PREFIX}/followups{target}#g{graduate.id}")


async def deliver_message(
    rt: Runtime, graduate: Graduate, school: Institution, text: str
) -> str | None:
    """Send `text` from the school to the graduate; returns the channel ("telegram", "web",
    "email") or None when there is none."""
    from bot.delivery import mail_enabled, mail_usable
    from bot.web_channel import has_web_chat
    from storage.queries import web_chat_id

    assert graduate.id is not None
    with use_language(graduate.language or school.default_language):
        body = message_text(school.name, text)
    if graduate.chat_id is not None and graduate.unreachable_at is None:
        try:
            await rt.channel_for(graduate.chat_id).send(graduate.chat_id, body, html=True)
            return "telegram"
        except Unreachable as error:
            await mark_unreachable(rt, graduate.chat_id, str(error))
    if await has_web_chat(rt.db, graduate.id):
        chat = web_chat_id(graduate.id)
        await rt.channel_for(chat).send(chat, body, html=True)
        return "web"
    if mail_usable(graduate) and mail_enabled(rt.settings):
        return "email" if await _mail(rt, graduate, school, text) else None
    return None


async def _mail(rt: Runtime, graduate: Graduate, school: Institution, text: str) -> bool:
    from bot.email_delivery import ensure_invite_token, mailer_of, school_sender
    from bot.invitation_mail import html_mail
    from bot.links import unsubscribe_link, web_chat_link
    from bot.mail import Outcome, build_message

    assert graduate.id is not None and graduate.email
    token = await ensure_invite_token(rt, graduate)
    unsubscribe = unsubscribe_link(rt.settings, graduate.id)
    link = web_chat_link(rt.settings, token)
    with use_language(graduate.language or school.default_language):
        subject = _("A message from {school}:").format(school=school.name).rstrip(":")
        reply = _("Reply or tell us what changed for you in your graduate chat:")
        plain = f"{text}\n\n{reply}\n{link}\n"
        e = html.escape
        page = html_mail(
            subject,
            [
                f"<p>{e(text)}</p>".replace("\n", "<br>\n"),
                f'<p>{e(reply)}<br><a href="{e(link)}">{e(link)}</a></p>',
            ],
        )
    try:
        message = build_message(
            sender=school_sender(rt, school),
            to=str(Address(display_name=graduate.name or "", addr_spec=graduate.email)),
            subject=subject,
            text=plain,
            html=page,
            unsubscribe_url=unsubscribe,
            now=rt.clock.now(),
        )
    except (ValueError, IndexError):
        return False
    result = await mailer_of(rt).send(message)
    return result.outcome == Outcome.SENT


@web_access.allow(access.WRITERS)
async def followup_news(request: web.Request) -> web.StreamResponse:
    """News to a list: a draft with the list as its audience, in the composer in the staff
    member's Telegram chat."""
    d = dashboard(request)
    staff = _acting(request)
    form = await request.post()
    questionnaire = _tracking(d.rt)
    key = _list_key(form.get("list"), questionnaire)
    scope = scope_of(request)
    if staff.telegram_user_id is None:
        raise web.HTTPConflict(
            reason=_("News is written in the chat with the bot, and you have no chat.")
        )
    async with d.rt.db.session() as session:
        school = await session.get(Institution, scope.institution_id or 0)
    lead = _(
        "News to the list “{name}” (only those who want news get it). Send the text here."
    ).format(name=list_label(str(key), questionnaire))
    try:
        await start_draft(
            d.rt,
            staff,
            texts={},
            default_language=school.default_language if school else "en",
            audience=Audience(
                institution_ids=(scope.institution_id,) if scope.institution_id else (),
                followup=str(key),
            ),
            lead=lead,
            language=i18n.current_language(),
        )
    except Busy:
        raise web.HTTPConflict(reason=_busy_text()) from None
    except (Unreachable, Refused):
        raise web.HTTPConflict(reason=_no_chat_text()) from None
    raise web.HTTPSeeOther(f"{PREFIX}/followups{_with_list(request, key.name, news='started')}")


# ---------------------------------------------------------------- wiring


def add_actions(app: web.Application) -> None:
    """The routes of this module (called where the dashboard's routes are added)."""
    r = app.router
    r.add_get(f"{PREFIX}/programmes/{{programme}}/actions", actions_page)
    r.add_post(f"{PREFIX}/programmes/{{programme}}/actions", action_create)
    r.add_get(f"{PREFIX}/actions/{{action}}", action_page)
    r.add_post(f"{PREFIX}/actions/{{action}}/status", action_status)
    r.add_post(f"{PREFIX}/actions/{{action}}/close", action_close)
    r.add_post(f"{PREFIX}/actions/{{action}}/news", action_news)
    r.add_get(f"{PREFIX}/followups", followups_page)
    r.add_post(f"{PREFIX}/followups/news", followup_news)
    r.add_post(f"{PREFIX}/followups/{{graduate}}/message", followup_message)
    r.add_post(f"{PREFIX}/followups/{{graduate}}/{{list:work|offer}}", followup_handled)


__all__ = ["add_actions", "may_act", "may_see_followups"]
