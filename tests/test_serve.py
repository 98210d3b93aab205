"""`gradtrack serve`'s webhook: only Telegram gets in (the secret token), each update takes
effect once however often it is delivered, and no signal (SIGTERM, SIGKILL)
loses an update it acknowledged.

The first tests run the service's real aiohttp app in-process on a loopback port, for the
harness's bot (both databases), with the sandbox delivering updates to it as Telegram does.
The last run `gradtrack serve` as a process (SQLite), against a sandbox of the test's own
so that what the sandbox still holds can be read after the process has exited, and stop it
with SIGTERM or SIGKILL."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import select

from bot.i18n import use_language
from bot.sandbox import RateLimits, SandboxServer
from bot.sandbox.state import SandboxUser
from bot.web.server import (
    KeyedLocks,
)
from conversations.account import help_text
from storage.db import Database
from storage.migrate import upgrade
from storage.models import ProcessedUpdate
from tests.harness import Harness, Webhook, eventually, tr
from tests.test_cli import _free_port, _wait_for_line, gradtrack

LONG = 60.0


def _last_update(harness: Harness, user: SandboxUser, kind: str) -> dict[str, Any]:
    """The newest update of `kind` ("message", "callback_query") the sandbox sent from user."""
    for update in reversed(harness.sandbox.bot(harness.token).history):
        if kind in update and update[kind]["from"]["id"] == user.id:
            return dict(update)
    raise AssertionError(f"no {kind} update from user {user.id}")


def _bot_texts(harness: Harness, user: SandboxUser) -> list[str]:
    return [e.text or "" for e in harness.sandbox.bot_messages(harness.token, user.id)]


async def _processed(db: Database, *update_ids: int) -> set[int]:
    """Which of `update_ids` are recorded in processed_update (all of them: none given)."""
    async with db.session() as session:
        query = select(ProcessedUpdate.update_id)
        if update_ids:
            query = query.where(ProcessedUpdate.update_id.in_(update_ids))  # type: ignore[attr-defined]
        return set((await session.exec(query)).all())


async def _recorded(db: Database, *update_ids: int) -> bool:
    return await _processed(db, *update_ids) == set(update_ids)


async def test_webhook_refuses_calls_without_the_secret_and_bodies_that_are_no_update(
    harness: Harness, webhook: Webhook
) -> None:
    """A request without the secret token, or with a wrong one (the same length, shorter,
    longer, empty) is refused with 403 and its update has no effect; with the secret, a body
    that is not JSON or not an update is refused with 400, and an update python-telegram-bot
    cannot read is answered 200 and has no effect. The same update with the secret is
    answered 200 and processed: the refusals were about the request, not the update."""
    user = harness.user("en")
    await harness.send(user, "/help")  # the sandbox delivers it through the webhook
    forged = _last_update(harness, user, "message") | {"update_id": 900_000_001}
    secret = webhook.secret
    wrong = {
        "missing": None,
        "empty": "",
        "same length": secret[:-1] + ("0" if secret[-1] != "0" else "1"),
        "upper case": secret.upper(),
        "shorter": secret[:-1],
        "longer": secret + "0",
    }
    assert secret.upper() != secret and len(wrong["same length"] or "") == len(secret)
    statuses = {name: await webhook.post(forged, given) for name, given in wrong.items()}
    assert statuses == dict.fromkeys(wrong, 403)

    not_updates: dict[str, bytes | dict[str, Any]] = {
        "not JSON": b"{this is not json",
        "not UTF-8": b'{"update_id": 1, "x": "\xff"}',
        "a JSON list": b"[1, 2, 3]",
        "no update_id": {"message": forged["message"]},
        "update_id a string": {"update_id": "900000002"},
        "update_id a boolean": {"update_id": True},
    }
    statuses = {name: await webhook.post(body, secret) for name, body in not_updates.items()}
    assert statuses == dict.fromkeys(not_updates, 400)
    # An update python-telegram-bot cannot read is answered 200 and skipped (bot.rawupdates):
    # Telegram would deliver it again on a 400, forever.
    unreadable: dict[str, dict[str, Any]] = {
        "message a string": {"update_id": 900_000_003, "message": "hello"},
        "message without date": {"update_id": 900_000_004, "message": {"text": "/help"}},
    }
    statuses = {name: await webhook.post(body, secret) for name, body in unreadable.items()}
    assert statuses == dict.fromkeys(unreadable, 200)

    assert await _processed(harness.db, forged["update_id"]) == set()
    assert len(_bot_texts(harness, user)) == 1

    assert await webhook.post(forged, secret) == 200
    await harness.replies(user, 1)
    with use_language("en"):
        assert _bot_texts(harness, user) == [help_text()] * 2  # the /help, then its copy
    await eventually(lambda: _recorded(harness.db, forged["update_id"]))  # after the reply
    assert await _processed(harness.db, 900_000_002, 900_000_003, 900_000_004) == set()


async def test_a_redelivered_update_takes_effect_once(harness: Harness, webhook: Webhook) -> None:
    """A graduate's `/start <invite>` and their press of "Yes" to the survey consent, each
    delivered three more times (twice POSTed again to the webhook with the secret, each
    answered 200, and once redelivered by the sandbox): the bot answers each once (the
    transcript), the press is stored as one consent event, and both update ids are recorded
    in processed_update. Updates are processed in order, so the next update's answer shows
    that the copies before it were handled (dropped)."""
    school = await harness.school()
    graduate = await harness.graduate(school)
    user = harness.user("en")

    (welcome,) = await harness.send(user, f"/start {graduate.invite_token}")
    start = _last_update(harness, user, "message")
    for _ in range(2):
        assert await webhook.post(start, webhook.secret) == 200
    harness.sandbox.redeliver(harness.token, start["update_id"])
    after_language = await harness.press(user, "English", expect=2)
    texts = _bot_texts(harness, user)
    assert texts == [welcome.text, *(m.text for m in after_language)]
    assert (await harness.reload(graduate)).chat_id == user.id

    assert not await harness.consent_events(graduate)
    await harness.press(user, tr("en", "Yes"))
    press = _last_update(harness, user, "callback_query")
    for _ in range(2):
        assert await webhook.post(press, webhook.secret) == 200
    harness.sandbox.redeliver(harness.token, press["update_id"])
    before = len(_bot_texts(harness, user))
    await harness.press(user, tr("en", "Yes"))  # the next question: after the copies
    assert len(_bot_texts(harness, user)) == before + 1
    kinds = Counter(event.kind for event in await harness.consent_events(graduate))
    assert sorted(kinds.values()) == [1, 1], kinds  # two presses, two consents, each once
    assert not harness.sandbox.bot(harness.token).redeliveries
    assert await _processed(harness.db, start["update_id"], press["update_id"]) == {
        start["update_id"],
        press["update_id"],
    }


async def test_one_chats_updates_wait_for_each_other_other_chats_do_not() -> None:
    """The webhook processes updates while answering (several at once, as Telegram opens
    several connections): holders of one chat's lock take turns in arrival order, another
    chat's holder goes ahead meanwhile, and no lock is kept once nobody holds it."""
    locks = KeyedLocks()
    order: list[str] = []
    release = asyncio.Event()

    async def work(chat: int | None, name: str, wait: bool) -> None:
        async with locks.hold(chat):
            order.append(f"{name} in")
            if wait:
                await release.wait()
            order.append(f"{name} out")

    first = asyncio.create_task(work(1, "a1", True))
    await asyncio.sleep(0)
    second = asyncio.create_task(work(1, "a2", False))
    other = asyncio.create_task(work(2, "b", False))
    no_chat = asyncio.create_task(work(None, "n", False))
    await asyncio.wait_for(asyncio.gather(other, no_chat), 5)
    assert order == ["a1 in", "b in", "b out", "n in", "n out"]
    assert len(locks) == 1
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert order[5:] == ["a1 out", "a2 in", "a2 out"]
    assert len(locks) == 0


@dataclass
class Stopped:
    """What a `gradtrack serve` stopped by a signal left behind, and how its successor did."""

    code: int
    acknowledged: set[int]  # updates the webhook answered 200 (Telegram dropped them)
    pending: set[int]  # updates still waiting at the sandbox when the first process was gone
    processed: set[int]  # processed_update when the first process was gone
    sent: dict[int, int]  # /help messages per user
    replies: dict[int, int]  # bot messages per user once the successor processed everything
    lines: list[str]


async def _serve_until(tmp_path: Path, sig: signal.Signals) -> Stopped:
    """`gradtrack serve` (SQLite) with a sandbox of the test's own as its Bot API (a real token
    and TELEGRAM_API_BASE_URL, as against Telegram). Ten graduates keep sending /help; the
    sandbox holds each reply 0.2 s, so that a webhook call is in progress most of the time.
    Once at least five updates are processed, `sig` comes while messages keep coming. Then a
    second `gradtrack serve` (no delay) gets what the sandbox still holds, until it has
    processed all of that."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'serve.sqlite3'}"
    await upgrade(url)
    db = Database(url)
    sandbox = SandboxServer(rate_limits=RateLimits(enabled=False), host="127.0.0.1", port=0)
    await sandbox.start()
    sandbox.webhooks.max_retry_delay = 0.5  # the second process gets redeliveries soon
    token = sandbox.create_bot(username="gradtrack_serve_bot", first_name="GradTrack")
    account = sandbox.bot(token)
    port = _free_port()
    env = {
        "DATABASE_URL": url,
        "TELEGRAM_BOT_TOKEN": token,
        "TELEGRAM_API_BASE_URL": f"{sandbox.url}/bot",
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "SECRET_KEY": "test-secret-key-of-at-least-32-characters",
        "SANDBOX_PORT": str(_free_port()),  # unused: a token is given
        "THROTTLE_PER_SECOND": "0",  # each graduate sends 5 a second
    }
    users = [sandbox.create_user(token, first_name=f"Grad{i}") for i in range(10)]
    sent: Counter[int] = Counter()
    sending = True

    async def keep_sending() -> None:
        i = 0
        while sending:
            user = users[i % len(users)]
            await sandbox.send_text(token, user.id, "/help")
            sent[user.id] += 1
            i += 1
            await asyncio.sleep(0.02)

    def update_ids() -> set[int]:
        return {u["update_id"] for u in account.history}

    def pending_ids() -> set[int]:
        return {u["update_id"] for u in [*account.redeliveries, *account.updates]}

    try:
        exit_code = 0 if sig == signal.SIGTERM else -sig
        async with gradtrack("serve", env, exit_code=exit_code) as (process, lines):
            await _wait_for_line(lines, f"gradtrack serving on 127.0.0.1:{port}")
            sandbox.faults.add("sendMessage", status=None, count=None, delay=0.2, process=True)
            sender = asyncio.create_task(keep_sending())

            async def some_processed() -> bool:
                return len(await _processed(db)) >= 5

            await eventually(some_processed, timeout=LONG)
            process.send_signal(sig)
            code = await asyncio.wait_for(process.wait(), LONG)
            sending = False
            await sender
        assert len(update_ids()) < account.history.maxlen  # type: ignore[operator]
        pending = pending_ids()
        acknowledged = update_ids() - pending
        assert sandbox.webhooks.delivered == len(acknowledged)
        assert account.dropped_updates == 0
        assert sum(sent.values()) == len(update_ids())
        processed = await _processed(db)

        sandbox.faults.clear()
        async with gradtrack("serve", env) as (_process, more_lines):
            await _wait_for_line(more_lines, f"gradtrack serving on 127.0.0.1:{port}")

            async def successor_done() -> bool:  # each reply precedes its record
                return not pending_ids() and await _processed(db) >= pending

            await eventually(successor_done, timeout=LONG)
        replies = {u.id: len(sandbox.bot_messages(token, u.id)) for u in users}
        return Stopped(code, acknowledged, pending, processed, dict(sent), replies, lines)
    finally:
        sending = False
        await sandbox.stop()
        await db.dispose()


async def test_sigterm_processes_every_acknowledged_update(tmp_path: Path) -> None:
    """SIGTERM while updates keep coming: the process finishes the webhook call in progress
    and exits with 0; every update it acknowledged is processed; the rest stay with Telegram
    (the sandbox) and the next process handles them: each graduate got exactly one reply
    per /help sent, nothing lost, nothing answered twice."""
    stopped = await _serve_until(tmp_path, signal.SIGTERM)
    assert stopped.code == 0, "\n".join(stopped.lines[-30:])
    assert stopped.acknowledged <= stopped.processed, sorted(
        stopped.acknowledged - stopped.processed
    )
    assert stopped.pending, "the signal came after every update was delivered"
    assert stopped.replies == stopped.sent


async def test_sigkill_loses_no_acknowledged_update(tmp_path: Path) -> None:
    """SIGKILL while updates keep coming, most likely while a webhook call is in progress:
    every update the webhook acknowledged had been processed before its 200 (so nothing
    Telegram considers delivered is lost), and the next process handles the rest. Each /help
    gets its reply; only the updates in progress at the kill, whose replies may have been sent
    before their records were written, can be answered twice: one per chat at most (the
    sandbox, like Telegram, keeps several webhook calls open, one chat's at a time)."""
    stopped = await _serve_until(tmp_path, signal.SIGKILL)
    assert stopped.code == -signal.SIGKILL
    assert stopped.acknowledged <= stopped.processed, sorted(
        stopped.acknowledged - stopped.processed
    )
    assert stopped.pending, "the kill came after every update was delivered"
    assert set(stopped.replies) == set(stopped.sent)
    extra = {user: stopped.replies[user] - stopped.sent[user] for user in stopped.sent}
    assert all(0 <= n <= 1 for n in extra.values()), extra
