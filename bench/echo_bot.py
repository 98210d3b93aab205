"""A minimal python-telegram-bot echo bot: the yardstick of bench/updates_bench.py.

One `MessageHandler(filters.TEXT, echo)` answering every text with the same text, nothing
else: no database, no state. Built like gradtrack's bot where it matters for a fair
comparison: the same python-telegram-bot, the same default HTTP transport and sequential
update processing, AIORateLimiter(max_retries=3) only if asked (as gradtrack ships it); in
webhook mode an aiohttp route that checks the secret header and queues the update, as
`gradtrack serve` does.

    .venv/bin/python -m bench.echo_bot --token TOKEN --base-url http://127.0.0.1:8081/bot
        [--webhook-port 8090] [--rate-limiter]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import signal
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.ext import AIORateLimiter, Application, ContextTypes, MessageHandler, filters

WEBHOOK_PATH = "/telegram/webhook"
SECRET = "echo-bench-secret"


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is not None and message.text:
        await message.reply_text(message.text)


def build(
    token: str, base_url: str, *, rate_limiter: bool = False
) -> Application[Any, Any, Any, Any, Any, Any]:
    builder = Application.builder().token(token).base_url(base_url)
    if rate_limiter:
        limiter: Any = AIORateLimiter(max_retries=3)
        builder = builder.rate_limiter(limiter)
    application = builder.build()
    application.add_handler(MessageHandler(filters.TEXT, echo))
    return application


async def serve_webhook(application: Application[Any, Any, Any, Any, Any, Any], port: int) -> None:
    """Webhook mode: an aiohttp route that checks the secret and processes the update before
    answering, as gradtrack's route does."""

    async def webhook(request: web.Request) -> web.Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not hmac.compare_digest(given.encode(), SECRET.encode()):
            return web.Response(status=403)
        update = Update.de_json(await request.json(), application.bot)
        await application.process_update(update)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post(WEBHOOK_PATH, webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with application:
            await application.start()
            await application.bot.set_webhook(
                f"http://127.0.0.1:{port}{WEBHOOK_PATH}",
                secret_token=SECRET,
                allowed_updates=[Update.MESSAGE],
            )
            await stop.wait()
            await application.stop()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--token", required=True)
    parser.add_argument("--base-url", required=True, help="Bot API base, e.g. .../bot")
    parser.add_argument("--webhook-port", type=int, default=0, help="0: long polling")
    parser.add_argument("--rate-limiter", action="store_true", help="AIORateLimiter as gradtrack")
    args = parser.parse_args(argv)
    application = build(args.token, args.base_url, rate_limiter=args.rate_limiter)
    if args.webhook_port:
        asyncio.run(serve_webhook(application, args.webhook_port))
    else:
        application.run_polling(allowed_updates=[Update.MESSAGE])


if __name__ == "__main__":
    main()
