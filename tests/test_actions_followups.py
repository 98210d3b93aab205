"""Actions and follow-up lists on the dashboard (issue 18), over HTTP and the sandbox Bot API,
on SQLite and PostgreSQL: an action taken from graduates' comments, closed, and told to the
programme's graduates ("you said, we did") in the news composer; the follow-up lists only
with consent, handled with a note, a message from the list arriving in the chat, the list as
a news audience, and erasure."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import aiohttp
from sqlmodel import col, select

from bot.delivery import RateLimiter
from bot.news import dispatch_news
from bot.sandbox import SandboxUser
from bot.sandbox.state import TranscriptEntry
from conversations.rights import export_data
from storage.erasure import erase_graduate
from storage.models import (
    Answer,
    Broadcast,
    ChatState,
    FollowupEntry,
    Graduate,
    Institution,
    Programme,
    ProgrammeAction,
    SurveyResponse,
    WebMessage,
)
from storage.news import Audience, count_audience
from storage.queries import web_chat_id
from storage.staff import add_staff
from tests.harness import Harness, tr
from tests.test_dashboard import client_session, log_in
from tests.test_email_invitations import MailServer, mailing, parts, smtp

__all__ = ["mailing", "smtp"]  # fixtures

NO_LIMIT = RateLimiter(0)
COMMENT = "More practice with the combi-steamer, please"


class Seed:
    """alfa (nl) with Cook and Software developer graduates in the sandbox, and beta."""

    def __init__(self) -> None:
        self.users: dict[str, SandboxUser] = {}
        self.ids: dict[str, int] = {}
        self.comment_id = 0
        self.cook = 0
        self.ict = 0
        self.alfa: Institution | None = None


async def _respond(
    h: Harness, graduate_id: int, wave: str, answers: dict[str, Any], carried: int | None = None
) -> int:
    async with h.db.session() as session:
        response = SurveyResponse(
            graduate_id=graduate_id,
            form_id="tracking",
            version="2026.1",
            wave=wave,
            status="submitted",
            complete=True,
            completed_at=datetime(2026, 9, 2, tzinfo=UTC),
        )
        session.add(response)
        await session.flush()
        assert response.id is not None
        for question, value in answers.items():
            session.add(
                Answer(
                    response_id=response.id,
                    question=question,
                    value=value,
                    carried_from=carried if question == "A7" and carried else None,
                )
            )
        return response.id


async def seed(h: Harness) -> Seed:
    s = Seed()
    alfa = await h.school("alfa", language="nl")
    beta = await h.school("beta", country="ES", language="es")
    s.alfa = alfa
    async with h.db.session() as session:
        programmes = {
            (p.institution_id, p.code): p.id
            for p in (await session.exec(select(Programme))).all()
            if p.id is not None
        }
    assert alfa.id is not None and beta.id is not None
    s.cook = programmes[(alfa.id, "CHEF4")]
    s.ict = programmes[(alfa.id, "ICT4")]
    # name: (programme, news consent, follow-up consent, language)
    people = {
        "Nina Cook": (s.cook, True, True, "nl"),
        "Omar Cook": (s.cook, False, True, "en"),
        "Ida Ict": (s.ict, True, True, "en"),
        "Pia Cook": (s.cook, True, False, "nl"),
    }
    for name, (programme, news, followup, lang) in people.items():
        user = h.user(lang)
        await h.send(user, "/start")  # the chat exists (the bot may write to it)
        async with h.db.session() as session:
            graduate = Graduate(
                institution_id=alfa.id or 0,
                programme_id=programme,
                student_ref=name.split()[0].lower(),
                name=name,
                graduation_date=date(2026, 6, 30),
                language=lang,
                chat_id=user.id,
                consent_survey=True,
                consent_news=news,
                consent_followup=followup,
            )
            session.add(graduate)
            await session.flush()
            assert graduate.id is not None
            s.ids[name] = graduate.id
        s.users[name] = user
    async with h.db.session() as session:
        stranger = Graduate(
            institution_id=beta.id or 0,
            programme_id=programmes[(beta.id, "CHEF4")],
            student_ref="x1",
            name="Beta Person",
            graduation_date=date(2026, 6, 30),
            consent_followup=True,
            consent_news=True,
        )
        session.add(stranger)
        await session.flush()
        assert stranger.id is not None
        s.ids["Beta Person"] = stranger.id
    first = await _respond(h, s.ids["Nina Cook"], "m2", {"A4": COMMENT, "U4": "yes"})
    async with h.db.session() as session:
        comment = (
            await session.exec(
                select(Answer).where(Answer.response_id == first, Answer.question == "A4")
            )
        ).one()
    assert comment.id is not None
    s.comment_id = comment.id
    await _respond(h, s.ids["Omar Cook"], "m2", {"A7": ["guest_lecture"], "U4": "no"})
    earlier = await _respond(h, s.ids["Ida Ict"], "m2", {"A7": ["mentor", "guest_lecture"]})
    await _respond(h, s.ids["Ida Ict"], "m6", {"A7": ["mentor", "guest_lecture"]}, earlier)
    await _respond(h, s.ids["Pia Cook"], "m2", {"U4": "yes", "A7": ["host_intern"]})
    await _respond(h, s.ids["Beta Person"], "m2", {"U4": "yes", "A7": ["mentor"]})
    return s


async def _officer(h: Harness, client: aiohttp.ClientSession) -> tuple[SandboxUser, str]:
    officer = h.user("en")
    await add_staff(h.db, officer.id, "officer", school_code="alfa")
    csrf = await log_in(h, client, officer)
    return officer, csrf


def _errors(page: str) -> list[str]:
    block = re.search(r'<div class="error" role="alert" id="errors"><ul>(.*?)</ul>', page, re.S)
    return re.findall(r"<li>(.*?)</li>", block.group(1)) if block else []


async def test_an_action_from_comments_to_a_sent_you_said_we_did_news_item(
    harness: Harness, web: str
) -> None:
    h = harness
    s = await seed(h)
    async with client_session() as client:
        officer, csrf = await _officer(h, client)
        async with client.get(f"{web}/dashboard/programmes/{s.cook}") as r:
            assert f'href="/dashboard/programmes/{s.cook}/actions' in await r.text()
        actions = f"{web}/dashboard/programmes/{s.cook}/actions"
        async with client.get(actions) as r:
            listing = await r.text()
        assert COMMENT in listing and f'value="{s.comment_id}"' in listing
        assert "Nina" not in listing  # comments without names

        good = {
            "csrf": csrf,
            "what": "Two extra oven practicals in year 2",
            "why": "Graduates miss practice with professional ovens",
            "indicator": "6b1",
            "comment": str(s.comment_id),
            "who": "Team Cook",
            "due": "2027-01-31",
            "status": "open",
        }
        bad_cases = {
            "what": ("", "Please say what will be done."),
            "due": ("2020-01-01", "The date has passed. Please give a date from today on."),
            "indicator": ("9z", "There is no such indicator. Please choose one from the list."),
        }
        for field, (value, error) in bad_cases.items():
            async with client.post(actions, data={**good, field: value}) as response:
                assert response.status == 400, field
                page = await response.text()
            assert _errors(page) == [error], field
            assert "Graduates miss practice with professional ovens" in page  # kept
        # A comment of another programme is not this programme's.
        async with client.post(actions, data={**good, "comment": "999999"}) as response:
            assert response.status == 400
        # Another school's programme: not found.
        assert s.alfa is not None
        alfa_id = s.alfa.id
        async with h.db.session() as session:
            beta_cook = (
                await session.exec(
                    select(Programme).where(
                        Programme.code == "CHEF4", Programme.institution_id != alfa_id
                    )
                )
            ).one()
        async with client.post(
            f"{web}/dashboard/programmes/{beta_cook.id}/actions", data=good
        ) as response:
            assert response.status == 404
        async with h.db.session() as session:
            assert not (await session.exec(select(ProgrammeAction))).all()

        async with client.post(actions, data=good) as response:
            assert response.status == 200
            action_url = str(response.url)
            page = await response.text()
        assert re.search(r"/dashboard/actions/\d+$", action_url)
        assert COMMENT in page and "Team Cook" in page
        async with client.get(actions) as response:
            assert "Two extra oven practicals" in await response.text()

        async with client.post(
            f"{action_url}/status", data={"csrf": csrf, "status": "in_progress"}
        ):
            pass
        async with client.post(f"{action_url}/close", data={"csrf": csrf, "result": ""}) as r:
            assert r.status == 400
            assert _errors(await r.text()) == ["Please say what was done."]
        done = "Since October every student has two practicals with a combi-steamer"
        async with client.post(f"{action_url}/close", data={"csrf": csrf, "result": done}) as r:
            page = await r.text()
        assert '<td id="action-status">Done</td>' in page
        text = re.search(r'<textarea id="news-text" name="text"[^>]*>(.*?)</textarea>', page, re.S)
        assert text is not None and done in text.group(1)
        assert 'name="lang" value="nl"' in page  # the school's language first
        news_text = text.group(1).replace("&#34;", '"').replace("&#39;", "'")

        # A chat that blocked the bot: said so, and nothing is begun.
        h.sandbox.block(h.token, officer.id)
        async with client.post(
            f"{action_url}/news", data={"csrf": csrf, "lang": "nl", "text": news_text}
        ) as r:
            assert r.status == 409
            assert _errors(await r.text()) == [
                "The bot cannot write to your chat. Open the chat with the bot, send /start, "
                "and try again."
            ]
        h.sandbox.unblock(h.token, officer.id)
        async with client.post(
            f"{action_url}/news", data={"csrf": csrf, "lang": "nl", "text": news_text}
        ) as r:
            assert r.status == 200 and str(r.url).endswith("?news=started")
        lead, saved = await h.replies(officer, 2)
        assert "Cook" in lead.content
        assert saved.content.startswith("Saved (Dutch).")
        (audience,) = await h.press(officer, "Done")
        assert "Recipients now: 2" in audience.content  # the Cook graduates who want news
        _for_nl, _preview, _prompt = await h.press(officer, "Continue", expect=3)
        (sending,) = await h.press(officer, "Send now")
        assert "2 graduates" in sending.content
        report = await dispatch_news(h.runtime, limiter=NO_LIMIT)
        assert report.sent == 2
        for name in ("Nina Cook", "Pia Cook"):
            got = h.sandbox.bot_messages(h.token, s.users[name].id)[-1]
            assert done in (got.text or ""), name
        for name in ("Omar Cook", "Ida Ict"):  # no news consent; another programme
            texts = [m.text or "" for m in h.sandbox.bot_messages(h.token, s.users[name].id)]
            assert not [t for t in texts if done in t], name
        async with h.db.session() as session:
            action = (await session.exec(select(ProgrammeAction))).one()
            news = await session.get(Broadcast, action.broadcast_id)
        assert (
            news is not None and news.status == "done" and news.filter["programme_ids"] == [s.cook]
        )
        assert action.status == "done" and action.answer_ids == [s.comment_id]
        assert action.indicator == "6b1" and action.due_on == date(2027, 1, 31)
        async with client.get(action_url) as r:
            page = await r.text()
        assert f'href="/dashboard/broadcasts/{news.id}"' in page and "news-form" not in page


async def _shows(h: Harness, user: SandboxUser, message: TranscriptEntry, text: str) -> None:
    def shown(transcript: list[TranscriptEntry]) -> bool:
        entry = next(e for e in transcript if e.message_id == message.message_id)
        return text in (entry.text or "")

    await h.sandbox.wait_until(h.token, user.id, shown)


def _card_ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<article class="card" id="g(\d+)">', page)]


async def test_follow_up_lists_with_consent_handled_message_news_and_erasure(
    harness: Harness, web: str
) -> None:
    h = harness
    s = await seed(h)
    lists = f"{web}/dashboard/followups"
    async with client_session() as client:
        officer, csrf = await _officer(h, client)
        async with client.get(f"{lists}?list=work") as r:
            work = await r.text()
        # Nina asked for help; Pia did too, but said no to being contacted again; Beta
        # Person is another school's.
        assert _card_ids(work) == [s.ids["Nina Cook"]]
        assert "Nina Cook" in work and "CHEF4 · Cook" in work and "2026" in work
        async with client.get(f"{lists}?list=offer") as r:
            offer = await r.text()
        # Ida's A7 was carried into m6: listed once.
        assert sorted(_card_ids(offer)) == sorted([s.ids["Omar Cook"], s.ids["Ida Ict"]])
        assert "Mentor a student, Give a guest lesson" in offer

        nina = s.ids["Nina Cook"]
        note = "Called her on Monday: sent two vacancies"
        async with client.post(
            f"{lists}/{nina}/work", data={"csrf": csrf, "handled": "1", "note": "x" * 2001}
        ) as r:
            assert r.status == 400
            assert "The note can be at most 2000 characters." in await r.text()
        async with client.post(
            f"{lists}/{nina}/work", data={"csrf": csrf, "handled": "1", "note": note}
        ) as r:
            page = await r.text()
        assert note in page and f'id="handled-{nina}" name="handled" value="1" checked' in page
        # The graduate's copy of their data (/mydata) holds the school's note.
        async with h.db.session() as session:
            stored = await session.get(Graduate, nina)
            assert stored is not None
            exported = await export_data(h.runtime, session, stored, "en")
        (entry,) = exported["follow_up_by_the_school"]
        assert entry["list"] == "work" and entry["note"] == note and entry["handled_at"]
        # Not on the list (no consent to be contacted): refused, nothing stored.
        pia = s.ids["Pia Cook"]
        async with client.post(f"{lists}/{pia}/work", data={"csrf": csrf, "note": "n"}) as r:
            assert r.status == 404
        async with client.post(
            f"{lists}/{pia}/message", data={"csrf": csrf, "list": "work", "text": "Hi"}
        ) as r:
            assert r.status == 404

        message = "Hoi Nina, we have two vacancies for you: mail jobs@alfa.example"
        async with client.post(
            f"{lists}/{nina}/message", data={"csrf": csrf, "list": "work", "text": ""}
        ) as r:
            assert r.status == 400 and "Please write the message." in await r.text()
        async with client.post(
            f"{lists}/{nina}/message", data={"csrf": csrf, "list": "work", "text": message}
        ) as r:
            assert "Sent in Telegram." in await r.text()
        got = h.sandbox.bot_messages(h.token, s.users["Nina Cook"].id)[-1]
        assert (
            got.text
            == f"{tr('nl', 'A message from {school}:').format(school='Alfa College')}\n\n{message}"
        )

        # The list as a news audience: those on it who want news.
        async with h.db.session() as session:
            assert await count_audience(session, Audience(followup="offer:guest_lecture")) == 1
            assert await count_audience(session, Audience(followup="offer")) == 1  # Ida
            assert await count_audience(session, Audience(followup="work")) == 1  # Nina
        async with client.post(
            f"{lists}/news", data={"csrf": csrf, "list": "offer:guest_lecture"}
        ) as r:
            assert r.status == 200
        lead, ask = await h.replies(officer, 2)
        assert "Offered: Give a guest lesson" in lead.content
        assert ask.content.startswith("Send the news text.")
        (which,) = await h.send(officer, "Guest lessons start in March!")
        await h.press(officer, "English", message=which)
        (audience,) = await h.press(officer, "Done")
        assert "Recipients now: 1" in audience.content
        # The lists are audience buttons in the chat too.
        for label, count in (
            ("Asked for help finding work", 1),  # Nina
            ("Asked for help finding work", 3),  # no list: every reader of alfa's news
            ("Offered to help the school", 1),  # Ida (Omar wants no news)
        ):
            await h.press(officer, label, expect=0, message=audience)
            await _shows(h, officer, audience, f"Recipients now: {count}")
        await h.press(officer, "Continue", expect=3, message=audience)
        await h.press(officer, "Send now")
        assert (await dispatch_news(h.runtime, limiter=NO_LIMIT)).sent == 1
        ida = h.sandbox.bot_messages(h.token, s.users["Ida Ict"].id)[-1]
        assert "Guest lessons start in March!" in (ida.text or "")
        omar = [m.text or "" for m in h.sandbox.bot_messages(h.token, s.users["Omar Cook"].id)]
        assert not [t for t in omar if "Guest lessons" in t]  # no news consent

        # Erasure takes the graduate off the lists with their note.
        async with h.db.session() as session:
            graduate = await session.get(Graduate, nina)
            assert graduate is not None
            await erase_graduate(
                session, graduate, now=datetime(2026, 12, 1, tzinfo=UTC), reason="request"
            )
        async with h.db.session() as session:
            left = (await session.exec(select(FollowupEntry))).all()
            assert not [e for e in left if e.graduate_id == nina]
            assert not (await session.exec(select(col(FollowupEntry.note)))).all()
        async with client.get(f"{lists}?list=work") as r:
            page = await r.text()
        assert _card_ids(page) == [] and note not in page
        # Withdrawing the follow-up consent takes a graduate off at once.
        async with h.db.session() as session:
            withdrawn = await session.get(Graduate, s.ids["Omar Cook"])
            assert withdrawn is not None
            withdrawn.consent_followup = False
            session.add(withdrawn)
        async with client.get(f"{lists}?list=offer") as r:
            assert _card_ids(await r.text()) == [s.ids["Ida Ict"]]


async def test_a_message_from_the_list_reaches_the_web_chat_or_the_mailbox(
    mailing: Harness, smtp: MailServer
) -> None:
    """A graduate who only opened their web chat gets the message there; one who has only an
    e-mail address gets it by e-mail (the school's sender, the web chat link to answer in)."""
    h = mailing
    web = h.settings.base_url
    school = await h.school()
    on_web = await h.graduate(school, language="en", name="Wes Web", consent_followup=True)
    by_mail = await h.graduate(
        school, language="nl", name="Mia Mail", consent_followup=True, email="mia@example.org"
    )
    async with h.db.session() as session:
        session.add(ChatState(chat_id=web_chat_id(on_web.id or 0), graduate_id=on_web.id))
    for graduate in (on_web, by_mail):
        assert graduate.id is not None
        await _respond(h, graduate.id, "m2", {"U4": "yes"})
    async with client_session() as client:
        _officer_user, csrf = await _officer(h, client)
        sent: dict[int | None, str] = {}
        for graduate, text in ((on_web, "See you Monday, Wes"), (by_mail, "Hoi Mia, bel ons")):
            async with client.post(
                f"{web}/dashboard/followups/{graduate.id}/message",
                data={"csrf": csrf, "list": "work", "text": text},
            ) as r:
                page = await r.text()
            found = re.search(r'<p class="ok" role="status" id="sent">(.*?)</p>', page)
            sent[graduate.id] = found.group(1) if found else ""
    assert sent == {on_web.id: "Sent to their web chat.", by_mail.id: "Sent by e-mail."}
    async with h.db.session() as session:
        shown = (
            await session.exec(
                select(WebMessage).where(col(WebMessage.chat_id) == web_chat_id(on_web.id or 0))
            )
        ).all()
        entries = (await session.exec(select(FollowupEntry))).all()
    assert [m.text for m in shown] == ["A message from Alfa College:\n\nSee you Monday, Wes"]
    (mail,) = smtp.to("mia@example.org")
    assert mail["Subject"] == "Een bericht van Alfa College"
    text, _html = parts(mail)
    assert "Hoi Mia, bel ons" in text and f"/c/{by_mail.invite_token}" in text
    assert {e.graduate_id for e in entries if e.contacted_at} == {on_web.id, by_mail.id}
