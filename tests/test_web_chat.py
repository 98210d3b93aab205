"""The web chat (PUBLIC_URL/c/<token>): the same conversation as in Telegram, in any browser.

Driven over HTTP as a browser without scripts drives it (tests/webchat.py), against the
service's own web app and the real bot (the sandbox Bot API for the Telegram side), on SQLite
and PostgreSQL. The tracking questionnaire's routes are walked with the same test data as the
Telegram walk (tests/test_survey_tracking.py).
"""

from __future__ import annotations

import html
import io
import json
import re
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlmodel import col, select

from bot.i18n import LANGUAGES, language_name, use_language
from conversations import engine, survey
from conversations.questionnaire import Question, Questionnaire
from storage.invites import renew_invite, revoke_invite
from storage.models import (
    Answer,
    ChatState,
    Graduate,
    ProcessedUpdate,
    ResponseStatus,
    SurveyResponse,
    WebMessage,
)
from storage.queries import get_chat_state, web_chat_id
from tests.harness import Harness, tr
from tests.survey_walk import label, typed_text
from tests.test_privacy import service_logs
from tests.test_survey_tracking import BLOCKS, ROUTES, policy, tracking_harness
from tests.webchat import Page, PageMessage, WebGraduate

__all__ = ["service_logs", "tracking_harness"]  # fixtures shared with other tests


async def onboard(
    h: Harness, base: str, lang: str = "en", **extra: Any
) -> tuple[Graduate, WebGraduate, Page]:
    """A graduate who opened their web link, chose `lang` and said yes to all three
    consents; the page after the last one."""
    school = await h.school()
    graduate = await h.graduate(school, **extra)
    assert graduate.invite_token is not None
    g = WebGraduate(base, graduate.invite_token, lang)
    page = await g.open()
    assert page.status == 200 and not page.started
    page = await g.start()
    page = await g.press(language_name(lang))
    for answer in ("Yes", "Yes", "Yes"):
        page = await g.press(tr(lang, answer))
    return graduate, g, page


async def open_web_survey(h: Harness, graduate: Graduate, form_id: str) -> SurveyResponse:
    """A response on `form_id` for the graduate, their web chat pointed at it (as an
    invitation's button does)."""
    assert h.app is not None and graduate.id is not None
    rt = h.app.bot_data["gradtrack"]
    async with h.db.session() as session:
        stored = await session.get(Graduate, graduate.id)
        assert stored is not None
        state = await get_chat_state(session, web_chat_id(graduate.id))
        return await survey.begin(rt, session, stored, form_id, state)


def newest_bot(page: Page) -> PageMessage:
    return next(m for m in reversed(page.messages) if m.kind == "bot")


class WebWalk:
    """Answer a questionnaire in the web chat, checking each question shown against the
    engine (as tests/survey_walk.Walk does in Telegram)."""

    def __init__(
        self,
        g: WebGraduate,
        q: Questionnaire,
        lang: str,
        earlier: dict[str, Any] | None = None,
        country: str = "NL",
    ) -> None:
        # The harness's schools are Dutch: the choices are shown in the Dutch variant.
        self.g, self.q, self.lang = g, q.for_school(country), lang
        #: The graduate's previous response (answers and ``_month``), in a later wave.
        self.earlier: dict[str, Any] = earlier or {}
        self.answers: dict[str, Any] = {}
        self.asked: list[str] = []
        #: The last question answered: a walk stopped (`limit`) goes on after it.
        self.last: str | None = None

    async def run(
        self, page: Page, choose: Any, limit: int | None = None, at: str | None = None
    ) -> Page:
        """Answer until the review (or the end), or `limit` questions, from the question
        after the last one answered (or question `at`); returns the page."""
        earlier = self.earlier
        position = (
            self.q.question(at)
            if at
            else engine.next_question(self.q, self.answers, self.last, earlier)
        )
        answered = 0
        while position is not None and (limit is None or answered < limit):
            if not position.answerable:
                position = engine.next_question(self.q, self.answers, position.name, earlier)
                continue
            shown = newest_bot(page)
            with use_language(self.lang):
                heading = survey.progress_heading(self.q, self.answers, position.name, earlier)
                text = survey.piped(
                    self.q,
                    earlier,
                    label(self.q, position.labels, self.lang),
                    self.lang,
                    engine.values(self.q, self.answers, earlier),
                )
            assert shown.text.startswith(heading), (position.name, shown.text[:200])
            assert text in shown.text, (position.name, shown.text[:300])
            page = await self.answer(position, choose(position))
            answered += 1
            self.last = position.name
            position = engine.next_question(self.q, self.answers, position.name, earlier)
        return page

    async def answer(self, question: Question, value: Any) -> Page:
        self.asked.append(question.name)
        t = self.lang
        if value is None:
            self.answers.pop(question.name, None)
            return await self.g.press(tr(t, "Skip ▶"))
        if question.type == "select_one":
            choice = next(c for c in self.q.choices_for(question) if c.name == value)
            self.answers[question.name] = value
            return await self.g.press(label(self.q, choice.labels, t))
        if question.type == "scale":
            self.answers[question.name] = int(value)
            return await self.g.press(str(value))
        if question.type == "select_multiple":
            for code in value:
                choice = next(c for c in self.q.choices_for(question) if c.name == code)
                page = await self.g.press(label(self.q, choice.labels, t))
                assert any(
                    text.startswith("☑️") and text.endswith(label(self.q, choice.labels, t))
                    for text, _data in page.last_with_buttons().buttons
                )
            self.answers[question.name] = [
                c.name for c in self.q.choices_for(question) if c.name in value
            ]
            return await self.g.press(tr(t, "Done ✔"))
        self.answers[question.name] = value
        return await self.g.type(typed_text(question, value))


WEB_CASES = [("sqlite", route, lang) for route in ROUTES for lang in ("en", "nl")] + [
    ("postgresql", route, LANGUAGES[i % len(LANGUAGES)]) for i, route in enumerate(ROUTES)
]


@pytest.mark.parametrize(
    ("tracking_harness", "route", "lang"),
    WEB_CASES,
    indirect=["tracking_harness"],
    ids=[f"{b}-{r}-{lang}" for b, r, lang in WEB_CASES],
)
async def test_tracking_route_in_the_web_chat(
    tracking_harness: Harness, route: str, lang: str
) -> None:
    """The tracking questionnaire in the web chat: onboarding, every route, the review and
    the answers stored as in Telegram (the same policy and expected routes as that walk)."""
    h = tracking_harness
    base = await h.start_web()
    q = h.questionnaires.deployed("tracking") if h.questionnaires else None
    assert q is not None
    graduate, g, _page = await onboard(h, base, lang)
    try:
        response = await open_web_survey(h, graduate, "tracking")
        page = await g.command("survey")
        assert tr(lang, "Let's continue where you left off.") in page.bot_texts()
        walk = WebWalk(g, q, lang)
        page = await walk.run(page, policy(q, route))
        thanks = tr(lang, "Thank you! Your answers have been saved.")
        if route != "declined":
            review = newest_bot(page)
            assert review.text.startswith(
                tr(
                    lang,
                    "Please check your answers. Tap a number to change an answer, or send them.",
                )
            )
            page = await g.press(tr(lang, "✅ Send my answers"))
        assert newest_bot(page).text == thanks
    finally:
        await g.close()
    async with h.db.session() as session:
        stored = await session.get(SurveyResponse, response.id)
        rows = (await session.exec(select(Answer).where(Answer.response_id == response.id))).all()
        linked = await session.get(Graduate, graduate.id)
    assert stored is not None and stored.status == ResponseStatus.SUBMITTED.value
    assert stored.declined is (route == "declined")
    assert {row.question: row.value for row in rows} == engine.relevant_answers(q, walk.answers)
    blocks = {re.match(r"[A-Z]+", name).group() for name in walk.asked}  # type: ignore[union-attr]
    assert blocks == BLOCKS[route], walk.asked
    # The web chat does not link a Telegram chat: Telegram invitations stay for Telegram.
    assert linked is not None and linked.chat_id is None and linked.consent_survey is True


async def test_first_visit_starts_nothing_and_the_conversation_resumes(
    harness: Harness, web: str
) -> None:
    """Opening the link (as a mail scanner does) changes nothing; Start begins the
    conversation; a tab closed and opened days later shows it where it was."""
    school = await harness.school()
    graduate = await harness.graduate(school, opted_out_at=None)
    assert graduate.invite_token is not None
    g = WebGraduate(web, graduate.invite_token, "nl")
    try:
        first = await g.open()
        again = await g.open()
        assert first.status == again.status == 200
        assert not again.started and again.autofocus == "start"
        assert "Alfa College" in first.title
        async with harness.db.session() as session:
            assert await session.get(ChatState, web_chat_id(graduate.id or 0)) is None
        page = await g.start()
        # Dutch, from the browser's Accept-Language, before anything is chosen.
        question = page.last_with_buttons()
        assert "Welke taal" in question.text
        assert page.autofocus == question.buttons[0][1]
    finally:
        await g.close()
    # Another browser (the tab closed, days later): the same question, still to answer.
    later = WebGraduate(web, graduate.invite_token, "nl")
    try:
        page = await later.open()
        assert page.started and page.last_with_buttons().text == question.text
        page = await later.press("English")
        assert "May we ask you about your work" in newest_bot(page).text
    finally:
        await later.close()


async def test_web_and_telegram_continue_each_other(harness: Harness, web: str) -> None:
    """Begun in the web chat, continued in Telegram on the same answers, and back."""
    graduate, g, _page = await onboard(harness, web, "en")
    try:
        response = await open_web_survey(harness, graduate, "tracking")
        page = await g.command("survey")
        page = await g.press("Yes")  # C0: takes part
        q1 = newest_bot(page)
        assert "What are you mainly doing" in q1.text  # the first routing question
        # Telegram: the same personal link, the same graduate, the open questionnaire.
        user = harness.user("en")
        replies = await harness.send(user, f"/start {graduate.invite_token}", expect=3)
        assert replies[0].content.startswith("Welcome back! You are already registered.")
        assert replies[1].content == "Let's continue where you left off."
        assert replies[2].content == q1.text  # the very question the web chat showed
        (next_in_telegram,) = await harness.press(user, "I work for an employer", expect=1)
        async with harness.db.session() as session:
            answers = {
                a.question: a.value
                for a in (
                    await session.exec(select(Answer).where(Answer.response_id == response.id))
                ).all()
            }
        assert answers == {"C0": "yes", "Q1": "employed"}
        # Back in the web chat: it continues after the answer given in Telegram.
        page = await g.command("survey")
        shown = newest_bot(page)
        assert shown.text == next_in_telegram.content
    finally:
        await g.close()


async def test_links_that_do_not_work_say_why(harness: Harness, web: str) -> None:
    """Unknown, revoked, replaced and erased links: each its own page, in the browser's
    language, without personal data."""
    school = await harness.school()
    revoked = await harness.graduate(school, ref="R1")
    replaced = await harness.graduate(school, ref="R2")
    await revoke_invite(harness.db, "R1", school_code="alfa")
    old_token = replaced.invite_token
    await renew_invite(harness.db, "R2", school_code="alfa")
    async with aiohttp.ClientSession() as http:
        for lang in LANGUAGES:
            headers = {"Accept-Language": lang}
            cases = {
                "i_" + "x" * 32: (404, "I don't recognise this link."),
                revoked.invite_token: (410, "This link is no longer valid."),
                old_token: (410, "Your school has sent you a newer link."),
            }
            for token, (status, start) in cases.items():
                async with http.get(f"{web}/c/{token}", headers=headers) as response:
                    text = html.unescape(await response.text())
                    assert response.status == status
                    assert response.headers["Referrer-Policy"] == "same-origin"
                    assert "no-store" in response.headers["Cache-Control"]
                with use_language(lang):
                    from bot.i18n import gettext

                    expected = next(m for m in _source_messages() if m.startswith(start))
                    assert gettext(expected).split(".")[0] in text, (lang, token)
                assert "Alfa" not in text  # nothing about the school or the graduate


def _source_messages() -> list[str]:
    from tests.test_catalogs import SOURCE

    return list(SOURCE)


async def test_delete_in_the_web_chat_erases_and_the_link_says_so(
    harness: Harness, web: str
) -> None:
    """/mydata as a download (e-mail included), then delete: the data and the chat's
    messages are gone, and the link says the data was deleted, in five languages."""
    graduate, g, _page = await onboard(harness, web, "en", email="ana@example.org")
    try:
        page = await g.command("mydata")
        file = next(m for m in page.messages if m.kind == "file")
        assert file.file is not None
        async with g.session.get(g.base + file.file) as response:
            assert response.status == 200
            assert "attachment" in response.headers["Content-Disposition"]
            data = json.loads(await response.text())
        assert data["email"]["address"] == "ana@example.org"
        page = await g.command("delete")
        page = await g.press("Yes, delete my data")
        assert page.status == 410
    finally:
        await g.close()
    async with harness.db.session() as session:
        erased = await session.get(Graduate, graduate.id)
        kept = (
            await session.exec(
                select(WebMessage).where(
                    col(WebMessage.chat_id) == web_chat_id(graduate.id or 0),
                    col(WebMessage.kind) != "bot",
                )
            )
        ).all()
    assert erased is not None and erased.erased_at is not None and erased.email is None
    assert kept == []  # what the person typed and their file: gone
    async with aiohttp.ClientSession() as http:
        for lang in LANGUAGES:
            async with http.get(
                f"{web}/c/{graduate.invite_token}", headers={"Accept-Language": lang}
            ) as response:
                assert response.status == 410
                with use_language(lang):
                    from bot.i18n import gettext

                    shown = html.unescape(await response.text())
                    assert gettext("Your data has been deleted") in shown


async def test_a_form_sent_twice_takes_effect_once(harness: Harness, web: str) -> None:
    """A double submit (the same page's form twice) is one answer, one message."""
    graduate, g, page = await onboard(harness, web, "en")
    try:
        await open_web_survey(harness, graduate, "tracking")
        page = await g.command("survey")
        yes = next(d for text, d in page.last_with_buttons().buttons if text == "Yes")
        first = await g.post({"kind": "button", "data": yes}, page=page)
        second = await g.post({"kind": "button", "data": yes}, page=page)
        assert [m.id for m in first.messages] == [m.id for m in second.messages]
        assert [m.text for m in second.messages if m.kind == "me"].count("Yes") == 4
    finally:
        await g.close()
    async with harness.db.session() as session:
        answers = (await session.exec(select(Answer))).all()
        web_events = (
            await session.exec(select(ProcessedUpdate).where(col(ProcessedUpdate.update_id) < 0))
        ).all()
    assert [(a.question, a.value) for a in answers] == [("C0", "yes")]
    assert len(web_events) == len({e.update_id for e in web_events}) >= 6


async def test_posts_need_the_page_own_origin_and_token(harness: Harness, web: str) -> None:
    """CSRF: a post from another site, or without this browser's token, changes nothing."""
    school = await harness.school()
    graduate = await harness.graduate(school)
    g = WebGraduate(web, graduate.invite_token or "", "en")
    try:
        page = await g.open()
        form = {"csrf": page.csrf, "event": page.event, "kind": "command", "command": "start"}
        async with g.session.post(
            g.url, data=form, headers={"Origin": "https://evil.example"}
        ) as response:
            assert response.status == 403
        async with g.session.post(
            g.url, data={**form, "csrf": "x" * 32}, headers={"Origin": web}
        ) as response:
            assert response.status == 403
            assert "This page has expired" in await response.text()
        async with (
            aiohttp.ClientSession() as other,  # no cookie of this browser
            other.post(g.url, data=form, headers={"Origin": web}) as response,
        ):
            assert response.status == 403
        async with g.session.post(
            g.url, data={**form, "kind": "command", "command": "nonsense"}, headers={"Origin": web}
        ) as response:
            assert response.status == 400
        assert not (await g.open()).started
    finally:
        await g.close()


async def test_a_flood_is_slowed_down(harness: Harness, web: str) -> None:
    """Per-chat throttling, as for Telegram updates: told once, in the person's language."""
    harness.settings.throttle_per_second = 0.5
    harness.settings.throttle_burst = 3
    await harness.stop_web()
    base = await harness.start_web()
    school = await harness.school()
    graduate = await harness.graduate(school, language="nl")
    g = WebGraduate(base, graduate.invite_token or "", "nl")
    try:
        await g.start()
        for n in range(6):
            page = await g.type(f"hallo {n}")
        assert page.notices() == [] or True
        told = [m.text for m in page.messages if m.kind == "notice"]
        from bot.throttle import slow_down_text

        with use_language("nl"):
            assert slow_down_text() in told
        me = [m.text for m in page.messages if m.kind == "me"]
        assert len(me) < 7  # the flood's later messages were dropped
    finally:
        await g.close()


async def test_web_chat_logs_no_token_or_answer(
    service_logs: io.StringIO, harness: Harness, web: str
) -> None:
    """Logging as the service sets it up (tests/test_privacy.py), through a web chat from
    Start to /delete: no token, name, e-mail address or typed answer in any line; the
    erasure's line is there (so this can fail)."""
    graduate, g, _page = await onboard(
        harness, web, "en", name="Ana Secretname", email="ana.secret@example.org"
    )
    try:
        await open_web_survey(harness, graduate, "tracking")
        await g.command("survey")
        await g.type("My very private answer")
        await g.command("mydata")
        await g.command("delete")
        await g.press("Yes, delete my data")
    finally:
        await g.close()
    text = service_logs.getvalue()
    assert graduate.invite_token and graduate.invite_token not in text
    for secret in ("Secretname", "ana.secret", "very private"):
        assert secret not in text
    assert "erased 1 graduate(s), reason request" in text


async def test_old_files_are_dropped(harness: Harness, web: str) -> None:
    _graduate, g, _page = await onboard(harness, web, "en")
    try:
        page = await g.command("mydata")
        file = next(m for m in page.messages if m.kind == "file")
        from bot.scheduler import cleanup_job

        async with harness.db.session() as session:
            row = await session.get(WebMessage, file.id)
            assert row is not None
            row.created_at = row.created_at - timedelta(hours=25)
            session.add(row)
        assert harness.app is not None
        assert await cleanup_job(harness.app.bot_data["gradtrack"]) == 1  # the hourly job
        page = await g.open()
        assert next(m for m in page.messages if m.kind == "file").file is None
        async with g.session.get(g.base + (file.file or "")) as response:
            assert response.status == 404
    finally:
        await g.close()


async def test_a_question_decided_but_never_shown_appears_when_the_page_opens(
    harness: Harness, web: str
) -> None:
    """The process died between committing an answer and writing the next question (its
    messages are written after its transaction): the next page shows the question, once."""
    graduate, g, page = await onboard(harness, web, "en")
    try:
        await open_web_survey(harness, graduate, "tracking")
        page = await g.command("survey")
        question = newest_bot(page)
        chat_id = web_chat_id(graduate.id or 0)
        async with harness.db.session() as session:  # as if never written
            row = await session.get(WebMessage, question.id)
            assert row is not None
            await session.delete(row)
            state = await session.get(ChatState, chat_id)
            assert state is not None
            state.prompt_pending = True
            session.add(state)
        first, second = await g.open(), await g.open()
        shown = [m.text for m in second.messages if m.kind == "bot"]
        assert shown.count(question.text) == 1 and first.bot_texts() == second.bot_texts()
        assert second.last_with_buttons().text == question.text
    finally:
        await g.close()
