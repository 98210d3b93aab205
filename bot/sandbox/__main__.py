"""`python -m bot.sandbox`: run the sandbox on its own and print how to reach it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

from .ratelimit import RateLimits
from .server import SandboxServer


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sandbox",
        description="A local Telegram Bot API server with virtual users and a web chat.",
    )
    parser.add_argument("--host", default=os.environ.get("SANDBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", "8081")))
    parser.add_argument("--username", default="gradtrack_bot", help="the bot's @username")
    parser.add_argument("--name", default="GradTrack", help="the bot's first name")
    parser.add_argument("--token", default=None, help="use this bot token (123:ABC...)")
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="switch Telegram's flood limits off"
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    limits = RateLimits(enabled=not args.no_rate_limits)
    sandbox = SandboxServer(host=args.host, port=args.port, rate_limits=limits)
    url = await sandbox.start()
    token = sandbox.create_bot(args.username, args.name, token=args.token)
    print(f"Sandbox Bot API : {url}/bot  (python-telegram-bot: .base_url('{url}/bot'))")
    print(f"Bot token       : {token}")
    print(f"Bot             : @{args.username}")
    print(f"Web chat        : {url}/chat")
    print(f"Deep link       : {url}/chat?start=PAYLOAD")
    print("Ctrl+C stops it.", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await sandbox.stop()


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
