"""Updates as real Telegram clients send them (issue 14): photos, stickers, voice notes and
the like, a burst of forwards, an update python-telegram-bot cannot read, update kinds the
bot does not handle, and the Bot API's 400s for what it refuses. Each is answered clearly in
the person's language, or skipped without blocking anyone, never silence or a loop (both
databases).

Figures for docs/reliability.md are the module constants: MEDIA (shapes), SITUATIONS,
FORWARDS, UNREADABLE and NOT_HANDLED."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.i18n import use_language
from bot.sandbox.formatting import utf16_len
from bot.sandbox.state import SandboxUser, TranscriptEntry
from bot.throttle import THROTTLE_KEY, ChatThrottle
from conversations import onboarding
from conversations.account import forwarded_text, help_text, unreadable_text
from conversations.prompting import refused_text, resend_pending_prompts
from conversations.registry import QuestionnaireRegistry
from conversations.waves import parse_plans
from storage.models import Answer, ChatState, SurveyResponse
from tests.harness import Harness, Webhook, eventually, tr
from tests.test_cli import _cli

Payload = dict[str, Any]


def _file(unique: str, size: int, **extra: Any) -> Payload:
    return {
        "file_id": f"AgACAgQAAxkBAAIC{unique}AAHQY8t2bWd4YH",
        "file_unique_id": f"AQAD{unique}",
        "file_size": size,
        **extra,
    }


def _location() -> Payload:
    return {"latitude": 52.370216, "longitude": 4.895168, "horizontal_accuracy": 20.5}


def media_messages(user: SandboxUser) -> dict[str, Payload]:
    """The fields of a Message, beyond id/date/chat/from, as Telegram sends them for what a
    person can send instead of text, by name."""
    thumb = _file("thumb", 4_210, width=320, height=320)
    return {
        "a photo": {
            "photo": [
                _file("ph90", 1_337, width=90, height=67),
                _file("ph320", 21_045, width=320, height=240),
                _file("ph1280", 148_800, width=1280, height=960),
            ]
        },
        "a photo with a caption": {
            "photo": [_file("ph2", 9_100, width=320, height=240)],
            "caption": "my diploma",
        },
        "a sticker": {
            "sticker": _file(
                "st",
                22_504,
                width=512,
                height=512,
                emoji="😀",
                set_name="HotCherry",
                is_animated=False,
                is_video=False,
                type="regular",
                thumbnail=_file("stt", 5_376, width=128, height=128),
            )
        },
        "an animated sticker": {
            "sticker": _file(
                "sta",
                31_000,
                width=512,
                height=512,
                emoji="👍",
                is_animated=True,
                is_video=False,
                type="regular",
            )
        },
        "a voice note": {"voice": _file("vo", 8_034, duration=3, mime_type="audio/ogg")},
        "a document": {
            "document": _file("do", 94_211, file_name="cv.pdf", mime_type="application/pdf")
        },
        "a video note": {
            "video_note": _file("vn", 310_512, duration=5, length=240, thumbnail=thumb)
        },
        "a location": {"location": _location()},
        "a contact": {
            "contact": {"phone_number": "+31612345678", "first_name": "Mila", "user_id": user.id}
        },
        "a venue": {
            "location": _location(),
            "venue": {
                "location": _location(),
                "title": "Alfa College",
                "address": "Stationsplein 1, Amsterdam",
                "foursquare_id": "4a27f3d4f964a520c3891fe3",
            },
        },
        "a dice": {"dice": {"emoji": "🎲", "value": 4}},
    }


MEDIA = 11
SITUATIONS = 4


async def _expect_explained(
    harness: Harness,
    user: SandboxUser,
    media: Payload,
    lang: str,
    then: str | None,
    question: TranscriptEntry | None,
) -> None:
    """`user` sends `media`: the bot says what it reads, in `lang`, then what to do now:
    `then` in the same message, or `question` again (its text and buttons)."""
    harness.sandbox.skip(harness.token, user.id)
    await harness.sandbox.send_media(harness.token, user.id, media)
    with use_language(lang):
        notice = unreadable_text()
    if question is None:
        (reply,) = await harness.replies(user, 1)
        assert reply.text is not None and reply.text.startswith(notice), reply.text
        assert then is not None and then in reply.text
        return
    reply, again = await harness.replies(user, 2)
    assert reply.text is not None and reply.text.startswith(notice), reply.text
    assert again.text == question.text and again.buttons == question.buttons


async def test_media_get_an_answer_in_the_persons_language_in_every_situation(
    harness: Harness,
) -> None:
    """Each of MEDIA message shapes, sent in SITUATIONS: not registered (Estonian), at a
    consent question of onboarding (English), at a question of the questionnaire (Italian),
    and registered with nothing open (Dutch). Each gets "I can only read text and buttons",
    in the person's language, then what to do now: the open question again, with its
    buttons, or how to begin, or /help. Never silence."""
    # Not registered.
    stranger = harness.user("et", first_name="Mari")
    with use_language("et"):
        begin = onboarding.not_registered_text()
    # At a consent question of onboarding.
    _school, _graduate, onboarding_user = await harness.at_consents()
    consent = harness.last_keyboard_message(onboarding_user)
    # At a question of the questionnaire.
    school = await harness.school("beta")
    graduate, surveyed = await harness.consenting_graduate("it", school=school)
    await harness.open_survey(graduate, "tracking")
    await harness.send(surveyed, "/survey", expect=2)
    survey_question = harness.last_keyboard_message(surveyed)
    # Registered, nothing open.
    _done, idle = await harness.consenting_graduate("nl", school=school, answers=("No", "No"))
    with use_language("nl"):
        help_hint = tr("nl", "/help lists what I can do.")

    shapes = media_messages(stranger)
    assert len(shapes) == MEDIA
    for name, media in shapes.items():
        try:
            await _expect_explained(harness, stranger, media, "et", begin, None)
            await _expect_explained(harness, onboarding_user, media, "en", None, consent)
            await _expect_explained(harness, surveyed, media, "it", None, survey_question)
            await _expect_explained(harness, idle, media, "nl", help_hint, None)
        except Exception as exc:
            raise AssertionError(f"{name}: {exc}") from exc
    # The questions still work afterwards.
    await harness.press(onboarding_user, "Yes", message=consent)
    await harness.press(surveyed, tr("it", "Yes"), message=survey_question)


FORWARDS = 25


def _forward(number: int) -> Payload:
    return {
        "forward_origin": {
            "type": "user",
            "date": 1_789_990_000 + number,
            "sender_user": {"id": 777_000 + number, "is_bot": False, "first_name": "Sam"},
        },
    }


@pytest.mark.parametrize("situation", ["not registered", "mid-survey"])
async def test_a_burst_of_forwards_gets_one_answer(harness: Harness, situation: str) -> None:
    """FORWARDS messages forwarded at once (a forward of several messages arrives as one
    update each), with flood control on as shipped (3 per second, bursts of 20): one answer
    ("I do not read forwarded messages", then what to do now), not one per forward, no
    slow-down notice, and none of the forwarded texts is taken as an answer or a command."""
    assert harness.app is not None
    harness.app.bot_data[THROTTLE_KEY] = ChatThrottle(3.0, 20)
    if situation == "not registered":
        user, lang, question = harness.user("es", first_name="Lucía"), "es", None
        await harness.send(user, "/help")
    else:
        lang = "it"
        graduate, user = await harness.consenting_graduate(lang)
        await harness.open_survey(graduate, "tracking")
        await harness.send(user, "/survey", expect=2)
        question = harness.last_keyboard_message(user)
    before = len(harness.sandbox.bot_messages(harness.token, user.id))
    texts = ["/help", "/start abc", "Yes", "2019", *(f"forwarded note {n}" for n in range(21))]
    assert len(texts) == FORWARDS
    for number, text in enumerate(texts):
        await harness.sandbox.send_media(harness.token, user.id, _forward(number), text=text)
    await eventually(lambda: not harness.sandbox.pending_updates(harness.token))
    witness = harness.user("en", first_name="Witness")
    await harness.send(witness, "/help")  # the bot has handled everything before
    replies = harness.sandbox.bot_messages(harness.token, user.id)[before:]
    assert len(replies) == (1 if question is None else 2), [r.text for r in replies]
    with use_language(lang):
        assert replies[0].text is not None and replies[0].text.startswith(forwarded_text())
    if question is not None:
        assert replies[1].text == question.text


# ---------------------------------------------------------------- unreadable updates

UNREADABLE = 3


def _unreadable(user: SandboxUser) -> list[Payload]:
    """Messages python-telegram-bot cannot parse (Update.de_json raises), each naming the
    person: a sender that is a string, a date that is text, a photo that is not a list."""
    chat = {"id": user.id, "type": "private", "first_name": user.first_name}
    base = {"message_id": 90, "date": 1_790_000_000, "chat": chat, "from": user.to_api()}
    return [
        base | {"from": f"{user.first_name} Kowalczyk", "text": "hello"},
        base | {"date": f"yesterday, {user.first_name}", "text": "hello"},
        base | {"photo": {"file_id": "x", "caption": user.first_name}},
    ]


def _leaks(records: list[logging.LogRecord], user: SandboxUser) -> list[str]:
    lines = [r.getMessage() + (str(r.exc_info) if r.exc_info else "") for r in records]
    return [line for line in lines if user.first_name in line or str(user.id) in line]


async def test_an_unreadable_update_is_skipped_by_polling_and_everyone_goes_on(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """UNREADABLE updates python-telegram-bot cannot parse are put in the sandbox's queue,
    each between other people's messages. Polling goes on: the others are answered, the
    unreadable updates are confirmed (getUpdates' offset moves past them: none is left
    pending), and each leaves exactly one WARNING line, naming its update_id and nothing of
    the person (no name, no chat id), and no CRITICAL line."""
    caplog.set_level(logging.INFO)
    mallory = harness.user("en", first_name="Malgorzata")
    await harness.send(mallory, "/help")
    ids = []
    for payload in _unreadable(mallory):
        update_id = harness.sandbox.push_update(harness.token, "message", payload)
        assert update_id is not None
        ids.append(update_id)
        witness = harness.user("en", first_name="Witness")
        (reply,) = await harness.send(witness, "/help")
        with use_language("en"):
            assert reply.text == help_text()
    assert all(u["update_id"] not in ids for u in harness.sandbox.pending_updates(harness.token))
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in warnings if r.levelno >= logging.CRITICAL]
    for update_id in ids:
        assert [r for r in warnings if str(update_id) in r.getMessage()], update_id
    assert len(warnings) == UNREADABLE, [r.getMessage() for r in warnings]
    assert not _leaks(caplog.records, mallory)
    (reply,) = await harness.send(mallory, "/help")  # the person is heard again
    with use_language("en"):
        assert reply.text == help_text()


def _admin(user_id: int) -> Payload:
    rights = [
        "can_manage_chat",
        "can_delete_messages",
        "can_manage_video_chats",
        "can_restrict_members",
        "can_promote_members",
        "can_change_info",
        "can_invite_users",
        "can_post_stories",
        "can_edit_stories",
        "can_delete_stories",
        "can_pin_messages",
        "can_manage_topics",
    ]
    member: Payload = {"status": "administrator", "can_be_edited": False, "is_anonymous": False}
    bot = {"id": user_id, "is_bot": True, "first_name": "GradTrack"}
    return member | dict.fromkeys(rights, True) | {"user": bot}


def not_handled(user: SandboxUser) -> dict[str, Payload]:
    """Valid updates of kinds gradtrack does not handle, by name."""
    group = {"id": -1_001_555_000_111, "type": "supergroup", "title": "Class of 2026"}
    bot = {"id": 1, "is_bot": True, "first_name": "GradTrack"}
    return {
        "the bot promoted to admin of a supergroup": {
            "my_chat_member": {
                "chat": group,
                "from": user.to_api(),
                "date": 1_790_000_000,
                "old_chat_member": {"status": "member", "user": bot},
                "new_chat_member": _admin(1),
            }
        },
        "a poll answer": {
            "poll_answer": {
                "poll_id": "5843",
                "user": user.to_api(),
                "option_ids": [1],
                "option_persistent_ids": ["b7"],
            }
        },
        "a join request": {
            "chat_join_request": {
                "chat": group,
                "from": user.to_api(),
                "user_chat_id": user.id,
                "date": 1_790_000_000,
            }
        },
        "a field from a future Bot API": {"alumni_reunion": {"id": 3, "text": "hi"}},
    }


NOT_HANDLED = 4


async def test_the_webhook_answers_200_to_what_it_cannot_read_or_does_not_handle(
    harness: Harness, webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    """Behind the webhook, NOT_HANDLED valid updates the bot does not handle and the
    UNREADABLE updates are each answered 200, so that Telegram does not deliver them again
    and again; each unreadable one leaves one WARNING line without the person's name or
    chat id; everyone else is still answered."""
    caplog.set_level(logging.INFO)
    mallory = harness.user("en", first_name="Malgorzata")
    await harness.send(mallory, "/help")
    updates = not_handled(mallory)
    assert len(updates) == NOT_HANDLED
    bodies = [*updates.values(), *({"message": m} for m in _unreadable(mallory))]
    statuses = []
    for number, body in enumerate(bodies, start=900_000_000):
        statuses.append(await webhook.post({"update_id": number, **body}, webhook.secret))
    assert statuses == [200] * (NOT_HANDLED + UNREADABLE)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    unread = [r for r in warnings if "cannot read" in r.getMessage()]
    assert len(unread) == UNREADABLE
    assert not _leaks(caplog.records, mallory)
    witness = harness.user("en", first_name="Witness")
    (reply,) = await harness.send(witness, "/help")
    with use_language("en"):
        assert reply.text == help_text()


# ---------------------------------------------------------------- what Telegram refuses


def _form(form_id: str, survey: str, choices: str = "") -> str:
    """A questionnaire in English only (YAML), with `survey` and `choices` as given."""
    return (
        f'settings:\n  form_id: {form_id}\n  version: "1"\n  default_language: en\n'
        f"  languages: [en]\n  title: {{en: {form_id}}}\n"
        f"survey:\n{survey}" + (f"choices:\n{choices}" if choices else "")
    )


def _choices(name: str, count: int, label: str = "Choice") -> str:
    return f"  {name}:\n" + "".join(
        f"    - {{name: c{n}, label: {{en: {label} {n}}}}}\n" for n in range(count)
    )


def _select(name: str, list_name: str, kind: str = "select_one") -> str:
    return f"  - type: {kind} {list_name}\n    name: {name}\n    label: {{en: Pick}}\n"


def test_questionnaire_check_refuses_buttons_telegram_would_refuse(tmp_path: Path) -> None:
    """`gradtrack questionnaire check` refuses a question Telegram could never show: more
    choices than the chat pages through (501), button data over 64 bytes, a choice label
    over 100 characters, more columns than fit a row; it accepts the largest lists that fit
    (a list of more than 40 choices is shown a page at a time, issue 19)."""
    refused = {
        "501 choices": _form("a", _select("Q", "many"), _choices("many", 501)),
        "501 multiple": _form("b", _select("Q", "many", "select_multiple"), _choices("many", 501)),
        "data over 64 bytes": _form(
            "c",
            _select("Q" * 30, "long"),
            "  long:\n    - {name: " + "c" * 30 + ", label: {en: Long}}\n",
        ),
        "label too long": _form("d", _select("Q", "wide"), _choices("wide", 2, "x" * 101)),
        "9 columns": _form(
            "e", _select("Q", "many") + "    parameters: {columns: 9}\n", _choices("many", 9)
        ),
    }
    for name, text in refused.items():
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        path.write_text(text, encoding="utf-8")
        result = _cli("questionnaire", "check", str(path))
        assert result.returncode == 1, (name, result.stdout)
        assert f"{path}:" in result.stderr, (name, result.stderr)
    fits = {
        "500 choices": _form("f", _select("Q", "many"), _choices("many", 500)),
        "500 multiple": _form("g", _select("Q", "many", "select_multiple"), _choices("many", 500)),
    }
    for name, text in fits.items():
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        path.write_text(text, encoding="utf-8")
        result = _cli("questionnaire", "check", str(path))
        assert result.returncode == 0, (name, result.stderr)


async def _deploy(harness: Harness, tmp_path: Path, text: str, form_id: str) -> None:
    (tmp_path / f"{form_id}.yaml").write_text(text, encoding="utf-8")
    harness.questionnaires = QuestionnaireRegistry(tmp_path)
    harness.plans = parse_plans(
        f"default:\n  waves:\n    - {{name: w1, questionnaire: {form_id}, consent: survey, "
        "opens: 2m, closes: 4m}\n",
        questionnaires={form_id},
    )
    await harness.restart_bot()


def _rows(message: TranscriptEntry) -> list[list[dict[str, Any]]]:
    assert message.reply_markup is not None
    rows: list[list[dict[str, Any]]] = message.reply_markup["inline_keyboard"]
    return rows


async def test_a_scale_of_ten_fits_telegrams_rows(harness: Harness, tmp_path: Path) -> None:
    """A scale of 1 to 10 (the loader allows up to 10) is shown in rows Telegram accepts
    (at most 8 buttons a row: the sandbox answers 400 BUTTON_ROWS_INVALID like Telegram),
    and answering it works."""
    survey = (
        "  - type: scale\n    name: S\n    core: true\n    parameters: {min: 1, max: 10}\n"
        "    label: {en: 'How happy are you?'}\n"
    )
    await _deploy(harness, tmp_path, _form("tenscale", survey), "tenscale")
    graduate, user = await harness.consenting_graduate("en")
    await harness.open_survey(graduate, "tenscale")
    _welcome, question = await harness.send(user, "/survey", expect=2)
    assert [len(row) for row in _rows(question)] == [5, 5]
    (thanks,) = await harness.press(user, "10", message=question)
    assert thanks.text == "Thank you! Your answers have been saved."
    async with harness.db.session() as session:
        answers = (await session.exec(select(Answer.value))).all()
    assert answers == [10]


REFUSALS = [
    "Bad Request: BUTTON_DATA_INVALID",
    "Bad Request: BUTTONS_TOO_MUCH",
    "Bad Request: reply markup is too long",
    "Bad Request: message is too long",
    "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 9",
]


@pytest.mark.parametrize("refusal", REFUSALS)
async def test_a_question_telegram_refuses_is_told_once_and_not_resent(
    harness: Harness, refusal: str
) -> None:
    """Telegram answers 400 (`refusal`) to every message with buttons. A graduate (Italian)
    who asks for their question is told, in plain text and in Italian, that it cannot be
    shown, instead of silence; the question is not left pending, so the resender does not
    send it again and again (three rounds of it send nothing): a 400 is no network error.
    Once Telegram takes it again, /survey shows the question."""
    graduate, user = await harness.consenting_graduate("it")
    await harness.open_survey(graduate, "tracking")
    harness.sandbox.faults.add(
        "sendMessage",
        status=400,
        description=refusal,
        count=None,
        when=lambda params: "reply_markup" in params,
    )
    _welcome, told = await harness.send(user, "/survey", expect=2)
    with use_language("it"):
        assert told.text == refused_text()
    assert not told.buttons
    chat_id = graduate.chat_id
    assert chat_id is not None

    async def settled() -> bool:  # the handler has finished with the chat's state
        async with harness.db.session() as session:
            state = await session.get(ChatState, chat_id)
            return state is not None and not state.prompt_pending

    await eventually(settled)
    await harness.age_chat_state(chat_id)
    attempts = len(harness.sandbox.calls("sendMessage"))
    for _round in range(3):
        assert await resend_pending_prompts(harness.runtime) == 0
    assert len(harness.sandbox.calls("sendMessage")) == attempts
    harness.sandbox.faults.clear()
    _again, question = await harness.send(user, "/survey", expect=2)  # shown once it can be
    assert question.buttons


REVIEW_QUESTIONS = 120


async def test_the_review_of_a_long_questionnaire_is_paged(
    harness: Harness, tmp_path: Path
) -> None:
    """A questionnaire of REVIEW_QUESTIONS typed questions, each answered with 300
    characters: the review before sending comes in pages, each one message within
    Telegram's 4096 characters and 100 buttons; "More ▶" and "◀ Earlier" turn the pages in
    place; every answer appears on exactly one page with its change button; changing one
    from a later page works; the answers are sent."""
    survey = "".join(
        f"  - type: text\n    name: T{n}\n    label: {{en: 'Question number {n}: {'w' * 60}'}}\n"
        for n in range(REVIEW_QUESTIONS)
    )
    await _deploy(harness, tmp_path, _form("long", survey), "long")
    graduate, user = await harness.consenting_graduate("en")
    response = await harness.open_survey(graduate, "long")
    assert response.id is not None
    async with harness.db.session() as session:
        for n in range(REVIEW_QUESTIONS):
            session.add(Answer(response_id=response.id, question=f"T{n}", value="é" * 300))
        stored = await session.get(SurveyResponse, response.id)
        assert stored is not None
        stored.current = "__review__"
        session.add(stored)
    _welcome, review = await harness.send(user, "/survey", expect=2)
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        assert review.text is not None and utf16_len(review.text) <= 4096
        assert sum(len(row) for row in _rows(review)) <= 100
        assert all(len(row) <= 8 for row in _rows(review))
        seen += [b["text"] for b in review.buttons if b["text"].startswith("✏️")]
        if not any(b["text"] == "More ▶" for b in review.buttons):
            break
        await harness.press(user, "More ▶", expect=0, message=review)
        await harness.keyboard_shows(user, review, f"✏️ {len(seen) + 1}")
    assert pages > 1
    assert seen == [f"✏️ {n}" for n in range(1, REVIEW_QUESTIONS + 1)]
    await harness.press(user, "◀ Earlier", expect=0, message=review)
    await harness.keyboard_shows(user, review, "More ▶")
    number = len(seen) - 5  # on the last page but one
    (question,) = await harness.press(user, f"✏️ {number}", message=review)
    assert f"Question number {number - 1}:" in question.content
    (again,) = await harness.send(user, "changed")
    assert "changed" in again.content
    (thanks,) = await harness.press(user, "✅ Send my answers", message=again)
    assert thanks.text == "Thank you! Your answers have been saved."
