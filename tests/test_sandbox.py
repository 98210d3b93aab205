"""The sandbox Bot API server, exercised over real loopback HTTP.

python-telegram-bot's own `Bot` (and, once, a whole `Application`) talks to the sandbox,
so these tests show that PTB sees Telegram's behaviour: results, errors, limits, updates.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import struct
import sys
import time
import warnings
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from bot.sandbox import RateLimits, SandboxError, SandboxNotFound, SandboxServer, SandboxTimeout
from bot.sandbox.formatting import ParseError, format_text, parse_html, parse_markdown_v2

# PTB itself warns, when it raises RetryAfter, that retry_after will become a timedelta.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*retry_after.*:telegram.warnings.PTBDeprecationWarning"
)

# --------------------------------------------------------------------------- fixtures


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    server = SandboxServer(rate_limits=RateLimits(enabled=False), webhook_retry_delay=0.05)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def token(sandbox: SandboxServer) -> str:
    return sandbox.create_bot(username="gradtrack_bot", first_name="GradTrack")


def make_bot(sandbox: SandboxServer, token: str, **request_kwargs: Any) -> Bot:
    request = HTTPXRequest(**request_kwargs) if request_kwargs else None
    return Bot(
        token,
        base_url=f"{sandbox.url}/bot",
        base_file_url=f"{sandbox.url}/file/bot",
        request=request,
    )


@pytest.fixture
async def tg(sandbox: SandboxServer, token: str) -> AsyncIterator[Bot]:
    bot = make_bot(sandbox, token)
    async with bot:
        yield bot


@pytest.fixture
async def user_id(sandbox: SandboxServer, token: str) -> int:
    """A user who has started the bot."""
    user = sandbox.create_user(token, first_name="Ana", language_code="es")
    await sandbox.send_start(token, user.id)
    return user.id


async def raw_call(
    sandbox: SandboxServer, token: str, method: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sandbox.url}/bot{token}/{method}", **kwargs) as response,
    ):
        return response.status, await response.json()


def retry_seconds(error: RetryAfter) -> float:
    """RetryAfter.retry_after in seconds (PTB 22 warns that it will become a timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


def tiny_png(width: int = 2, height: int = 1) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )


KEYBOARD = InlineKeyboardMarkup(
    [
        [InlineKeyboardButton("Español", callback_data="lang:es")],
        [InlineKeyboardButton("Web", url="https://example.org")],
    ]
)

# --------------------------------------------------------------------------- basics


async def test_send_message_round_trip(
    sandbox: SandboxServer, tg: Bot, token: str, user_id: int
) -> None:
    message = await tg.send_message(
        user_id, "<b>Hola</b> Ana &amp; co", parse_mode="HTML", reply_markup=KEYBOARD
    )
    assert message.text == "Hola Ana & co"
    assert message.entities == (MessageEntity(MessageEntity.BOLD, 0, 4),)
    assert message.from_user is not None and message.from_user.is_bot
    assert message.from_user.username == "gradtrack_bot"
    assert message.chat.id == user_id and message.chat.type == "private"
    assert message.reply_markup == KEYBOARD
    assert message.message_id == 2  # the user's /start was 1

    entry = sandbox.transcript(token, user_id)[-1]
    assert (entry.sender, entry.kind, entry.text) == ("bot", "message", "Hola Ana & co")
    assert entry.callback_datas == ["lang:es"]
    assert [c.method for c in sandbox.calls("sendMessage")] == ["sendMessage"]
    assert (sandbox.calls("sendMessage")[0].params or {})["chat_id"] == user_id


async def test_get_me_methods_are_case_insensitive_and_unknown_is_404(
    sandbox: SandboxServer, tg: Bot, token: str
) -> None:
    me = await tg.get_me()
    assert me.is_bot and me.username == "gradtrack_bot" and me.first_name == "GradTrack"
    status, body = await raw_call(sandbox, token, "GETME")
    assert status == 200 and body["result"]["id"] == me.id
    status, body = await raw_call(sandbox, token, "sendMessages")
    assert status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_bad_tokens_are_unauthorized(sandbox: SandboxServer, token: str) -> None:
    wrong = token.split(":")[0] + ":" + "x" * 35
    with pytest.raises(InvalidToken):
        await make_bot(sandbox, wrong).get_me()
    status, body = await raw_call(sandbox, "not-a-token", "getMe")
    assert status == 401
    assert body == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_parameters_by_query_json_and_form(
    sandbox: SandboxServer, token: str, user_id: int
) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{sandbox.url}/bot{token}/sendMessage"
        async with session.get(url, params={"chat_id": user_id, "text": "by query"}) as r:
            assert (await r.json())["result"]["text"] == "by query"
        markup = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
        payload = {"chat_id": user_id, "text": "by json", "reply_markup": markup}
        async with session.post(url, json=payload) as r:
            assert (await r.json())["result"]["reply_markup"] == markup
        form = {"chat_id": str(user_id), "text": "by form", "reply_markup": json.dumps(markup)}
        async with session.post(url, data=form) as r:
            assert (await r.json())["result"]["reply_markup"] == markup


# --------------------------------------------------------------------------- validation


async def test_text_limits(tg: Bot, user_id: int) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await tg.send_message(user_id, "")
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await tg.send_message(user_id, "<b> </b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await tg.send_message(user_id, "x" * 4097)
    assert (await tg.send_message(user_id, "x" * 4096)).text == "x" * 4096
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await tg.send_document(user_id, b"data", filename="a.txt", caption="c" * 1025)


async def test_html_must_be_well_formed(tg: Bot, user_id: int) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities: Can't find end tag"):
        await tg.send_message(user_id, "<b>bold", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r'(?i)Unsupported start tag "br"'):
        await tg.send_message(user_id, "a<br>b", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)reserved and must be escaped"):
        await tg.send_message(user_id, "Done.", parse_mode="MarkdownV2")
    message = await tg.send_message(user_id, "*Done*\\.", parse_mode="MarkdownV2")
    assert message.text == "Done." and message.entities[0].type == "bold"


async def test_callback_data_is_at_most_64_bytes(tg: Bot, user_id: int) -> None:
    ok = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="é" * 32)]])
    await tg.send_message(user_id, "64 bytes", reply_markup=ok)
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("no", callback_data="x" * 65)]])
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await tg.send_message(user_id, "65 bytes", reply_markup=too_long)


async def test_inline_keyboard_shape(sandbox: SandboxServer, token: str, user_id: int) -> None:
    row = [{"text": str(i), "callback_data": str(i)} for i in range(9)]
    status, body = await raw_call(
        sandbox,
        token,
        "sendMessage",
        json={"chat_id": user_id, "text": "t", "reply_markup": {"inline_keyboard": [row]}},
    )
    assert status == 400 and body["description"] == "Bad Request: BUTTON_ROWS_INVALID"
    plain = {"inline_keyboard": [[{"text": "no action"}]]}
    status, body = await raw_call(
        sandbox, token, "sendMessage", json={"chat_id": user_id, "text": "t", "reply_markup": plain}
    )
    assert status == 400 and "Text buttons are unallowed" in body["description"]


async def test_an_inline_keyboard_has_at_most_100_buttons(tg: Bot, user_id: int) -> None:
    """Telegram's limit on one message's inline keyboard, in sendMessage and in edits."""

    def keyboard(count: int) -> InlineKeyboardMarkup:
        buttons = [InlineKeyboardButton(str(n), callback_data=str(n)) for n in range(count)]
        return InlineKeyboardMarkup([buttons[i : i + 5] for i in range(0, count, 5)])

    message = await tg.send_message(user_id, "100", reply_markup=keyboard(100))
    with pytest.raises(BadRequest, match=r"(?i)BUTTONS_TOO_MUCH"):
        await tg.send_message(user_id, "101", reply_markup=keyboard(101))
    with pytest.raises(BadRequest, match=r"(?i)BUTTONS_TOO_MUCH"):
        await tg.edit_message_reply_markup(user_id, message.message_id, reply_markup=keyboard(101))


async def test_unknown_parameter_is_rejected(
    sandbox: SandboxServer, token: str, user_id: int
) -> None:
    status, body = await raw_call(
        sandbox, token, "sendMessage", data={"chat_id": str(user_id), "text": "hi", "foo": "1"}
    )
    assert status == 400
    assert body == {
        "ok": False,
        "error_code": 400,
        "description": 'Bad Request: unknown parameter "foo"',
    }


async def test_wrong_types_are_rejected(
    sandbox: SandboxServer, tg: Bot, token: str, user_id: int
) -> None:
    message = await tg.send_message(user_id, "hello")
    with pytest.raises(BadRequest, match=r'(?i)field "message_id" must be of type Integer'):
        await tg.edit_message_text("new", chat_id=user_id, message_id="abc")  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match=r"(?i)can't parse reply keyboard markup JSON object"):
        await tg.send_message(user_id, "x", reply_markup="[1, 2")  # type: ignore[arg-type]
    status, body = await raw_call(
        sandbox,
        token,
        "sendMessage",
        data={"chat_id": str(user_id), "text": "x", "disable_notification": "maybe"},
    )
    assert (status, body["description"]) == (
        400,
        'Bad Request: field "disable_notification" must be of type Boolean',
    )
    nested = {"inline_keyboard": [[{"text": "A", "callback_data": {"no": 1}}]]}
    status, body = await raw_call(
        sandbox,
        token,
        "sendMessage",
        json={"chat_id": user_id, "text": "x", "reply_markup": nested},
    )
    assert status == 400
    assert body["description"] == (
        'Bad Request: field "reply_markup.inline_keyboard[0][0].callback_data" '
        "must be of type String"
    )
    status, body = await raw_call(sandbox, token, "sendMessage", json={"text": "x"})
    assert (status, body["description"]) == (400, "Bad Request: chat_id is empty")
    assert message.message_id  # the valid call went through


async def test_message_not_modified_and_not_found(
    sandbox: SandboxServer, tg: Bot, token: str, user_id: int
) -> None:
    message = await tg.send_message(user_id, "Pick one", reply_markup=KEYBOARD)
    with pytest.raises(BadRequest, match=r"(?i)message is not modified: specified new message"):
        await tg.edit_message_text("Pick one", user_id, message.message_id, reply_markup=KEYBOARD)
    edited = await tg.edit_message_text("Picked", user_id, message.message_id)
    assert isinstance(edited, object) and edited.text == "Picked"  # type: ignore[union-attr]
    entry = sandbox.bot_messages(token, user_id)[-1]
    assert entry.edited and entry.reply_markup is None  # no reply_markup: keyboard removed
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await tg.edit_message_reply_markup(user_id, message.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await tg.edit_message_text("x", user_id, 999)
    assert await tg.delete_message(user_id, message.message_id)
    assert sandbox.transcript(token, user_id)[-1].deleted
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await tg.delete_message(user_id, message.message_id)


# --------------------------------------------------------------------------- chats and users


async def test_chat_must_be_started(sandbox: SandboxServer, tg: Bot, token: str) -> None:
    user = sandbox.create_user(token, first_name="Luis")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await tg.send_message(user.id, "hello")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await tg.send_message(424242, "hello")
    await sandbox.send_start(token, user.id, "campaign-7")
    assert (await tg.send_message(user.id, "hello")).chat.id == user.id
    assert sandbox.transcript(token, user.id)[0].text == "/start campaign-7"


async def test_blocked_and_deactivated_users_are_forbidden(
    sandbox: SandboxServer, tg: Bot, token: str, user_id: int
) -> None:
    sandbox.block(token, user_id)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await tg.send_message(user_id, "still there?")
    sandbox.unblock(token, user_id)
    await tg.send_message(user_id, "welcome back")

    updates = await tg.get_updates()
    members = [u.my_chat_member for u in updates if u.my_chat_member]
    assert [(m.old_chat_member.status, m.new_chat_member.status) for m in members] == [
        ("member", "kicked"),
        ("kicked", "member"),
    ]
    assert members[0].chat.id == user_id and members[0].from_user.id == user_id

    sandbox.deactivate_user(user_id)
    with pytest.raises(Forbidden, match=r"(?i)user is deactivated"):
        await tg.send_message(user_id, "hello?")
    with pytest.raises(SandboxError):
        await sandbox.send_text(token, user_id, "I am gone")


async def test_press_button_refuses_missing_buttons(
    sandbox: SandboxServer, tg: Bot, token: str, user_id: int
) -> None:
    message = await tg.send_message(user_id, "Pick", reply_markup=KEYBOARD)
    with pytest.raises(SandboxError, match="no inline button 'lang:xx'"):
        await sandbox.press_button(token, user_id, message.message_id, "lang:xx")
    with pytest.raises(SandboxError, match="not in the chat"):
        await sandbox.press_button(token, user_id, 999, "lang:es")
    assert await sandbox.press_button(token, user_id, message.message_id, text="Español")


# --------------------------------------------------------------------------- updates


async def test_long_polling_delivers_text_and_button_presses(
    sandbox: SandboxServer, tg: Bot, token: str
) -> None:
    user = sandbox.create_user(token, first_name="Ana", last_name="Ruiz", language_code="es")

    poll = asyncio.create_task(tg.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await sandbox.send_start(token, user.id, "abc")
    updates = await poll
    assert time.monotonic() - started < 2
    assert len(updates) == 1 and isinstance(updates[0], Update)
    message = updates[0].message
    assert message is not None and message.text == "/start abc"
    assert message.entities == (MessageEntity(MessageEntity.BOT_COMMAND, 0, 6),)
    assert message.from_user is not None and message.from_user.language_code == "es"
    assert message.from_user.last_name == "Ruiz" and message.chat.id == user.id

    sent = await tg.send_message(user.id, "Idioma?", reply_markup=KEYBOARD)
    await sandbox.press_button(token, user.id, sent.message_id, "lang:es")
    updates = await tg.get_updates(offset=updates[-1].update_id + 1, timeout=5)
    query = updates[0].callback_query
    assert query is not None and query.data == "lang:es"
    assert isinstance(query.message, Message) and query.message.message_id == sent.message_id
    assert query.message.reply_markup == KEYBOARD and query.chat_instance
    assert await query.answer("Guardado", show_alert=True)
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await query.answer("again")
    answer = sandbox.transcript(token, user.id)[-1]
    assert (answer.kind, answer.text, answer.show_alert) == ("callback_answer", "Guardado", True)

    assert await tg.get_updates(offset=updates[-1].update_id + 1) == ()


async def test_redelivery_sends_the_same_update_again(
    sandbox: SandboxServer, tg: Bot, token: str
) -> None:
    user = sandbox.create_user(token, first_name="Ana")
    await sandbox.send_text(token, user.id, "40")
    (first,) = await tg.get_updates(timeout=5)
    assert await tg.get_updates(offset=first.update_id + 1) == ()
    sandbox.redeliver(token, first.update_id)
    (again,) = await tg.get_updates(offset=first.update_id + 1, timeout=5)
    assert again.update_id == first.update_id and again.message == first.message
    assert await tg.get_updates(offset=first.update_id + 1) == ()
    with pytest.raises(SandboxNotFound):
        sandbox.redeliver(token, 12345)


async def test_allowed_updates_filter(sandbox: SandboxServer, tg: Bot, token: str) -> None:
    user = sandbox.create_user(token, first_name="Eva")
    assert await tg.get_updates(allowed_updates=["message"]) == ()
    await sandbox.send_start(token, user.id)
    sent = await tg.send_message(user.id, "Pick", reply_markup=KEYBOARD)
    await sandbox.press_button(token, user.id, sent.message_id, "lang:es")
    updates = await tg.get_updates()
    assert [u.message.text for u in updates if u.message] == ["/start"]
    assert not any(u.callback_query for u in updates)


async def test_second_poller_terminates_first(tg: Bot, sandbox: SandboxServer, token: str) -> None:
    other = make_bot(sandbox, token)
    async with other:
        first = asyncio.create_task(tg.get_updates(timeout=5))
        await asyncio.sleep(0.1)
        second = asyncio.create_task(other.get_updates(timeout=0))
        with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates request"):
            await first
        assert await second == ()


async def test_get_updates_conflicts_with_webhook(
    sandbox: SandboxServer, tg: Bot, user_id: int
) -> None:
    assert await tg.set_webhook("http://127.0.0.1:9/hook")
    with pytest.raises(Conflict, match=r"(?i)can't use getUpdates method while webhook is active"):
        await tg.get_updates()
    info = await tg.get_webhook_info()
    assert info.url == "http://127.0.0.1:9/hook" and info.pending_update_count == 1
    assert await tg.delete_webhook()
    assert len(await tg.get_updates()) == 1
    with pytest.raises(BadRequest, match=r"(?i)loopback"):
        await tg.set_webhook("https://example.org/hook")


async def test_webhook_delivery_in_order_with_secret_and_retries(
    sandbox: SandboxServer, tg: Bot, token: str, user_id: int
) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    attempts = 0
    all_received = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        nonlocal attempts
        attempts += 1
        if attempts == 2:  # the first text fails once and must be retried before the rest
            return web.Response(status=500)
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token")
        received.append((secret, await request.json()))
        if len(received) == 4:
            all_received.set()
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await tg.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cr3t_token")
        for text in ("one", "two", "three"):
            await sandbox.send_text(token, user_id, text)
        await asyncio.wait_for(all_received.wait(), 5)
        texts = [body["message"]["text"] for _, body in received]
        assert texts == ["/start", "one", "two", "three"]
        assert {secret for secret, _ in received} == {"s3cr3t_token"}
        assert attempts == 5
        update = Update.de_json(received[1][1], tg)
        assert update.message is not None and update.message.text == "one"
        info = await tg.get_webhook_info()
        assert info.pending_update_count == 0
        assert info.last_error_message and "500" in info.last_error_message
    finally:
        await tg.delete_webhook()
        await runner.cleanup()


@pytest.mark.parametrize("connections", [40, 1])
async def test_webhook_calls_run_side_by_side_one_chat_at_a_time(
    sandbox: SandboxServer, tg: Bot, token: str, connections: int
) -> None:
    """Like Telegram, the sandbox keeps up to max_connections webhook calls open: while the
    webhook holds a call of one chat, another chat's update is delivered, but the held chat's
    next update waits for its call to be answered (its order kept). With max_connections=1
    everything waits for the held call; then the chats take turns, so the other chat's update
    goes before the held chat's next one."""
    slow, quick = sandbox.create_user(token, first_name="Slow"), sandbox.create_user(token)
    received: list[str] = []
    release = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        text = body["message"]["text"]
        received.append(text)
        if text == "slow 1":
            await release.wait()
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        await tg.set_webhook(url, max_connections=connections)
        for user, text in ((slow, "slow 1"), (slow, "slow 2"), (quick, "quick")):
            await sandbox.send_text(token, user.id, text)
        await asyncio.sleep(0.5)
        if connections > 1:
            assert received == ["slow 1", "quick"]
        else:
            assert received == ["slow 1"]
        release.set()
        for _ in range(250):
            if not (await tg.get_webhook_info()).pending_update_count:
                break
            await asyncio.sleep(0.02)
        assert received == ["slow 1", "quick", "slow 2"]
        assert (await tg.get_webhook_info()).pending_update_count == 0
    finally:
        await tg.delete_webhook()
        await runner.cleanup()


# --------------------------------------------------------------------------- rate limits


async def test_per_chat_rate_limit(sandbox: SandboxServer, tg: Bot, user_id: int) -> None:
    sandbox.rate_limits = RateLimits(
        per_chat_per_second=1, per_chat_burst=2, global_per_second=1000, global_burst=1000
    )
    # One token a second: a slow, shared machine does not refill one between the calls.
    await tg.send_message(user_id, "1")
    await tg.send_message(user_id, "2")
    with pytest.raises(RetryAfter) as caught:
        await tg.send_message(user_id, "3")
    assert retry_seconds(caught.value) == 1
    assert sandbox.calls("sendMessage")[-1].status == 429
    await asyncio.sleep(1.0)
    assert (await tg.send_message(user_id, "3")).text == "3"


async def test_global_rate_limit(sandbox: SandboxServer, tg: Bot, token: str) -> None:
    users = [sandbox.create_user(token, first_name=f"U{i}") for i in range(4)]
    for user in users:
        await sandbox.send_start(token, user.id)
    sandbox.rate_limits = RateLimits(
        per_chat_per_second=100, per_chat_burst=10, global_per_second=1, global_burst=3
    )
    for user in users[:3]:
        await tg.send_message(user.id, "news")
    with pytest.raises(RetryAfter) as caught:
        await tg.send_message(users[3].id, "news")
    assert retry_seconds(caught.value) >= 1
    await asyncio.sleep(1.0)
    await tg.send_message(users[3].id, "news")


async def test_retry_after_rounds_up_the_real_wait(
    sandbox: SandboxServer, tg: Bot, user_id: int
) -> None:
    sandbox.rate_limits = RateLimits(per_chat_per_second=0.4, per_chat_burst=1)
    await tg.send_message(user_id, "1")
    with pytest.raises(RetryAfter) as caught:
        await tg.send_message(user_id, "2")
    assert retry_seconds(caught.value) == 3  # 1 / 0.4 = 2.5 s


# --------------------------------------------------------------------------- files


async def test_send_document_and_read_it_back(
    sandbox: SandboxServer, tg: Bot, token: str, user_id: int
) -> None:
    content = b"name,year\nAna,2025\n"
    message = await tg.send_document(
        user_id, content, filename="graduates.csv", caption="<i>Export</i>", parse_mode="HTML"
    )
    document = message.document
    assert document is not None and document.file_name == "graduates.csv"
    assert document.file_size == len(content) and message.caption == "Export"
    assert sandbox.file_bytes(token, document.file_id) == content

    file = await tg.get_file(document.file_id)
    assert file.file_path and file.file_path.endswith(".csv")
    assert bytes(await file.download_as_bytearray()) == content

    again = await tg.send_document(user_id, document.file_id)
    assert again.document is not None and again.document.file_id == document.file_id
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
        await tg.send_document(user_id, "no-such-file-id")
    entry = sandbox.bot_messages(token, user_id)[-2]
    assert entry.document is not None and entry.caption == "Export"


async def test_send_photo(sandbox: SandboxServer, tg: Bot, token: str, user_id: int) -> None:
    png = tiny_png(3, 2)
    message = await tg.send_photo(user_id, png, caption="logo")
    assert message.photo[-1].width == 3 and message.photo[-1].height == 2
    assert sandbox.file_bytes(token, message.photo[-1].file_id) == png
    with pytest.raises(BadRequest, match=r"(?i)IMAGE_PROCESS_FAILED"):
        await tg.send_photo(user_id, b"not an image")


# --------------------------------------------------------------------------- faults


async def test_fault_injection(sandbox: SandboxServer, tg: Bot, user_id: int) -> None:
    sandbox.faults.add("sendMessage", status=502, count=2)
    for _ in range(2):
        with pytest.raises(NetworkError, match=r"(?i)Bad Gateway"):
            await tg.send_message(user_id, "hi")
    assert (await tg.send_message(user_id, "hi")).text == "hi"
    assert len(sandbox.faults) == 0

    sandbox.faults.add("sendMessage", status=500, process=True)
    with pytest.raises(NetworkError, match=r"(?i)Internal Server Error"):
        await tg.send_message(user_id, "delivered anyway")
    assert sandbox.bot_messages(None, user_id)[-1].text == "delivered anyway"


async def test_hanging_call_times_out(sandbox: SandboxServer, token: str) -> None:
    sandbox.faults.hang("getMe", seconds=30)
    bot = make_bot(sandbox, token, read_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(TimedOut):
        await bot.get_me()
    assert time.monotonic() - started < 3
    assert (await bot.get_me()).is_bot
    await bot.shutdown()


# --------------------------------------------------------------------------- a whole bot


async def test_application_conversation_with_wait_helpers(
    sandbox: SandboxServer, token: str
) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        payload = " ".join(context.args or []) or "-"
        await update.effective_message.reply_text(f"Hi! payload={payload}", reply_markup=KEYBOARD)

    async def choose(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("Saved")
        await query.edit_message_text(f"Language: {query.data}")
        await context.bot.send_message(query.from_user.id, "Next question")

    app = (
        Application.builder()
        .token(token)
        .base_url(f"{sandbox.url}/bot")
        .base_file_url(f"{sandbox.url}/file/bot")
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(choose))
    user = sandbox.create_user(token, first_name="Ana", language_code="es")
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            await sandbox.send_start(token, user.id, "grad-2025")
            [hello] = await sandbox.wait_for_bot_messages(token, user.id, count=1, timeout=5)
            assert hello.text == "Hi! payload=grad-2025"
            assert hello.callback_datas == ["lang:es"]

            await sandbox.press_button(token, user.id, hello, "lang:es")
            changes = await sandbox.wait_for(token, user.id, 2, timeout=5)
            assert [c.content for c in changes] == ["Language: lang:es", "Next question"]
            assert changes[0] is hello and hello.edited and hello.reply_markup is None
            await sandbox.wait_until(
                token, user.id, lambda t: any(e.kind == "callback_answer" for e in t), timeout=5
            )
            kinds = [(e.sender, e.kind) for e in sandbox.transcript(token, user.id)]
            assert kinds == [
                ("user", "message"),
                ("bot", "message"),
                ("user", "button_press"),
                ("bot", "callback_answer"),
                ("bot", "message"),
            ]
            with pytest.raises(SandboxTimeout):
                await sandbox.wait_for_bot_messages(token, user.id, timeout=0.2)
        finally:
            await app.updater.stop()
            await app.stop()


# --------------------------------------------------------------------------- HTTP user API


async def test_user_http_api_and_chat_page(sandbox: SandboxServer, tg: Bot, token: str) -> None:
    api = f"{sandbox.url}/sandbox/api"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api}/bots") as r:
            assert (await r.json())["result"] == [
                {
                    "id": int(token.split(":")[0]),
                    "username": "gradtrack_bot",
                    "first_name": "GradTrack",
                }
            ]
        async with http.post(
            f"{api}/users", json={"first_name": "Bea", "language_code": "pt-br"}
        ) as r:
            user = (await r.json())["result"]
        chat = f"{api}/chats/gradtrack_bot/{user['id']}"
        async with http.post(f"{chat}/messages", json={"start": "xyz"}) as r:
            assert (await r.json())["result"]["text"] == "/start xyz"
        sent = await tg.send_message(
            user["id"], "<b>Olá</b>", parse_mode="HTML", reply_markup=KEYBOARD
        )

        async with http.get(chat, params={"since": "0", "wait": "1"}) as r:
            transcript = (await r.json())["result"]
        assert transcript["started"] and not transcript["blocked"]
        assert [e["text"] for e in transcript["entries"]] == ["/start xyz", "Olá"]
        assert transcript["entries"][1]["entities"] == [{"type": "bold", "offset": 0, "length": 3}]

        waiter = asyncio.create_task(
            http.get(chat, params={"since": str(transcript["revision"]), "wait": "5"})
        )
        await asyncio.sleep(0.1)
        async with http.post(
            f"{chat}/press", json={"message_id": sent.message_id, "callback_data": "lang:es"}
        ) as r:
            assert (await r.json())["result"]["callback_query_id"]
        async with await waiter as r:
            latest = (await r.json())["result"]
        assert latest["entries"][-1]["kind"] == "button_press"
        async with http.post(
            f"{chat}/press", json={"message_id": sent.message_id, "callback_data": "nope"}
        ) as r:
            assert r.status == 400 and "no inline button" in (await r.json())["error"]
        async with http.post(f"{chat}/block") as r:
            assert r.status == 200
        with pytest.raises(Forbidden):
            await tg.send_message(user["id"], "hello")

        async with http.get(f"{sandbox.url}/chat?start=abc") as r:
            assert r.status == 200 and r.content_type == "text/html"
            page = await r.text()
    assert "<script src" not in page and "<link" not in page and "@import" not in page
    assert "innerHTML" not in page and "textContent" in page


# --------------------------------------------------------------------------- plumbing


async def test_mount_on_existing_app_and_bounded_call_log(tmp_path: Any) -> None:
    sandbox = SandboxServer(call_log_size=3, rate_limits=RateLimits(enabled=False))
    app = web.Application()

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/health", health)
    sandbox.mount(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sandbox.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    token = sandbox.create_bot()
    try:
        bot = make_bot(sandbox, token)
        async with bot:
            for _ in range(5):
                await bot.get_me()
        assert len(sandbox.calls()) == 3
        assert sandbox.stats()["calls"] == 6
        async with aiohttp.ClientSession() as http, http.get(f"{sandbox.url}/health") as r:
            assert await r.text() == "ok"
    finally:
        await runner.cleanup()


async def test_many_messages_per_second(sandbox: SandboxServer, token: str) -> None:
    users = [sandbox.create_user(token, first_name=f"G{i}") for i in range(20)]
    for user in users:
        await sandbox.send_start(token, user.id)
    url = f"{sandbox.url}/bot{token}/sendMessage"
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:

        async def send(i: int) -> int:
            data = {"chat_id": str(users[i % 20].id), "text": f"news {i}"}
            async with http.post(url, data=data) as r:
                return r.status

        statuses = await asyncio.gather(*(send(i) for i in range(400)))
    rate = 400 / (time.monotonic() - started)
    assert set(statuses) == {200}
    assert rate > 100, f"only {rate:.0f} sendMessage/s"


def test_formatting_details() -> None:
    text, entities = parse_html('👋 <a href="https://t.me/x">link</a> &lt;3')
    assert text == "👋 link <3"
    assert entities == [{"type": "text_link", "url": "https://t.me/x", "offset": 3, "length": 4}]
    with pytest.raises(ParseError, match="Unmatched end tag"):
        parse_html("<b><i>x</b></i>")
    text, entities = parse_markdown_v2("__under__ ||hidden|| [go](https://a\\.b) \\#1")
    assert text == "under hidden go #1"
    assert [e["type"] for e in entities] == ["underline", "spoiler", "text_link"]
    text, entities = format_text("  /help@gradtrack_bot now  ", None, None)
    assert text == "/help@gradtrack_bot now"
    assert entities == [{"type": "bot_command", "offset": 0, "length": 19}]


async def test_standalone_server_prints_url_and_token() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.sandbox",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        lines = [(await asyncio.wait_for(process.stdout.readline(), 10)).decode() for _ in range(4)]
        url = lines[0].split(":", 1)[1].split()[0].removesuffix("/bot")
        token = lines[1].split(":", 1)[1].strip()
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{url}/bot{token}/getMe") as r,
        ):
            assert (await r.json())["result"]["username"] == "gradtrack_bot"
    finally:
        process.terminate()
        await process.wait()


async def test_started_users_in_bulk_can_be_messaged(
    sandbox: SandboxServer, tg: Bot, token: str
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sandbox.url}/sandbox/api/bots/{token.split(':')[0]}/started_users",
            json={"count": 3},
        ) as response,
    ):
        body = await response.json()
    assert response.status == 201 and body["result"]["count"] == 3
    first, last = body["result"]["first_id"], body["result"]["last_id"]
    for user_id in range(first, last + 1):
        sent = await tg.send_message(user_id, "Hello")
        assert sent.chat.id == user_id
    assert sandbox.pending_updates(token) == []


async def test_a_sandbox_killed_between_saves_numbers_nothing_twice(tmp_path: Any) -> None:
    """The sandbox saves its world about once a second; users and updates made after the last
    save of a process that was killed are not numbered again by the next one."""
    from bot.sandbox import SandboxServer as Server

    path = tmp_path / "sandbox.json"
    first = Server(state_file=path)
    token = first.create_bot("keep_bot", "Keep")
    kept = first.create_user(token, "Kept")
    await first.send_text(token, kept.id, "hello")
    assert first.save()
    lost = first.create_user(token, "Lost")  # made after the last save, then the process dies
    await first.send_text(token, lost.id, "hello too")
    lost_update = first.pending_updates(token)[-1]["update_id"]

    second = Server(state_file=path, port=0)
    await second.start()
    try:
        assert second.bot("keep_bot").token == token
        assert second.get_user(kept.id).first_name == "Kept"
        assert [e.text for e in second.transcript(token, kept.id)] == ["hello"]
        new = second.create_user(token, "New")
        assert new.id not in (kept.id, lost.id)
        await second.send_text(token, new.id, "hi")
        assert second.pending_updates(token)[-1]["update_id"] > lost_update
    finally:
        await second.stop()
