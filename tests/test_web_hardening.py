"""The web server against clients from outside, logged in or not (issue 14): bounded bodies,
slow headers and bodies cut off, a cap on open connections, and the dashboard's and the
webhook's refusals of hostile input (numbers, wave names, redirects, other sites' forms,
deep JSON, impossible update ids). Each runs the service's real aiohttp app on a loopback
port (both databases). Figures: docs/reliability.md, "Bounded requests and web hardening"."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from sqlmodel import select
from telegram import Update

from bot.web.dashboard import PREFIX
from bot.web.server import MAX_UPDATE_BYTES
from storage.models import DashboardLogin, ProcessedUpdate
from storage.staff import add_staff
from tests.harness import Harness, Webhook, eventually
from tests.test_dashboard import client_session, log_in, login_link, seed_small
from tests.test_refusals import _dashboard_routes, _fill

MB = 1024 * 1024
CHUNK = b"a" * (64 * 1024)


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


async def _connect(base_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(*_address(base_url))


def _head(method: str, path: str, base_url: str, **headers: str | int) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {urlsplit(base_url).netloc}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _status(reader: asyncio.StreamReader) -> int:
    """The status of the response on `reader` (0: the server closed without one)."""
    line = await asyncio.wait_for(reader.readline(), 30)
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else 0


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


# ---------------------------------------------------------------- bodies


async def test_a_large_login_body_is_answered_413_before_it_is_sent(
    harness: Harness, web: str
) -> None:
    """A 5 MB form announced to /dashboard/login (no session needed): the server answers 413
    once it has the headers and the first 64 KB, while the client still has 5 MB - 64 KB to
    send; it never waits for, nor holds, the rest."""
    reader, writer = await _connect(web)
    try:
        writer.write(
            _head(
                "POST",
                f"{PREFIX}/login",
                web,
                Origin=web,
                Content_Type="application/x-www-form-urlencoded",
                Content_Length=5 * MB,
            )
        )
        writer.write(b"token=" + CHUNK)
        await writer.drain()
        assert await _status(reader) == 413
        page = await asyncio.wait_for(reader.read(), 30)
        assert b"Too large" in page and b"64 KB" in page
    finally:
        await _close(writer)


async def _send_whole(base_url: str, path: str, size: int, **headers: str | int) -> int:
    """POST `size` bytes to `path`, 64 KB at a time as the socket takes them; the status."""
    reader, writer = await _connect(base_url)
    try:
        writer.write(_head("POST", path, base_url, Content_Length=size, **headers))
        sent = 0
        try:
            while sent < size:
                writer.write(CHUNK[: size - sent])
                sent += min(len(CHUNK), size - sent)
                await writer.drain()
        except ConnectionError:
            pass  # the server stopped reading: fine, its answer is waiting
        return await _status(reader)
    finally:
        await _close(writer)


async def test_large_bodies_do_not_grow_the_process(harness: Harness, web: str) -> None:
    """Four clients at once each send a whole 5 MB body to the login form. Each is answered
    413, and the process's traced memory (tracemalloc: every Python allocation, the server's
    buffers included) never grows by even one body's size: the bodies are discarded as they
    come, never gathered (before, each was held twice over: 4 x 10 MB)."""
    tracemalloc.start()
    try:
        baseline, _peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        statuses = await asyncio.gather(
            *(
                _send_whole(
                    web,
                    f"{PREFIX}/login",
                    5 * MB,
                    Origin=web,
                    Content_Type="application/x-www-form-urlencoded",
                )
                for _ in range(4)
            )
        )
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert statuses == [413] * 4
    assert peak - baseline < 5 * MB, f"grew by {(peak - baseline) / MB:.1f} MB"


async def test_a_chunked_update_over_the_limit_is_refused(
    harness: Harness, webhook: Webhook
) -> None:
    """A 2 MB update sent chunked (no Content-Length to refuse it by) with the secret: 413
    once 1 MB has been read, and the update has no effect; the webhook goes on."""
    user = harness.user("en")
    await harness.send(user, "/help")
    text = "x" * (2 * MB)
    update = {
        "update_id": 900_000_777,
        "message": {
            "message_id": 99,
            "date": 1_790_000_000,
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
            "from": user.to_api(),
            "text": text,
        },
    }
    body = json.dumps(update).encode()
    assert len(body) > 2 * MAX_UPDATE_BYTES

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), len(CHUNK)):
            yield body[start : start + len(CHUNK)]

    headers = {
        "Content-Type": "application/json",
        "X-Telegram-Bot-Api-Secret-Token": webhook.secret,
    }
    async with webhook.session.post(webhook.url, data=chunks(), headers=headers) as response:
        assert response.status == 413
    async with harness.db.session() as session:
        assert await session.get(ProcessedUpdate, 900_000_777) is None
    assert len(harness.sandbox.bot_messages(harness.token, user.id)) == 1
    await harness.send(user, "/help")  # still served


# ---------------------------------------------------------------- slow clients, many clients


async def _trickle(base_url: str, data: bytes, head: bytes = b"") -> tuple[int, bytes]:
    """Send `head`, then `data` one byte every 0.2 s until the server closes the connection.
    (bytes of `data` sent, what the server answered)."""
    reader, writer = await _connect(base_url)
    answer = asyncio.create_task(reader.read())
    sent = 0
    try:
        writer.write(head)
        for byte in data:
            if answer.done():
                break
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            await asyncio.wait([answer], timeout=0.2)
        await asyncio.wait([answer], timeout=30)
        return sent, answer.result() if answer.done() else b"(still open)"
    except ConnectionError:
        return sent, b""
    finally:
        answer.cancel()
        await _close(writer)


async def test_a_client_sending_headers_slowly_is_disconnected(harness: Harness) -> None:
    """WEB_HEADER_TIMEOUT=1: a client sending a request's headers one byte every 0.2 s (100
    bytes: 20 s) is disconnected long before it gets to the end, without an answer; an
    ordinary request is answered meanwhile."""
    harness.settings.web_header_timeout = 1.0
    web = await harness.start_web()
    headers = _head("GET", "/healthz", web, X_Padding="p" * 60)
    assert len(headers) >= 100
    sent, answer = await _trickle(web, headers)
    assert answer == b"" and sent < len(headers), (sent, answer)
    async with aiohttp.ClientSession() as client, client.get(f"{web}/healthz") as response:
        assert response.status == 200


async def test_a_body_sent_slowly_is_cut_off(harness: Harness) -> None:
    """WEB_BODY_TIMEOUT=1: a login form whose 100-byte body comes one byte every 0.2 s is
    cut off (the connection closed, nothing answered) long before the body is complete."""
    harness.settings.web_body_timeout = 1.0
    web = await harness.start_web()
    body = b"token=" + b"t" * 94
    head = _head(
        "POST",
        f"{PREFIX}/login",
        web,
        Origin=web,
        Content_Type="application/x-www-form-urlencoded",
        Content_Length=len(body),
    )
    sent, answer = await _trickle(web, body, head)
    assert answer == b"" and sent < len(body), (sent, answer)


async def test_connections_over_the_cap_are_refused_and_service_resumes(
    harness: Harness,
) -> None:
    """WEB_MAX_CONNECTIONS=3: with three connections open (each has had an answer and stays
    open, keep-alive), a fourth is answered 503 and closed without its request being
    handled; once the three close, a new connection is served again."""
    harness.settings.web_max_connections = 3
    web = await harness.start_web()
    held = []
    for _ in range(3):
        reader, writer = await _connect(web)
        writer.write(_head("GET", "/healthz", web))
        assert await _status(reader) == 200
        held.append((reader, writer))
    reader, writer = await _connect(web)
    writer.write(_head("GET", "/healthz", web))
    try:
        status = await _status(reader)
        assert status in (0, 503), status  # 0: closed without an answer
        rest = await asyncio.wait_for(reader.read(), 30)  # returns: the server closed it
        assert status == 0 or rest.endswith(b"Connection: close\r\n\r\n"), rest
    except ConnectionError:
        pass  # closed before the request was read: refused too
    finally:
        await _close(writer)
    runner = harness._web_runners[-1]
    assert runner.capped.refused == 1
    for _reader, held_writer in held:
        await _close(held_writer)
    await eventually(lambda: runner.capped.open == 0)
    async with aiohttp.ClientSession() as client, client.get(f"{web}/healthz") as response:
        assert response.status == 200


# ---------------------------------------------------------------- the dashboard's inputs

BAD_NUMBERS = ("²", "99999999999999999999999", "-1", "1e3", "0x1", " 1", "")
NUMERIC_PARTS = {"programme", "broadcast", "action", "graduate"}
OTHER_PARTS = {"wave": "m2", "format": "csv", "table": "indicators", "list": "work"}
NUMERIC_QUERY = ("school", "cohort")


async def test_numbers_that_are_not_plain_ids_are_refused_on_every_route(
    harness: Harness, web: str
) -> None:
    """Every dashboard route (from the router) with a number in its path gets each of
    BAD_NUMBERS there, and every GET route gets them as ?school= and ?cohort=, for an admin
    of all schools (who may pick any school): a number in a path answers 404, one in the
    query 400 where the page reads it; never 500."""
    h = harness
    await seed_small(h)
    admin = h.user("en")
    await add_staff(h.db, admin.id, "admin")
    routes = _dashboard_routes(h._web_runners[-1].app)
    parts = {p for _m, template in routes for p in re.findall(r"\{(\w+)", template)}
    assert parts == NUMERIC_PARTS | set(OTHER_PARTS), parts  # a new part: say what it is
    statuses: dict[tuple[str, str], int] = {}
    async with client_session() as client:
        await log_in(h, client, admin)
        for method, template in routes:
            if method != "GET":
                continue
            names = set(re.findall(r"\{(\w+)", template)) & NUMERIC_PARTS
            for bad in BAD_NUMBERS:
                if names:
                    ids = {**OTHER_PARTS, **dict.fromkeys(names, bad or "x")}
                    async with client.get(f"{web}{_fill(template, ids)}") as response:
                        statuses[(template, f"path {bad!r}")] = response.status
                    continue
                path = _fill(template, OTHER_PARTS)
                for name in NUMERIC_QUERY:
                    async with client.get(f"{web}{path}", params={name: bad}) as response:
                        statuses[(template, f"{name}={bad!r}")] = response.status
    assert not [k for k, status in statuses.items() if status >= 500], statuses
    paths = {k: s for k, s in statuses.items() if k[1].startswith("path")}
    assert paths and set(paths.values()) == {404}, paths
    overview = {k: s for k, s in statuses.items() if k[0] == PREFIX and "''" not in k[1]}
    assert set(overview.values()) == {400}, overview


async def test_export_file_names_take_known_waves_only(harness: Harness, web: str) -> None:
    """?wave= names the downloaded file: a wave of the plan (m2) does; anything else (an
    unknown name, quotes, a line break, a path) is 404 and appears in no header."""
    h = harness
    await seed_small(h)
    admin = h.user("en")  # the responses row by row are for admins
    await add_staff(h.db, admin.id, "admin", school_code="alfa")
    async with client_session() as client:
        await log_in(h, client, admin)
        for kind in ("csv", "xlsx"):
            url = f"{web}{PREFIX}/exports/responses.{kind}"
            async with client.get(url, params={"wave": "m2"}) as response:
                assert response.status == 200
                disposition = response.headers["Content-Disposition"]
            assert disposition == f'attachment; filename="responses-tracking-m2.{kind}"'
            for wave in ("nope", 'm2"; x="', "m2\r\nX-Evil: 1", "../../etc", "m2%0d%0aX-Evil:1"):
                async with client.get(url, params={"wave": wave}) as response:
                    assert response.status == 404, wave
                    assert "X-Evil" not in response.headers
                    assert not [v for v in response.headers.values() if "nope" in v or '"; x' in v]


EVIL_NEXT = (
    "/dashboard\r\nSet-Cookie: evil=1",
    "/dashboard%0d%0aSet-Cookie:%20evil=1",
    "/dashboard%0D%0ALocation:%20http://evil.example",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "http://evil.example/dashboard",
    "https:evil.example",
    "/dashboard.evil.example",
    "/dashboard/../../evil",
    "javascript:alert(1)",
)


async def test_next_is_a_dashboard_page_of_this_site_or_home(harness: Harness, web: str) -> None:
    """The language form's `next` (where to go back to) and a `next` given to the login form:
    a page of the dashboard is kept (with its query); a line break (also percent-encoded),
    another site or a path out of the dashboard is replaced by the dashboard's home."""
    h = harness
    await seed_small(h)
    officer = h.user("en")
    await add_staff(h.db, officer.id, "officer", school_code="alfa")
    async with client_session() as client:
        link = await login_link(h, officer)
        async with client.get(link) as page:
            token = re.search(r'name="token" value="([^"]+)"', await page.text())
        assert token
        async with client.post(
            f"{web}{PREFIX}/login",
            data={"token": token.group(1), "next": "//evil.example"},
            allow_redirects=False,
        ) as response:
            assert response.status == 303 and response.headers["Location"] == PREFIX
        async with client.get(f"{web}{PREFIX}") as page:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert csrf
        good = f"{PREFIX}/waves/m2?cohort=2026"
        targets: dict[str, str] = {}
        for value in (good, *EVIL_NEXT):
            async with client.post(
                f"{web}{PREFIX}/language",
                data={"language": "en", "csrf": csrf.group(1), "next": value},
                allow_redirects=False,
            ) as response:
                assert response.status == 303, value
                assert "evil" not in str(response.cookies), value
                targets[value] = response.headers["Location"]
    assert targets == {good: good} | dict.fromkeys(EVIL_NEXT, PREFIX)


async def test_posts_from_other_sites_are_refused(harness: Harness, web: str) -> None:
    """The login form (no session yet, so no CSRF token) and the forms of a session: a POST
    whose Origin is another site, `null`, or absent with a Referer of another site or none
    (no browser sends a POST without either) is refused 403 and changes nothing: the login
    link is not used up, the language not changed. The same with this site's Origin, or
    without Origin but with this site's Referer (an older browser), goes through."""
    h = harness
    await seed_small(h)
    officer = h.user("nl")
    await add_staff(h.db, officer.id, "officer", school_code="alfa")
    link = await login_link(h, officer)
    foreign: list[dict[str, str]] = [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": web.replace("127.0.0.1", "localhost")},
        {"Referer": "http://evil.example/page"},
        {"Origin": "http://evil.example", "Referer": f"{web}{PREFIX}"},
        {},
    ]
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as client:
        async with client.get(link) as page:
            token = re.search(r'name="token" value="([^"]+)"', await page.text())
        assert token
        for headers in foreign:
            async with client.post(
                f"{web}{PREFIX}/login",
                data={"token": token.group(1)},
                headers=headers,
                allow_redirects=False,
            ) as response:
                assert response.status == 403, headers
        async with h.db.session() as session:
            assert all(row.used_at is None for row in (await session.exec(select(DashboardLogin))))
        async with client.post(
            f"{web}{PREFIX}/login",
            data={"token": token.group(1)},
            headers={"Referer": link},  # same site, no Origin
            allow_redirects=False,
        ) as response:
            assert response.status == 303
        async with client.get(f"{web}{PREFIX}") as page:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert csrf
        for headers in foreign:
            async with client.post(
                f"{web}{PREFIX}/language",
                data={"language": "et", "csrf": csrf.group(1)},
                headers=headers,
                allow_redirects=False,
            ) as response:
                assert response.status == 403, headers
        async with client.get(f"{web}{PREFIX}") as page:
            assert 'lang="nl"' in await page.text()
        async with client.post(
            f"{web}{PREFIX}/language",
            data={"language": "et", "csrf": csrf.group(1)},
            headers={"Origin": web},
            allow_redirects=False,
        ) as response:
            assert response.status == 303
        async with client.get(f"{web}{PREFIX}") as page:
            assert 'lang="et"' in await page.text()


# ---------------------------------------------------------------- the webhook's inputs


async def test_deeply_nested_json_is_answered_400(harness: Harness, webhook: Webhook) -> None:
    """Bodies nested deeper than any JSON parser goes (100,000 `[`, and 100,000 levels under
    an update's key) are refused 400, not a 500; the webhook goes on."""
    user = harness.user("en")
    deep = b"[" * 100_000 + b"]" * 100_000
    inside = b'{"update_id": 900000555, "message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert await webhook.post(deep, webhook.secret) == 400
    assert await webhook.post(inside, webhook.secret) == 400
    await harness.send(user, "/help")


@pytest.mark.parametrize("update_id", [2**63, 2**64, 10**30, -1, 0])
async def test_impossible_update_ids_are_refused_cleanly(
    harness: Harness, webhook: Webhook, update_id: int, caplog: pytest.LogCaptureFixture
) -> None:
    """An update whose update_id no Telegram update has (over the database's 64-bit column,
    negative, zero), with the secret: answered 400 before it reaches the database; the person
    gets no answer and no apology, nothing is recorded, and the webhook goes on. The same
    update handed to the bot directly (as polling would) is dropped by the duplicate check,
    again without an error."""
    user = harness.user("en")
    await harness.send(user, "/help")
    payload: dict[str, Any] = {
        "update_id": update_id,
        "message": {
            "message_id": 77,
            "date": 1_790_000_000,
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
            "from": user.to_api(),
            "text": "/help",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        },
    }
    caplog.set_level(logging.WARNING)
    assert await webhook.post(payload, webhook.secret) == 400
    assert harness.app is not None
    await harness.app.process_update(Update.de_json(payload, harness.app.bot))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert len(harness.sandbox.bot_messages(harness.token, user.id)) == 1
    async with harness.db.session() as session:
        assert update_id not in (await session.exec(select(ProcessedUpdate.update_id))).all()
    await harness.send(user, "/help")


async def test_the_roster_upload_has_its_own_configurable_limit(harness: Harness) -> None:
    """ROSTER_MAX_BYTES=100 KB: a 90 KB file gets through (over the 64 KB other forms get;
    checked, not refused for its size), a 150 KB one is refused by the upload page ("larger
    than 100 KB"), a 300 KB one already while it is read (the body limit, 100 + 64 KB);
    each refusal is a 413 page in the officer's language."""
    h = harness
    h.settings.roster_max_bytes = 100 * 1024
    web = await h.start_web()
    await seed_small(h)
    officer = h.user("en")
    await add_staff(h.db, officer.id, "officer", school_code="alfa")
    statuses: dict[int, tuple[int, str]] = {}
    async with client_session() as client:
        csrf = await log_in(h, client, officer)
        for size in (90 * 1024, 150 * 1024, 300 * 1024):
            form = aiohttp.FormData()
            form.add_field("csrf", csrf)
            form.add_field("file", b"x" * size, filename="big.csv", content_type="text/csv")
            async with client.post(f"{web}{PREFIX}/roster", data=form) as response:
                statuses[size // 1024] = (response.status, await response.text())
    assert statuses[90][0] == 422  # read and checked: not a roster
    assert statuses[150][0] == 413 and "The file is larger than 100 KB." in statuses[150][1]
    assert statuses[300][0] == 413 and "larger than the 164 KB" in statuses[300][1]
