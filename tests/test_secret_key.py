"""No public default key with a real token (issue 14): the commands that run against real
Telegram or write keyed hashes refuse to start without a SECRET_KEY of at least 32
characters; the sandbox keeps its development key; `run` with a real token seeds no demo
school. Each `gradtrack` is a real process; "real Telegram" is a sandbox on 127.0.0.1
reached through TELEGRAM_API_BASE_URL, or a closed port there."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import select

from bot.sandbox import RateLimits, SandboxServer
from bot.settings import DEVELOPMENT_KEY, MAKE_SECRET_KEY, SecretKeyMissing, Settings
from storage.db import Database
from storage.demo import DEMO_SCHOOL_CODE
from storage.models import Institution

GRADTRACK = str(Path(sys.executable).with_name("gradtrack"))
STRONG_KEY = "secret-key-test-of-at-least-32-characters-long"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The process environment without any of the caller's bot settings, plus `values`."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "WEBHOOK_", "SECRET_", "DATABASE_", "PUBLIC_"))
    }
    return clean | {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"} | values


@pytest.mark.parametrize(
    "command",
    [["run"], ["serve"], ["news", "dispatch"], ["import", "roster.csv", "--dry-run"]],
    ids=["run", "serve", "news-dispatch", "import"],
)
@pytest.mark.parametrize("key", [None, "too-short-key-31-characters-xxx"], ids=["none", "short"])
def test_a_real_token_without_a_strong_secret_key_is_refused(
    tmp_path: Path, command: list[str], key: str | None
) -> None:
    (tmp_path / "roster.csv").write_text(
        "student_ref,name,school,programme,graduation_date\n1,Ann,alfa,P1,2026-06-30\n"
    )
    env = _env(
        tmp_path,
        TELEGRAM_BOT_TOKEN="123:abc",
        # Nothing listens there: a process that got past the check could reach no one.
        TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{_free_port()}/bot",
        PUBLIC_URL="https://gradtrack.invalid",
        HOST="127.0.0.1",
        PORT=str(_free_port()),
    )
    if key is not None:
        assert len(key) == 31
        env["SECRET_KEY"] = key
    done = subprocess.run(
        [GRADTRACK, *command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SECRET_KEY" in done.stderr and "at least 32 characters" in done.stderr
    assert MAKE_SECRET_KEY in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "123:abc" not in done.stdout + done.stderr
    assert not (tmp_path / "db.sqlite3").exists()  # refused before touching the database


def test_the_sandbox_keeps_its_development_key_and_a_token_needs_a_real_one() -> None:
    assert Settings(_env_file=None, telegram_bot_token="").key == DEVELOPMENT_KEY.encode()
    real = Settings(_env_file=None, telegram_bot_token="123:abc")
    with pytest.raises(SecretKeyMissing):
        _ = real.key
    strong = Settings(_env_file=None, telegram_bot_token="123:abc", secret_key=STRONG_KEY)
    assert strong.key == STRONG_KEY.encode()


async def _run_until(tmp_path: Path, env: dict[str, str], needle: str) -> list[str]:
    """`gradtrack run` until it prints `needle`; then SIGTERM, and a clean exit."""
    process = await asyncio.create_subprocess_exec(
        GRADTRACK,
        "run",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []
    assert process.stdout is not None
    try:
        async with asyncio.timeout(90):
            async for raw in process.stdout:
                lines.append(raw.decode(errors="replace").rstrip())
                if needle in lines[-1]:
                    break
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            rest, _ = await asyncio.wait_for(process.communicate(), 90)
        except TimeoutError:
            process.kill()
            rest, _ = await process.communicate()
            lines.append("(still running 90 s after SIGTERM: killed)")
        lines.extend(rest.decode(errors="replace").splitlines())
    assert any(needle in line for line in lines), "\n".join(lines[-30:])
    assert process.returncode == 0, "\n".join(lines[-30:])
    # A graceful stop logs no error (a job cut inside a transaction did: test_graceful_exit).
    assert not [line for line in lines if "ERROR" in line or "Traceback" in line], "\n".join(
        lines[-30:]
    )
    return lines


async def _demo_schools(url: str) -> int:
    db = Database(url)
    try:
        async with db.session() as session:
            rows = await session.exec(
                select(Institution).where(Institution.code == DEMO_SCHOOL_CODE)
            )
            return len(rows.all())
    finally:
        await db.dispose()


async def test_the_sandbox_runs_without_a_secret_key(tmp_path: Path) -> None:
    """`make run` on a fresh checkout: no secret key, and the database's folder (var/) not
    made yet."""
    env = _env(tmp_path, SANDBOX_PORT=str(_free_port()), PORT=str(_free_port()), HOST="127.0.0.1")
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'gradtrack.sqlite3'}"
    lines = await _run_until(tmp_path, env, "Press Ctrl+C to stop.")
    assert any("using the built-in Telegram sandbox" in line for line in lines)
    assert await _demo_schools(env["DATABASE_URL"]) == 1  # the sandbox has its demo school


async def test_run_with_a_real_token_seeds_no_demo_school(tmp_path: Path) -> None:
    sandbox = SandboxServer(rate_limits=RateLimits(enabled=False), host="127.0.0.1", port=0)
    await sandbox.start()
    try:
        token = sandbox.create_bot(username="gradtrack_real_bot", first_name="GradTrack")
        env = _env(
            tmp_path,
            TELEGRAM_BOT_TOKEN=token,
            TELEGRAM_API_BASE_URL=f"{sandbox.url}/bot",
            SECRET_KEY=STRONG_KEY,
            HOST="127.0.0.1",
            PORT=str(_free_port()),
        )
        lines = await _run_until(tmp_path, env, "Press Ctrl+C to stop.")
    finally:
        await sandbox.stop()
    assert any("gradtrack is running as @gradtrack_real_bot" in line for line in lines)
    assert not any("demo" in line.lower() for line in lines), "\n".join(lines)
    assert await _demo_schools(env["DATABASE_URL"]) == 0
