"""Malformed, forged and hostile updates, through the polling path and the webhook route, and
a chat that floods the bot: each is refused or answered clearly, nothing is stored that
should not be, and the bot goes on answering everyone else (both databases).

Figures for docs/reliability.md are the module constants: HOSTILE_UPDATES (per path),
FORGED_PRESSES and FLOOD."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from typing import Any

from sqlmodel import select

from bot.i18n import use_language
from bot.metrics import Metrics, metrics_of
from bot.sandbox.state import SandboxUser
from bot.throttle import (
    MAX_BATCH,
    THROTTLE_KEY,
    ChatThrottle,
    UpdatesRequest,
    raw_private_chat,
    slow_down_text,
)
from conversations.account import help_text
from storage.models import Answer, ChatState, Graduate, ProcessedUpdate, SurveyResponse
from tests.harness import Harness, Webhook, eventually, tr

Payload = dict[str, Any]


def _private_message(user: SandboxUser, text: Any, message_id: int = 1) -> Payload:
    return {
        "message_id": message_id,
        "date": 1_790_000_000,
        "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
        "from": user.to_api(),
        "text": text,
    }


def _command(text: str) -> list[Payload]:
    return [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]


def hostile_updates(user: SandboxUser, invite: str) -> dict[str, Payload]:
    """Updates a broken client, another chat type or an attacker could bring, by name. Each
    maps to the update's body (without update_id); `user` is their sender."""
    group = {"id": GROUP_ID, "type": "supergroup", "title": "Class of 2026"}
    start = f"/start {invite}"
    in_group = _private_message(user, start) | {"chat": group, "entities": _command(start)}
    channel_post = _private_message(user, "hello") | {
        "chat": {"id": -1_009_876, "type": "channel", "title": "News"}
    }
    channel_post.pop("from")
    no_sender = _private_message(user, "/help") | {"entities": _command("/help")}
    no_sender.pop("from")
    return {
        "/start with an invite in a group": {"message": in_group},
        "the bot added to a group": {
            "my_chat_member": {
                "chat": group,
                "from": user.to_api(),
                "date": 1_790_000_000,
                "old_chat_member": {"status": "left", "user": _bot_user()},
                "new_chat_member": {"status": "member", "user": _bot_user()},
            }
        },
        "a message without a sender": {"message": no_sender},
        "a channel post as a message": {"message": channel_post},
        "a text of 100,000 characters": {"message": _private_message(user, "x" * 100_000)},
        "a text that is a number": {"message": _private_message(user, 12345)},
        "a text that is a list": {"message": _private_message(user, ["a", "b"])},
        "NUL and control characters": {"message": _private_message(user, "\x00\x01\x1b[2J\u202e")},
        "a message with neither text nor media": {
            "message": {k: v for k, v in _private_message(user, "x").items() if k != "text"}
        },
        "a button press on an inline message": {
            "callback_query": {
                "id": "9001",
                "from": user.to_api(),
                "inline_message_id": "AAAAAQ",
                "chat_instance": "42",
                "data": "sv:1:C0:yes",
            }
        },
        "a button press without data": {
            "callback_query": {
                "id": "9002",
                "from": user.to_api(),
                "message": _private_message(user, "question", 2),
                "chat_instance": "42",
                "game_short_name": "snake",
            }
        },
        "an update type the bot did not ask for": {"edited_message": _private_message(user, "x")},
        "an update type from the future": {"business_holiday": {"anything": [1, {"x": None}]}},
    }


def _bot_user() -> Payload:
    return {"id": 1, "is_bot": True, "first_name": "GradTrack", "username": "gradtrack_test_bot"}


async def _still_answers(harness: Harness) -> None:
    """Another person's /help is answered: the process is up and handling updates."""
    witness = harness.user("en", first_name="Witness")
    (reply,) = await harness.send(witness, "/help")
    with use_language("en"):
        assert reply.text == help_text()


GROUP_ID = -1_001_234_567_890


def _sent_to_group(harness: Harness) -> list[Any]:
    """Bot API calls that would have said something in the group or channel."""
    return [
        c
        for c in harness.sandbox.calls()
        if c.method != "leaveChat" and str((c.params or {}).get("chat_id", "")).startswith("-")
    ]


async def _assert_nothing_linked(harness: Harness, graduate: Graduate) -> None:
    assert (await harness.reload(graduate)).chat_id is None
    async with harness.db.session() as session:
        chats = (await session.exec(select(ChatState.chat_id))).all()
    assert all(chat > 0 for chat in chats), chats  # no group or channel has a state


HOSTILE_UPDATES = 13


async def test_hostile_updates_by_polling_change_nothing_and_the_bot_goes_on(
    harness: Harness,
) -> None:
    """Each hostile update is put in the sandbox's queue as Telegram would deliver it to a
    polling bot. The bot sends nothing to groups or channels (it leaves a group it is added
    to), links no group to a graduate, answers a press on an inline message "no longer
    active", and keeps answering: after each update, another person's /help is answered."""
    school = await harness.school()
    graduate = await harness.graduate(school)
    user = harness.user("en", first_name="Mallory")
    await harness.send(user, "/help")  # the chat exists in the sandbox
    updates = hostile_updates(user, graduate.invite_token or "")
    assert len(updates) == HOSTILE_UPDATES
    for name, body in updates.items():
        ((kind, payload),) = body.items()
        update_id = harness.sandbox.push_update(harness.token, kind, payload)
        if update_id is not None:  # None: not among the updates the bot asked for

            def confirmed(update_id: int = update_id) -> bool:
                return all(u["update_id"] != update_id for u in harness.sandbox.pending_updates())

            await eventually(confirmed)
        await _still_answers(harness)
        assert not _sent_to_group(harness), name
    await _assert_nothing_linked(harness, graduate)
    assert harness.sandbox.calls("leaveChat"), "the bot stays in the group it was added to"


async def test_hostile_updates_through_the_webhook_are_answered_and_change_nothing(
    harness: Harness, webhook: Webhook
) -> None:
    """The same updates POSTed to the webhook route with the secret: each is answered 200
    (also those python-telegram-bot cannot read: Telegram would deliver them again on any
    other status; see bot.rawupdates), the process stays up and nothing is linked; a body
    over 1 MiB is refused with 413 before it is read."""
    school = await harness.school()
    graduate = await harness.graduate(school)
    user = harness.user("en", first_name="Mallory")
    await harness.send(user, "/help")
    statuses: dict[str, int] = {}
    for number, (name, body) in enumerate(
        hostile_updates(user, graduate.invite_token or "").items(), start=800_000_000
    ):
        statuses[name] = await webhook.post({"update_id": number, **body}, webhook.secret)
        await _still_answers(harness)
    assert set(statuses.values()) == {200}, statuses
    assert statuses["/start with an invite in a group"] == 200
    assert statuses["a text of 100,000 characters"] == 200
    huge = b'{"update_id": 1, "message": {"text": "' + b"x" * (1024 * 1024) + b'"}}'
    assert await webhook.post(huge, webhook.secret) == 413
    await _assert_nothing_linked(harness, graduate)
    assert not _sent_to_group(harness)


async def _survey_question(harness: Harness, lang: str) -> tuple[Graduate, SandboxUser, Any]:
    """A consenting graduate with the tracking questionnaire's first question on screen."""
    school = await harness.school(f"s{lang}")
    graduate, user = await harness.consenting_graduate(lang, school=school)
    await harness.open_survey(graduate, "tracking")
    await harness.send(user, "/survey", expect=2)
    return graduate, user, harness.last_keyboard_message(user)


async def _answers(harness: Harness, graduate: Graduate) -> dict[str, Any]:
    async with harness.db.session() as session:
        rows = (
            await session.exec(
                select(Answer)
                .join(SurveyResponse, Answer.response_id == SurveyResponse.id)  # type: ignore[arg-type]
                .where(SurveyResponse.graduate_id == graduate.id)
            )
        ).all()
    return {row.question: row.value for row in rows}


FORGED_PRESSES = 13


async def test_forged_button_data_is_refused_and_stores_nothing(harness: Harness) -> None:
    """A modified client can send any callback data (up to 64 bytes) from a message of its
    chat. Graduate B sends A's buttons (A's response), buttons of a question that is not
    open, of a question or choice that does not exist, of another questionnaire's
    response, and garbage in every button family of the bot. Each press is answered
    with one of the bot's clear answers in B's language ("no longer active", "already
    answered"), never the apology for an error, nothing is stored for A or B, and B's own
    real button still works afterwards."""
    a, _a_user, a_question = await _survey_question(harness, "en")
    b, b_user, b_question = await _survey_question(harness, "it")
    a_data = [button["callback_data"] for button in a_question.buttons]
    b_data = [button["callback_data"] for button in b_question.buttons]
    kind, b_response, question, _code = b_data[0].split(":", 3)
    a_response = a_data[0].split(":")[1]
    forged = [
        *a_data[:2],  # A's own buttons, pressed by B
        f"{kind}:{b_response}:E6:yes_completely",  # a question that is not open
        f"{kind}:{b_response}:NOPE:yes",  # a question that does not exist
        f"{kind}:{b_response}:{question}:not_an_option",  # a choice that does not exist
        f"ss:{b_response}",  # submit before the review
        f"sv:{a_response}:{question}:yes",  # A's response id with B's question
        "sv:zzzzzzzz:C0:yes",  # a response id that does not exist
        "sv:" + "9" * 60,
        "ob:lang:klingon",
        "lang:xx",
        "wv:²",  # a digit to str.isdigit(), not to int()
        "\u202e" * 21,  # 63 bytes of right-to-left overrides
    ]
    assert len(forged) == FORGED_PRESSES
    before_a, before_b = await _answers(harness, a), await _answers(harness, b)
    clear = {
        tr("it", text)
        for text in (
            "This button is no longer active.",
            "This question has already been answered.",
            "This questionnaire is already finished. Thank you!",
            "Please choose one of the buttons.",
        )
    }
    for data in forged:
        query = await harness.sandbox.press_button(
            harness.token, b_user.id, b_question.message_id or 0, data, forged=True
        )

        def answers(query: str = query) -> list[str]:
            return [
                str((c.params or {}).get("text", ""))
                for c in harness.sandbox.calls("answerCallbackQuery")
                if (c.params or {}).get("callback_query_id") == query
            ]

        await eventually(lambda: bool(answers()))
        assert set(answers()) <= clear, (data, answers())  # never the apology for an error
    assert await _answers(harness, a) == before_a
    assert await _answers(harness, b) == before_b
    await harness.press(b_user, tr("it", "Yes"), message=b_question)
    assert len(await _answers(harness, b)) == len(before_b) + 1


def test_a_token_bucket_per_chat() -> None:
    """Burst 5 at 1 per second: five updates go through at once, the sixth is dropped and
    the person told, the seventh dropped silently; two seconds later two more go through;
    once the bucket is half full again the next flood is told again. Other chats have their
    own bucket, and no more than max_chats buckets are kept."""
    now = [0.0]
    throttle = ChatThrottle(1.0, 5, max_chats=3, clock=lambda: now[0])
    assert [throttle.allow(1) for _ in range(7)] == [(True, False)] * 5 + [
        (False, True),
        (False, False),
    ]
    assert throttle.allow(2) == (True, False)
    now[0] = 2.0
    assert [throttle.allow(1)[0] for _ in range(3)] == [True, True, False]
    now[0] = 10.0
    assert [throttle.allow(1) for _ in range(5)] == [(True, False)] * 5
    assert throttle.allow(1) == (False, True)  # a new flood: told again
    for chat in (3, 4, 5):
        throttle.allow(chat)
    assert len(throttle) == 3 and throttle.dropped == 4
    assert ChatThrottle(0, 5).allow(1) == (True, False)  # 0: off


def _raw(update_id: int, chat_id: int, kind: str = "private", **extra: Any) -> dict[str, Any]:
    chat = {"id": chat_id, "type": kind}
    message = {"message_id": update_id, "date": 0, "chat": chat, "text": "hi", **extra}
    return {"update_id": update_id, "message": message}


def test_flood_control_judges_raw_updates_before_they_are_parsed() -> None:
    """A batch as the Bot API sends it, judged before python-telegram-bot parses it (burst 2,
    nothing refilled): a private chat's first two updates go on, the third too, held to tell
    the person, the rest are dropped unparsed; a group's update, a malformed one and a button
    press of another private chat go on (the gate and the handlers judge those); the batch's
    dropped last update leaves a bare stand-in, held silent, so that polling confirms the
    whole batch; behind a webhook (one update at a time) nothing stands in."""
    throttle = ChatThrottle(1.0, 2, clock=lambda: 0.0)
    press = {"id": "q", "data": "x", "message": _raw(0, 7)["message"]}
    batch = [
        _raw(1, 5),
        _raw(2, 5),
        _raw(3, 5),
        _raw(4, 5),
        _raw(5, -100, "group"),
        {"update_id": 6, "message": 5},
        {"update_id": 7, "callback_query": press},
        _raw(8, 5),
    ]
    kept = throttle.screen(batch, keep_offset=True)
    assert [u["update_id"] for u in kept] == [1, 2, 3, 5, 6, 7, 8]
    assert kept[-1] == {"update_id": 8}
    assert (throttle.dropped, throttle.unparsed) == (3, 2)
    assert [throttle.held(n) for n in (1, 3, 3, 8, 7)] == [None, True, None, False, None]
    assert throttle.screen([_raw(9, 5)], keep_offset=False) == []
    assert throttle.held(9) is None
    assert [raw_private_chat(u) for u in batch[4:7]] == [None, None, 7]
    off = ChatThrottle(0, 2)
    assert off.screen(batch, keep_offset=True) is batch


def test_polling_takes_a_flood_in_batches() -> None:
    """After a getUpdates batch from which flood control dropped updates, the next request
    waits a moment, so that a flood arrives in batches rather than an update per request;
    after a full batch (more are waiting) or a batch with nothing dropped, it does not."""
    throttle = ChatThrottle(1.0, 1, clock=lambda: 0.0)
    request = UpdatesRequest(Metrics(), connection_pool_size=1)
    request.screen = functools.partial(throttle.screen, keep_offset=True)

    def answer(updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        payload = json.dumps({"ok": True, "result": updates}).encode()
        result: list[dict[str, Any]] = request.parse_json_payload(payload)["result"]
        return result

    answer([_raw(1, 5), _raw(2, 5), _raw(3, 5)])
    assert request._pause_until > time.monotonic()
    assert len(answer([_raw(n, 5) for n in range(10, 10 + MAX_BATCH)])) == 1  # a stand-in
    assert request._pause_until == 0.0
    answer([_raw(200, 6)])
    assert request._pause_until == 0.0


FLOOD = 300


async def test_a_flooding_chat_is_throttled_and_others_go_on(harness: Harness) -> None:
    """With flood control as shipped (3 per second, bursts of 20), one chat sends FLOOD
    messages as fast as it can while another graduate goes through onboarding. The flooder
    gets at most the burst and what the bucket refilled meanwhile answered, and one notice,
    in their language (Italian), to slow down; the dropped updates never reach a handler
    (the metrics count them, and no update of theirs beyond those answered is recorded as
    processed); the other graduate gets every answer; a few seconds later the flooder is
    answered again."""
    assert harness.app is not None
    throttle = ChatThrottle(3.0, 20)
    harness.app.bot_data[THROTTLE_KEY] = throttle
    flooder = harness.user("it", first_name="Flood")
    school = await harness.school()
    graduate = await harness.graduate(school)
    other = harness.user("en")

    loop = asyncio.get_running_loop()
    started = loop.time()
    flood = asyncio.gather(
        *(harness.sandbox.send_text(harness.token, flooder.id, f"/help {i}") for i in range(FLOOD))
    )
    await harness.send(other, f"/start {graduate.invite_token}")
    await harness.press(other, "English", expect=2)
    await harness.press(other, "Yes")
    await flood
    elapsed = loop.time() - started

    def flooder_texts() -> list[str]:
        return [m.text or "" for m in harness.sandbox.bot_messages(harness.token, flooder.id)]

    await eventually(lambda: throttle.dropped + len(flooder_texts()) - 1 >= FLOOD)
    with use_language("it"):
        notice, answer = slow_down_text(), help_text()
    texts = flooder_texts()
    answered = texts.count(answer)
    assert texts.count(notice) == 1
    assert 20 <= answered <= 20 + 3 * elapsed + 1, (answered, elapsed)
    assert answered + throttle.dropped == FLOOD
    assert metrics_of(harness.app).updates_throttled._value.get() == throttle.dropped
    # Dropped before parsing, but for the notice and a stand-in per getUpdates batch.
    batches = harness.sandbox.ok_calls["getupdates"]
    assert throttle.dropped - batches - 1 <= throttle.unparsed < throttle.dropped
    async with harness.db.session() as session:
        processed = len((await session.exec(select(ProcessedUpdate))).all())
    assert processed < FLOOD  # the dropped ones were never handled
    assert (await harness.reload(graduate)).consent_survey is True  # the other one went on

    throttle.clock = lambda: loop.time() + 10  # ten seconds later
    (again,) = await harness.send(flooder, "/help")
    assert again.text == answer


async def test_a_flood_through_the_webhook_is_dropped_before_it_is_parsed(
    harness: Harness, webhook: Webhook
) -> None:
    """Behind the webhook, flood control (3 per second, bursts of 5) drops a flooding chat's
    updates on arrival: the route answers 200 at once (Telegram must not deliver them again),
    no handler sees them, and the flooder gets the burst answered and one notice to slow
    down, in their language (Spanish); another person is answered meanwhile."""
    assert harness.app is not None
    throttle = ChatThrottle(3.0, 5)
    harness.app.bot_data[THROTTLE_KEY] = throttle
    flooder, other = harness.user("es", first_name="Flood"), harness.user("en")
    count = 60
    await asyncio.gather(
        *(harness.sandbox.send_text(harness.token, flooder.id, f"/help {i}") for i in range(count))
    )
    (answer,) = await harness.send(other, "/help")
    with use_language("en"):
        assert answer.text == help_text()

    def flooder_texts() -> list[str]:
        return [m.text or "" for m in harness.sandbox.bot_messages(harness.token, flooder.id)]

    await eventually(lambda: throttle.dropped + len(flooder_texts()) - 1 >= count)
    with use_language("es"):
        notice, answered = slow_down_text(), help_text()
    texts = flooder_texts()
    assert texts.count(notice) == 1
    assert texts.count(answered) + throttle.dropped == count
    assert throttle.unparsed == throttle.dropped - 1  # all but the one that brought the notice
    await eventually(lambda: not harness.sandbox.bot(harness.token).updates)  # all answered
