"""Shared fixtures: real databases (SQLite and PostgreSQL) and the bot against the sandbox."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web as aioweb
from playwright.async_api import Browser, async_playwright

from bot.app import ALLOWED_UPDATES
from bot.sandbox import RateLimits, SandboxServer
from bot.settings import Settings
from bot.web.server import WEBHOOK_PATH, build_web_app, web_runner, webhook_secret
from storage.db import Database
from tests.databases import PostgresProvider, SqliteProvider, find_postgres, in_ci
from tests.harness import Harness, Webhook

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def sqlite_provider(tmp_path_factory: pytest.TempPathFactory) -> SqliteProvider:
    return SqliteProvider(tmp_path_factory.mktemp("sqlite"))


@pytest.fixture(scope="session")
def postgres_provider() -> Iterator[PostgresProvider | str]:
    """The PostgreSQL provider, or the reason there is none (looked up once per session)."""
    result = asyncio.run(find_postgres())
    yield result
    if isinstance(result, PostgresProvider):
        asyncio.run(result.close())


def backend_provider(
    request: pytest.FixtureRequest,
    sqlite_provider: SqliteProvider,
    postgres_provider: PostgresProvider | str,
) -> SqliteProvider | PostgresProvider:
    if request.param == "sqlite":
        return sqlite_provider
    if isinstance(postgres_provider, str):
        if in_ci():
            pytest.fail(f"CI needs PostgreSQL: {postgres_provider}")
        pytest.skip(f"PostgreSQL runs skipped: {postgres_provider}")
    return postgres_provider


@pytest.fixture(params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest,
    sqlite_provider: SqliteProvider,
    postgres_provider: PostgresProvider | str,
) -> AsyncIterator[str]:
    """A fresh, migrated database on each backend."""
    provider = backend_provider(request, sqlite_provider, postgres_provider)
    url = await provider.fresh_database()
    yield url
    if isinstance(provider, PostgresProvider):
        await provider.drop(url)


@pytest.fixture(params=BACKENDS)
async def empty_database_url(
    request: pytest.FixtureRequest,
    sqlite_provider: SqliteProvider,
    postgres_provider: PostgresProvider | str,
) -> AsyncIterator[str]:
    """A fresh database with no tables, on each backend (for migration tests)."""
    provider = backend_provider(request, sqlite_provider, postgres_provider)
    url = await provider.empty_database()
    yield url
    if isinstance(provider, PostgresProvider):
        await provider.drop(url)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
def huge_bad_roster_xlsx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 300,000-row .xlsx of bad rows made with openpyxl (built once per session)."""
    from tests.rosterfiles import huge_bad_roster

    return huge_bad_roster(tmp_path_factory.mktemp("rosters") / "klas 4b.xlsx")


@pytest.fixture
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    server = SandboxServer(rate_limits=RateLimits(enabled=False), host="127.0.0.1", port=0)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The harness's settings. Flood control is off: simulated graduates answer as fast as
    the bot does (tests/test_hostile.py turns it on)."""
    return Settings(
        database_url=database_url, telegram_bot_token="", throttle_per_second=0, _env_file=None
    )


@pytest.fixture
async def harness(
    sandbox: SandboxServer, db: Database, settings: Settings
) -> AsyncIterator[Harness]:
    h = Harness(sandbox, db, settings)
    await h.start_bot()
    yield h
    await h.stop_bot()


@pytest.fixture
async def web(harness: Harness) -> str:
    """The dashboard (the service's web app) served for `harness`'s bot; its base URL."""
    return await harness.start_web()


# ---------------------------------------------------------------- a real browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium_path() -> str:
    """Debian's Chromium (`make test` installs it); missing: skipped, or failed in CI."""
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    """Headless Chromium driven by Playwright (nothing downloaded: the system's browser)."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest.fixture
async def webhook(harness: Harness) -> AsyncIterator[Webhook]:
    app = harness.app
    assert app is not None and app.updater is not None
    await app.updater.stop()
    secret = webhook_secret("", harness.token)
    runner = web_runner(build_web_app(app, harness.db, secret))
    await runner.setup()
    await aioweb.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}{WEBHOOK_PATH}"
    await app.bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)
    try:
        async with aiohttp.ClientSession() as session:
            yield Webhook(url, secret, session)
    finally:
        await app.bot.delete_webhook()
        await runner.cleanup()
