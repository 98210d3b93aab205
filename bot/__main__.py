"""`gradtrack` command line: run, serve, migrate, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bot.settings import Settings, get_settings
from storage.db import Database
from storage.migrate import upgrade

log = logging.getLogger("gradtrack")


@dataclass
class RunningBot:
    application: Any
    token: str
    sandbox_url: str | None


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def _wait_for_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def cmd_migrate(settings: Settings) -> int:
    await upgrade(settings.database_url)
    print("database is up to date")
    return 0


async def cmd_demo(settings: Settings) -> int:
    from bot.links import start_link
    from storage.demo import ensure_demo

    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        demo = await ensure_demo(db)
    finally:
        await db.dispose()
    username = settings.bot_username or "your_bot"
    print(f"demo invite:      {start_link(username, demo.invite_token)}")
    print(f"demo school link: {start_link(username, 's_' + demo.school_code)}")
    return 0


@asynccontextmanager
async def _running_bot(settings: Settings, db: Database) -> AsyncIterator[RunningBot]:
    """The started bot: against Telegram with a token, else against the built-in sandbox."""
    from bot.app import build_application, on_startup
    from bot.sandbox import SandboxServer

    sandbox: SandboxServer | None = None
    if settings.uses_sandbox:
        sandbox = SandboxServer(host=settings.sandbox_host, port=settings.sandbox_port)
        await sandbox.start()
        token = sandbox.create_bot(username="gradtrack_demo_bot", first_name="GradTrack")
        application = build_application(settings, db, token=token, base_url=f"{sandbox.url}/bot")
    else:
        token = settings.telegram_bot_token
        application = build_application(settings, db)
    try:
        async with application:
            await application.start()
            try:
                await on_startup(application)
                yield RunningBot(application, token, sandbox.url if sandbox else None)
            finally:
                if application.updater is not None and application.updater.running:
                    await application.updater.stop()
                await application.stop()
    finally:
        if sandbox is not None:
            await sandbox.stop()


async def cmd_run(settings: Settings) -> int:
    """Long polling (development and the sandbox)."""
    from bot.app import ALLOWED_UPDATES
    from bot.links import sandbox_chat_link, start_link
    from storage.demo import ensure_demo

    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        demo = await ensure_demo(db)
        async with _running_bot(settings, db) as running:
            updater = running.application.updater
            assert updater is not None
            await updater.start_polling(allowed_updates=ALLOWED_UPDATES)
            username = running.application.bot.username
            print()
            print(f"gradtrack is running as @{username} (database: {db.dialect})")
            if running.sandbox_url:
                token, url = running.token, running.sandbox_url
                print("No TELEGRAM_BOT_TOKEN: using the built-in Telegram sandbox.")
                invite = sandbox_chat_link(url, token, demo.invite_token)
                school = sandbox_chat_link(url, token, "s_" + demo.school_code)
                print(f"  Web chat, as a new graduate:  {invite}")
                print(f"  Self-registration (school):   {school}")
            else:
                print(f"  Demo invite:       {start_link(username, demo.invite_token)}")
                print(f"  Demo school link:  {start_link(username, 's_' + demo.school_code)}")
            print("Press Ctrl+C to stop.", flush=True)
            await _wait_for_stop()
    finally:
        await db.dispose()
    return 0


async def cmd_serve(settings: Settings) -> int:
    """Webhook mode: one aiohttp server on $PORT. Without a token, the sandbox delivers."""
    from aiohttp import web

    from bot.app import ALLOWED_UPDATES
    from bot.web.server import WEBHOOK_PATH, build_web_app, webhook_secret

    if not settings.uses_sandbox and not settings.public_url:
        print("PUBLIC_URL is required for `gradtrack serve` with a real bot token.")
        return 2
    public_url = settings.public_url or f"http://127.0.0.1:{settings.port}"
    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        async with _running_bot(settings, db) as running:
            secret = webhook_secret(settings.webhook_secret, running.token)
            runner = web.AppRunner(build_web_app(running.application, db, secret))
            await runner.setup()
            try:
                await web.TCPSite(runner, settings.host, settings.port).start()
                await running.application.bot.set_webhook(
                    url=public_url.rstrip("/") + WEBHOOK_PATH,
                    secret_token=secret,
                    allowed_updates=ALLOWED_UPDATES,
                )
                print(f"gradtrack serving on {settings.host}:{settings.port}", flush=True)
                await _wait_for_stop()
            finally:
                await runner.cleanup()
    finally:
        await db.dispose()
    return 0


def cmd_questionnaire(args: argparse.Namespace) -> int:
    """check / export / import questionnaire files (no database needed)."""
    from conversations.questionnaire import QuestionnaireError, load_questionnaire
    from conversations.xlsform import export_xlsx, import_xlsx, load_xlsx

    try:
        if args.action == "check":
            for path in args.files:
                q = load_xlsx(path) if str(path).endswith(".xlsx") else load_questionnaire(path)
                asked = sum(1 for question in q.questions if question.answerable)
                print(
                    f"{path}: {q.form_id} version {q.version}, {asked} questions, "
                    f"languages {', '.join(q.languages)}: OK"
                )
        elif args.action == "export":
            export_xlsx(load_questionnaire(args.source), args.target)
            print(f"wrote {args.target}")
        else:
            warnings: list[str] = []
            text = import_xlsx(args.source, warnings=warnings)
            for warning in warnings:
                print(f"warning: {warning}", file=sys.stderr)
            with open(args.target, "w", encoding="utf-8") as fh:
                fh.write(text)
            print(f"wrote {args.target}")
    except QuestionnaireError as error:
        print(error, file=sys.stderr)
        return 1
    except OSError as error:
        print(f"{error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradtrack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the bot with long polling (sandbox without a token)")
    sub.add_parser("serve", help="serve the webhook and health checks on $PORT")
    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser("demo", help="seed the demo school and print a fresh demo invite link")
    questionnaire = sub.add_parser("questionnaire", help="check, export or import questionnaires")
    actions = questionnaire.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="validate YAML or XLSForm files")
    check.add_argument("files", nargs="+")
    export = actions.add_parser("export", help="write a questionnaire as an XLSForm .xlsx")
    export.add_argument("source", help="questionnaire YAML")
    export.add_argument("target", help="spreadsheet to write (.xlsx)")
    imp = actions.add_parser("import", help="read an XLSForm .xlsx into questionnaire YAML")
    imp.add_argument("source", help="spreadsheet (.xlsx)")
    imp.add_argument("target", help="YAML to write")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "questionnaire":
        return cmd_questionnaire(args)
    settings = get_settings()
    _setup_logging(settings)
    commands = {"run": cmd_run, "serve": cmd_serve, "migrate": cmd_migrate, "demo": cmd_demo}
    try:
        return asyncio.run(commands[args.command](settings))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
