"""The `gradtrack` command as a person runs it: `run` (what `make run` starts) and `serve`,
each a real process with its built-in sandbox, driven over HTTP like the web chat page."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp

from bot.i18n import gettext, use_language
from conversations.questionnaire import load_questionnaire
from storage.db import Database
from storage.demo import ensure_demo
from storage.migrate import upgrade

GRADTRACK = str(Path(sys.executable).with_name("gradtrack"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def gradtrack(
    command: str, env: dict[str, str], *, exit_code: int = 0
) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str]]]:
    """Start `gradtrack COMMAND`; stop it with SIGTERM at the end and expect `exit_code`
    (a clean exit by default)."""
    full_env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"} | env
    process = await asyncio.create_subprocess_exec(
        GRADTRACK,
        command,
        env=full_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []

    async def read() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            lines.append(raw.decode(errors="replace").rstrip())

    reader = asyncio.create_task(read())
    try:
        yield process, lines
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
        await reader
        assert code == exit_code, "\n".join(lines[-30:])


async def _wait_for_line(lines: list[str], needle: str, timeout: float = 60) -> str:
    for _ in range(int(timeout * 20)):
        for line in lines:
            if needle in line:
                return line
        await asyncio.sleep(0.05)
    raise AssertionError(f"{needle!r} never printed; output:\n" + "\n".join(lines[-30:]))


async def _api(session: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with session.request(method, url, **kw) as response:
        body = await response.json()
        assert response.status < 300, body
        return body["result"]


async def _bot_texts(session: aiohttp.ClientSession, chat_url: str, count: int) -> list[str]:
    """Wait until the bot has sent `count` messages in the chat; return their texts."""
    texts: list[str] = []
    for _ in range(300):
        transcript = await _api(session, "GET", chat_url)
        texts = [
            e.get("text", "")
            for e in transcript["entries"]
            if e["kind"] == "message" and e["sender"] == "bot"
        ]
        if len(texts) >= count:
            return texts
        await asyncio.sleep(0.05)
    raise AssertionError(f"the bot sent {texts} only")


async def test_run_prints_the_web_chat_and_a_demo_invite_that_works(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'run.sqlite3'}",
        "SANDBOX_PORT": str(port),
    }
    async with gradtrack("run", env) as (_process, lines):
        line = await _wait_for_line(lines, "Telegram, as a new graduate:")
        link = line.split(": ", 1)[1].strip()
        web_line = await _wait_for_line(lines, "Web chat (any browser):")
        web_link = web_line.split(": ", 1)[1].strip()
        assert web_link.endswith("/c/" + parse_qs(urlparse(link).query)["start"][0])
        assert link.startswith(f"http://127.0.0.1:{port}/chat?")
        query = parse_qs(urlparse(link).query)
        bot, payload = query["bot"][0], query["start"][0]
        await _wait_for_line(lines, "Self-registration (school):")
        base = f"http://127.0.0.1:{port}/sandbox/api"
        async with aiohttp.ClientSession() as session:
            async with session.get(link) as page:
                assert page.status == 200 and "<html" in (await page.text()).lower()
            # The same graduate's web chat, served by the service itself.
            async with session.get(web_link) as page:
                assert page.status == 200 and 'id="start"' in await page.text()
            user = await _api(
                session, "POST", f"{base}/users", json={"first_name": "Eva", "language_code": "et"}
            )
            chat_url = f"{base}/chats/{bot}/{user['id']}"
            await _api(session, "POST", f"{chat_url}/messages", json={"text": f"/start {payload}"})
            (first,) = await _bot_texts(session, chat_url, 1)

            # Links printed by other commands meanwhile open in this sandbox's web chat too,
            # with no BOT_USERNAME set.
            demo = await asyncio.to_thread(_cli, "demo", env=env)
            assert demo.returncode == 0, demo.stderr
            demo_link = demo.stdout.splitlines()[0].split(": ", 1)[1].strip()
            assert demo_link.startswith(f"http://127.0.0.1:{port}/chat?")
            demo_query = parse_qs(urlparse(demo_link).query)
            other = await _api(session, "POST", f"{base}/users", json={"first_name": "Mart"})
            other_chat = f"{base}/chats/{demo_query['bot'][0]}/{other['id']}"
            start = f"/start {demo_query['start'][0]}"
            await _api(session, "POST", f"{other_chat}/messages", json={"text": start})
            (greeting,) = await _bot_texts(session, other_chat, 1)
    with use_language("et"):
        expected = gettext(
            "Hello! This is the graduate chat of {school}. Which language do you prefer?"
        ).format(school="Demo Vocational College")
    assert first == expected
    assert greeting.startswith("Hello! This is the graduate chat of Demo Vocational College.")
    # Routine lines of the scheduler and the migrations do not bury the printed links.
    assert not [line for line in lines if "apscheduler" in line or "alembic" in line]
    # The README shows what `make run` prints, line by line (ports and tokens aside).
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    top = next(i for i, line in enumerate(lines) if line.startswith("gradtrack is running"))
    bottom = next(i for i, line in enumerate(lines) if line.startswith("Press Ctrl+C"))
    for line in lines[top : bottom + 1]:
        line = re.sub(r"127\.0\.0\.1:\d+/(chat|sandbox/)", r"127.0.0.1:8081/\1", line)
        line = re.sub(r"127\.0\.0\.1:\d+/dashboard", "127.0.0.1:8080/dashboard", line)
        line = re.sub(r"start=([it])_[A-Za-z0-9_-]+", r"start=\1_...", line)
        line = re.sub(r"127\.0\.0\.1:\d+/c/i_[A-Za-z0-9_-]+", "127.0.0.1:8080/c/i_...", line)
        assert line in readme, line


async def test_serve_answers_through_the_webhook(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'serve.sqlite3'}"
    await upgrade(url)
    db = Database(url)
    demo = await ensure_demo(db)
    await db.dispose()
    sandbox_port, port = _free_port(), _free_port()
    env = {"DATABASE_URL": url, "SANDBOX_PORT": str(sandbox_port), "PORT": str(port)}
    async with gradtrack("serve", env) as (_process, lines):
        await _wait_for_line(lines, f"gradtrack serving on 0.0.0.0:{port}")
        base = f"http://127.0.0.1:{sandbox_port}/sandbox/api"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert health.status == 200
            async with session.post(
                f"http://127.0.0.1:{port}/telegram/webhook", json={"update_id": 1}
            ) as forged:
                assert forged.status == 403  # no secret token: not from Telegram
            (bot,) = await _api(session, "GET", f"{base}/bots")
            user = await _api(session, "POST", f"{base}/users", json={"first_name": "Ana"})
            chat_url = f"{base}/chats/{bot['id']}/{user['id']}"
            await _api(
                session,
                "POST",
                f"{chat_url}/messages",
                json={"text": f"/start {demo.invite_token}"},
            )
            (first,) = await _bot_texts(session, chat_url, 1)
            calls = await _api(session, "GET", f"{base}/calls", params={"method": "setWebhook"})
    assert first.startswith("Hello! This is the graduate chat of Demo Vocational College.")
    assert calls and calls[-1]["params"]["url"] == f"http://127.0.0.1:{port}/telegram/webhook"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = None
    if env is not None:
        full_env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"} | env
    return subprocess.run(
        [GRADTRACK, *args], capture_output=True, text=True, timeout=60, check=False, env=full_env
    )


HEAVY_LIBRARIES = {"sqlalchemy", "sqlmodel", "telegram", "aiohttp", "alembic", "apscheduler"}


def test_help_answers_without_loading_the_database_or_telegram_libraries() -> None:
    """`gradtrack --help` (and each command's) answers at once: only the parser is loaded."""
    for args in (["--help"], ["news", "send", "--help"], ["staff", "--help"], ["import", "-h"]):
        probe = (
            "import sys\n"
            "from bot.__main__ import main\n"
            "try:\n"
            f"    main({args!r})\n"
            "except SystemExit as stop:\n"
            "    assert stop.code == 0, stop.code\n"
            "print('LOADED', sorted({name.split('.')[0] for name in sys.modules}))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
        )
        assert "usage: gradtrack" in done.stdout
        loaded = done.stdout.rsplit("LOADED ", 1)[1]
        assert not [lib for lib in HEAVY_LIBRARIES if f"'{lib}'" in loaded], (args, loaded)


def test_questionnaire_check_export_import(tmp_path: Path) -> None:
    tracking = Path(__file__).parent.parent / "conversations" / "questionnaires" / "tracking.yaml"
    version = load_questionnaire(tracking).version
    checked = _cli("questionnaire", "check", str(tracking))
    assert checked.returncode == 0, checked.stderr
    assert f"tracking version {version}" in checked.stdout
    assert checked.stdout.rstrip().endswith("OK")

    sheet, back = tmp_path / "tracking.xlsx", tmp_path / "tracking.yaml"
    assert _cli("questionnaire", "export", str(tracking), str(sheet)).returncode == 0
    assert _cli("questionnaire", "import", str(sheet), str(back)).returncode == 0
    assert load_questionnaire(back) == load_questionnaire(tracking)

    # Export, then import over the school's own YAML: nothing changed, so its comments and
    # layout stay; a changed questionnaire is written, the commented file kept beside it.
    own = tmp_path / "own.yaml"
    own.write_text(tracking.read_text(encoding="utf-8"), encoding="utf-8")
    assert "#" in own.read_text(encoding="utf-8")
    kept = _cli("questionnaire", "import", str(sheet), str(own))
    assert kept.returncode == 0 and "left as it is" in kept.stdout
    assert own.read_text(encoding="utf-8") == tracking.read_text(encoding="utf-8")
    other = tmp_path / "other.yaml"
    other.write_text(
        tracking.read_text(encoding="utf-8").replace(
            f'version: "{version}"', 'version: "2026.9"', 1
        ),
        encoding="utf-8",
    )
    commented = other.read_text(encoding="utf-8")
    replaced = _cli("questionnaire", "import", str(sheet), str(other))
    assert replaced.returncode == 0 and "other.yaml.bak" in replaced.stdout
    assert load_questionnaire(other) == load_questionnaire(tracking)
    assert (tmp_path / "other.yaml.bak").read_text(encoding="utf-8") == commented

    broken = tmp_path / "broken.yaml"
    broken.write_text(
        tracking.read_text(encoding="utf-8").replace(
            "relevant: ${C0} = 'yes'", "relevant: ${C9} = 'yes'", 1
        ),
        encoding="utf-8",
    )
    refused = _cli("questionnaire", "check", str(broken))
    assert refused.returncode == 1
    assert f"{broken}:" in refused.stderr and "C9" in refused.stderr


async def _links(lines: list[str]) -> dict[str, str]:
    """The bot and the start payloads `gradtrack run` printed."""
    found: dict[str, str] = {}
    for label, key in (
        ("Telegram, as a new graduate:", "invite"),
        ("Telegram, as an admin:", "admin"),
    ):
        line = await _wait_for_line(lines, label)
        query = parse_qs(urlparse(line.split(": ", 1)[1].strip()).query)
        found["bot"], found[key] = query["bot"][0], query["start"][0]
    return found


async def _bot_entries(session: aiohttp.ClientSession, chat_url: str) -> list[dict[str, Any]]:
    transcript = await _api(session, "GET", chat_url)
    return [e for e in transcript["entries"] if e["kind"] == "message" and e["sender"] == "bot"]


async def _next_bot_entry(
    session: aiohttp.ClientSession, chat_url: str, seen: int
) -> dict[str, Any]:
    """The bot's first message after the first `seen` ones."""
    for _ in range(600):
        entries = await _bot_entries(session, chat_url)
        if len(entries) > seen:
            return entries[seen]
        await asyncio.sleep(0.05)
    raise AssertionError(f"the bot did not answer in {chat_url}")


async def test_the_sandbox_keeps_its_users_and_chats_across_a_restart(tmp_path: Path) -> None:
    """Ctrl+C and `make run` again: the sandbox goes on from where it was. A new web-chat
    user is a new Telegram user (not someone from before, so not an admin and not holding
    another graduate's data), their messages are answered (not dropped as updates already
    seen), and the earlier graduate's chat is still there and goes on."""
    database = tmp_path / "run.sqlite3"
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "SANDBOX_PORT": str(_free_port()),
        "PORT": str(_free_port()),
    }
    base = f"http://127.0.0.1:{env['SANDBOX_PORT']}/sandbox/api"
    async with aiohttp.ClientSession() as session:
        async with gradtrack("run", env) as (process, lines):
            first = await _links(lines)
            bot = first["bot"]
            admin = await _api(session, "POST", f"{base}/users", json={"first_name": "Sam"})
            admin_chat = f"{base}/chats/{bot}/{admin['id']}"
            await _api(
                session, "POST", f"{admin_chat}/messages", json={"text": f"/start {first['admin']}"}
            )
            await _next_bot_entry(session, admin_chat, 0)
            ana = await _api(
                session, "POST", f"{base}/users", json={"first_name": "Ana", "language_code": "en"}
            )
            ana_chat = f"{base}/chats/{bot}/{ana['id']}"
            await _api(
                session, "POST", f"{ana_chat}/messages", json={"text": f"/start {first['invite']}"}
            )
            language_question = await _next_bot_entry(session, ana_chat, 0)
            process.send_signal(signal.SIGINT)
            await asyncio.wait_for(process.wait(), 30)

        async with gradtrack("run", env) as (process, lines):
            second = await _links(lines)
            assert second["bot"] == bot and second["invite"] != first["invite"]
            users = {u["id"] for u in await _api(session, "GET", f"{base}/users")}
            assert {admin["id"], ana["id"]} <= users  # an open web-chat tab finds its user
            # Ana's chat is there as she left it, and goes on.
            assert (await _bot_entries(session, ana_chat))[0]["text"] == language_question["text"]
            await _api(
                session,
                "POST",
                f"{ana_chat}/press",
                json={"message_id": language_question["message_id"], "text": "English"},
            )
            notice = await _next_bot_entry(session, ana_chat, 1)
            assert notice["text"].startswith("Privacy notice")

            bea = await _api(
                session, "POST", f"{base}/users", json={"first_name": "Bea", "language_code": "en"}
            )
            assert bea["id"] not in (admin["id"], ana["id"])
            bea_chat = f"{base}/chats/{bot}/{bea['id']}"
            await _api(
                session, "POST", f"{bea_chat}/messages", json={"text": f"/start {second['invite']}"}
            )
            welcome = await _next_bot_entry(session, bea_chat, 0)  # answered, not dropped
            assert welcome["text"].startswith("Hello! This is the graduate chat of")
            await _api(session, "POST", f"{bea_chat}/messages", json={"text": "/mydata"})
            mydata = await _next_bot_entry(session, bea_chat, 1)
            file_id = mydata["document"]["file_id"]
            async with session.get(f"{base}/files/{bot}/{file_id}") as response:
                data = await response.text()
            assert "Demo Graduate 2" in data and "Demo Graduate 1" not in data
            await _api(session, "POST", f"{bea_chat}/messages", json={"text": "/stats"})
            refused = await _next_bot_entry(session, bea_chat, 2)
            assert refused["text"] == "This command is for school staff."
    assert database.with_name("run.sandbox.json").exists()  # next to the database
