"""Officers write alumni news in the chat: through the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlmodel import select

from bot.news import send_news
from bot.sandbox.spec import UploadedFile
from bot.sandbox.state import SandboxUser, TranscriptEntry
from conversations.news_compose import render_news
from storage.models import (
    Broadcast,
    BroadcastStatus,
    ChatState,
    Graduate,
    Institution,
    Programme,
    Segment,
)
from storage.staff import add_staff
from tests.harness import Harness, eventually, tr

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (640).to_bytes(4, "big") * 2 + b"\x00" * 40


async def _seed(harness: Harness, school: Institution, reader_chat: int, base: int) -> None:
    """Graduates with different programmes, years, languages and consents."""
    async with harness.db.session() as session:
        programmes = {
            p.code: p.id
            for p in (
                await session.exec(select(Programme).where(Programme.institution_id == school.id))
            ).all()
        }
        assert school.id is not None
        rows = [
            ("ICT4", 2025, "nl", True, reader_chat),
            ("ICT4", 2026, "en", True, base + 1),
            ("CHEF4", 2026, "nl", True, base + 2),
            ("CHEF4", 2026, "nl", False, base + 3),  # no news consent
            ("ICT4", 2026, "es", True, None),  # never opened the chat
        ]
        for n, (code, year, lang, news, chat) in enumerate(rows):
            programme_id = programmes[code]
            assert programme_id is not None
            session.add(
                Graduate(
                    institution_id=school.id,
                    programme_id=programme_id,
                    student_ref=f"{school.code}-{n}",
                    graduation_date=date(year, 6, 30),
                    language=lang,
                    consent_news=news,
                    chat_id=chat,
                )
            )


async def _officer(harness: Harness, code: str, language: str = "en") -> SandboxUser:
    user = harness.user(language)
    await add_staff(harness.db, user.id, "officer", school_code=code)
    return user


async def _shows(harness: Harness, user: SandboxUser, message: TranscriptEntry, text: str) -> None:
    def shown(transcript: list[TranscriptEntry]) -> bool:
        entry = next(e for e in transcript if e.message_id == message.message_id)
        return text in (entry.text or "")

    await harness.sandbox.wait_until(harness.token, user.id, shown)


async def _broadcast(harness: Harness, chat_id: int) -> Broadcast:
    async with harness.db.session() as session:
        state = await session.get(ChatState, chat_id)
        bid = state.data["broadcast_id"] if state and state.data else None
        query = select(Broadcast).where(Broadcast.report_chat_id == chat_id)
        found = (await session.exec(query.order_by(Broadcast.id.desc()))).first()  # type: ignore[union-attr]
        assert found is not None and (bid is None or found.id == bid)
        return found


async def test_compose_photo_two_languages_audience_preview_schedule(harness: Harness) -> None:
    school = await harness.school("alfa", language="nl")
    other = await harness.school("beta", language="es")
    reader = harness.user("nl")
    await harness.send(reader, "/start")  # the reader's chat exists
    await _seed(harness, school, reader.id, 9_000_000)
    await _seed(harness, other, 9_100_000, 9_100_000)
    officer = await _officer(harness, "alfa")

    (ask,) = await harness.send(officer, "/news")
    assert ask.content.startswith("Send the news text.")
    # A photo with a caption, as the officer sends it from Telegram.
    bot_account = harness.sandbox.bot(harness.token)
    stored = harness.sandbox.state.store_file(bot_account, UploadedFile(PNG), "photo")
    size = {
        "file_id": stored.file_id,
        "file_unique_id": stored.file_unique_id,
        "width": 640,
        "height": 640,
    }
    harness.sandbox.state.user_message(
        bot_account,
        officer.id,
        media={"photo": [size], "caption": "Open dag op vrijdag <3 & meer"},
    )
    (which,) = await harness.replies(officer, 1)
    assert which.text == "Which language is this text in?"
    # The school's language first; names in the officer's language.
    assert [b["text"] for b in which.buttons] == [
        "Dutch",
        "Spanish",
        "Estonian",
        "Italian",
        "English",
    ]
    (more,) = await harness.press(officer, "Dutch", message=which)
    assert more.content.startswith("Saved (Dutch).")
    (ask_en,) = await harness.press(officer, "Add English")
    assert ask_en.text == "Send the English version of the news."
    (more,) = await harness.send(officer, "Open day on Friday <3 & more")
    assert more.content.startswith("Saved (Dutch, English).")
    (audience,) = await harness.press(officer, "Done")
    more = next(
        e
        for e in harness.sandbox.transcript(harness.token, officer.id)
        if e.message_id == more.message_id
    )
    assert "Recipients now: 3" in (audience.text or "")
    assert more.buttons == []  # answered: its buttons are gone

    async def toggle(label: str, count: int) -> None:
        await harness.press(officer, label, expect=0, message=audience)
        await _shows(harness, officer, audience, f"Recipients now: {count}")

    await toggle("Software developer", 2)
    await toggle("2026", 1)
    await toggle("NL", 0)
    await toggle("NL", 1)
    await toggle("Software developer", 2)
    await toggle("Not responded yet: 2 months after graduation", 0)
    await toggle("Not responded yet: 2 months after graduation", 2)

    (name_ask,) = await harness.press(officer, "Save as segment", message=audience)
    assert name_ask.text == "Type a name for this segment."
    saved, audience = await harness.send(officer, "Class of 2026", expect=2)
    assert saved.text == "Segment saved: Class of 2026"
    assert "Recipients now: 2" in (audience.text or "")
    async with harness.db.session() as session:
        segment = (await session.exec(select(Segment))).one()
        assert segment.institution_id == school.id and segment.filter["graduation_years"] == [2026]

    for_nl, preview, for_en, preview_en, prompt = await harness.press(
        officer, "Continue", expect=5, message=audience
    )
    # Each version as its readers get it, with how many get it.
    assert for_nl.text == "For the 1 graduate who reads Dutch:"
    assert for_en.text == "For the 1 graduate who reads English:"
    assert (preview_en.caption or "").startswith("Open day on Friday <3 & more\n\n— Alfa College")
    assert prompt.text == (
        "Above is the news as graduates will see it, each language version with how many "
        "get it. Recipients now: 2."
    )
    broadcast = await _broadcast(harness, officer.id)
    assert broadcast.status == BroadcastStatus.DRAFT.value
    assert broadcast.photo == stored.file_id
    assert broadcast.texts == {
        "nl": "Open dag op vrijdag &lt;3 &amp; meer",
        "en": "Open day on Friday &lt;3 &amp; more",
    }
    # The preview is exactly what a graduate reading Dutch gets.
    await send_news(harness.runtime.bot, reader.id, render_news(broadcast, "nl", school.name))
    (got,) = await harness.replies(reader, 1)
    assert (
        got.caption
        == preview.caption
        == ("Open dag op vrijdag <3 & meer\n\n— Alfa College · /privacy om het nieuws te stoppen")
    )
    assert got.caption_entities == preview.caption_entities
    assert got.reply_markup == preview.reply_markup
    assert got.photo and preview.photo
    assert got.photo[-1]["file_id"] == preview.photo[-1]["file_id"]

    (when,) = await harness.press(officer, "Schedule", message=prompt)
    # The example is tomorrow at 10:00 on the school's clock (now: 23 Nov 2026, 11:00 there).
    assert when.text == (
        "When should it go out? Type the date and time (Europe/Amsterdam), for example "
        "2026-11-24 10:00 for tomorrow at 10:00."
    )
    (bad,) = await harness.send(officer, "next friday")
    assert bad.text == (
        "I could not read that date. Please type it like 2026-11-24 10:00 (year-month-day "
        "hour:minute)."
    )
    (past,) = await harness.send(officer, "2020-01-01 10:00")
    assert past.content.startswith("That moment has passed.")
    (done,) = await harness.send(officer, "01-12-2026 10:00")
    assert done.text == (
        "Scheduled: the news goes to 2 graduates on Dec 1, 2026, 10:00\u202fAM (Europe/Amsterdam)."
    )
    broadcast = await _broadcast(harness, officer.id)
    assert broadcast.status == BroadcastStatus.SCHEDULED.value
    assert broadcast.due_at == datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert broadcast.institution_id == school.id and broadcast.default_language == "nl"
    assert broadcast.report_chat_id == officer.id
    async with harness.db.session() as session:
        state = await session.get(ChatState, officer.id)
        assert state is not None and state.flow == ""


async def test_restart_mid_compose_resumes_and_cancel_discards(harness: Harness) -> None:
    await harness.school("alfa")
    officer = await _officer(harness, "alfa", "it")
    await harness.send(officer, "/news")
    (which,) = await harness.send(officer, "Ciao a tutti")
    await harness.restart_bot()
    # The school writes Dutch, but this officer writes Italian: asked, not assumed.
    assert which.buttons[0]["text"] == "Olandese"
    (more,) = await harness.press(officer, "Italiano", message=which)
    assert more.content.startswith("Salvato (italiano).")
    await harness.restart_bot()
    (audience,) = await harness.press(officer, tr("it", "Done"), message=more)
    assert audience.buttons
    broadcast = await _broadcast(harness, officer.id)
    assert broadcast.texts == {"it": "Ciao a tutti"}
    assert broadcast.default_language == "it"
    await harness.restart_bot()
    _again, prompt = await harness.send(officer, "/news", expect=2)
    assert prompt.text == audience.text
    assert (await _broadcast(harness, officer.id)).id == broadcast.id
    await harness.send(officer, "/cancel")
    broadcast = await _broadcast(harness, officer.id)
    assert broadcast.status == BroadcastStatus.CANCELLED.value
    # A button of the discarded draft changes nothing.
    await harness.press(officer, tr("it", "Continue"), expect=0, message=audience)
    await eventually(lambda: len(harness.callback_answers(officer)) == 2)


async def test_broadcasts_are_seen_and_cancelled_only_within_the_school(
    harness: Harness,
) -> None:
    alfa = await harness.school("alfa")
    beta = await harness.school("beta")
    due = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    ids = {}
    async with harness.db.session() as session:
        for school in (alfa, beta):
            item = Broadcast(
                institution_id=school.id,
                texts={"nl": f"News of {school.code}"},
                default_language="nl",
                status=BroadcastStatus.SCHEDULED.value,
                due_at=due,
            )
            session.add(item)
            await session.flush()
            ids[school.code] = item.id
    officer_a = await _officer(harness, "alfa")
    officer_b = await _officer(harness, "beta")
    (listing_a,) = await harness.send(officer_a, "/broadcasts")
    assert f"#{ids['alfa']}" in (listing_a.text or "") and "News of alfa" in (listing_a.text or "")
    assert f"#{ids['beta']}" not in (listing_a.text or "")
    assert "10:00" in (listing_a.text or "")  # in the school's time zone
    assert [b["text"] for b in listing_a.buttons] == [f"Cancel #{ids['alfa']}"]
    (listing_b,) = await harness.send(officer_b, "/broadcasts")
    assert f"#{ids['alfa']}" not in (listing_b.text or "")

    # Officer A moves to school B: the old button of school A's news does nothing.
    await add_staff(harness.db, officer_a.id, "officer", school_code="beta")
    await harness.press(officer_a, f"Cancel #{ids['alfa']}", expect=0, message=listing_a)
    await eventually(
        lambda: harness.callback_answers(officer_a) == ["This button is no longer active."]
    )
    async with harness.db.session() as session:
        kept = await session.get(Broadcast, ids["alfa"])
        assert kept is not None and kept.status == BroadcastStatus.SCHEDULED.value

    await harness.press(officer_b, f"Cancel #{ids['beta']}", expect=0, message=listing_b)
    await eventually(lambda: harness.callback_answers(officer_b) == ["Cancelled."])
    await _shows(harness, officer_b, listing_b, "cancelled")
    async with harness.db.session() as session:
        gone = await session.get(Broadcast, ids["beta"])
        assert gone is not None and gone.status == BroadcastStatus.CANCELLED.value


async def test_a_dutch_officer_writes_english_first_and_sees_each_version_with_its_readers(
    harness: Harness,
) -> None:
    """The first text's language is asked, not assumed to be the school's; languages are
    named in the officer's language; the preview shows each version to its readers' count
    (the default one also to those whose language has no version)."""
    from tests.test_news_delivery import readers

    h = harness
    school = await h.school("alfa", language="nl")
    await readers(h, school, 2, lang="nl")
    await readers(h, school, 1, lang="en")
    await readers(h, school, 1, lang="es")  # no Spanish version: gets the default (English)
    officer = await _officer(h, "alfa", "nl")
    await h.send(officer, "/news")
    (which,) = await h.send(officer, "Open day on Friday")
    assert which.text == tr("nl", "Which language is this text in?")
    assert [b["text"] for b in which.buttons] == [
        "Nederlands",
        "Spaans",
        "Estisch",
        "Italiaans",
        "Engels",
    ]
    (more,) = await h.press(officer, "Engels", message=which)
    assert more.content.startswith("Opgeslagen (Engels).")
    assert tr("nl", "Add {language}").format(language="Nederlands") in [
        b["text"] for b in more.buttons
    ]
    assert tr("nl", "Add {language}").format(language="Engels") not in [
        b["text"] for b in more.buttons
    ]
    await h.press(officer, tr("nl", "Add {language}").format(language="Nederlands"), message=more)
    (more,) = await h.send(officer, "Open dag op vrijdag")
    assert more.content.startswith("Opgeslagen (Engels, Nederlands).")
    (audience,) = await h.press(officer, tr("nl", "Done"), message=more)
    head_en, news_en, head_nl, news_nl, prompt = await h.press(
        officer, tr("nl", "Continue"), expect=5, message=audience
    )
    assert head_en.text == (
        "Voor de 2 afgestudeerden die Engels lezen of een taal zonder eigen versie:"
    )
    assert news_en.content.startswith(
        "Open day on Friday\n\n— Alfa College · /privacy to stop news"
    )
    assert head_nl.text == "Voor de 2 afgestudeerden die Nederlands lezen:"
    assert news_nl.content.startswith("Open dag op vrijdag\n\n— Alfa College")
    assert prompt.text == tr(
        "nl",
        "Above is the news as graduates will see it, each language version with how many get "
        "it. Recipients now: {count}.",
    ).format(count=4)
    broadcast = await _broadcast(h, officer.id)
    assert broadcast.default_language == "en"
    assert broadcast.texts == {
        "en": "Open day on Friday",
        "nl": "Open dag op vrijdag",
    }
