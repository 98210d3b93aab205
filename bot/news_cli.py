"""`gradtrack news`: compose, schedule, send and cancel alumni news from the command line.

    gradtrack news send --school alfa --text "<b>Open day</b> on 12 March" \\
        [--text-in nl "<b>Open dag</b> op 12 maart"] [--programme ICT4] [--year 2026] \\
        [--language nl] [--link https://… "More"] [--at "2026-12-01 10:00"] [--dry-run]
    gradtrack news dispatch [--concurrency 4]   # send what is due now, then exit
                                                # (SIGTERM: stop, unsent news pending again)
    gradtrack news list [--school alfa]
    gradtrack news cancel ID

Only the argument parser is imported with the module (`gradtrack --help` stays quick); each
command imports the database layer it needs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from bot.settings import Settings
    from storage.db import Database

TIME_FORMATS = ("%Y-%m-%d %H:%M", "%d-%m-%Y %H:%M", "%d/%m/%Y %H:%M", "%d.%m.%Y %H:%M")


def add_news_parser(sub: Any) -> None:
    parser = sub.add_parser("news", help="alumni news: send, dispatch, list, cancel")
    actions = parser.add_subparsers(dest="action", required=True)
    send = actions.add_parser("send", help="compose and schedule news to a segment")
    send.add_argument("--school", required=True, help="school code")
    send.add_argument(
        "--text",
        required=True,
        help="text in the school's language (Telegram's HTML: b, i, u, s, a, code, pre, "
        "blockquote, tg-spoiler; &lt; &amp; for the signs)",
    )
    send.add_argument(
        "--text-in",
        nargs=2,
        action="append",
        default=[],
        metavar=("LANG", "TEXT"),
        help="a version in another language",
    )
    send.add_argument("--programme", action="append", default=[], help="programme code")
    send.add_argument("--year", type=int, action="append", default=[], help="graduation year")
    send.add_argument("--language", action="append", default=[], help="graduates' language")
    send.add_argument(
        "--wave", help="with --not-responded: graduates invited to this wave (its code)"
    )
    send.add_argument(
        "--not-responded",
        action="store_true",
        help="with --wave: only those who have not answered that wave yet",
    )
    send.add_argument("--link", nargs=2, metavar=("URL", "LABEL"))
    send.add_argument("--at", help="local time of the school, e.g. '2026-12-01 10:00'")
    send.add_argument(
        "--dry-run",
        action="store_true",
        help="check everything and count the recipients; save nothing",
    )
    dispatch = actions.add_parser("dispatch", help="send the news that is due, then exit")
    dispatch.add_argument("--concurrency", type=int, default=4)
    listing = actions.add_parser("list", help="the latest broadcasts and their reports")
    listing.add_argument("--school")
    cancel = actions.add_parser("cancel", help="stop a scheduled or running broadcast")
    cancel.add_argument("id", type=int)


def parse_local_time(text: str, timezone: str) -> datetime | None:
    for fmt in TIME_FORMATS:
        try:
            local = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        return local.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)
    return None


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _known_waves(settings: Settings) -> dict[str, str]:
    """Every wave code of the wave plans and its name."""
    from pathlib import Path

    from bot.reporting import wave_labels
    from conversations.waves import DEFAULT_PLAN_FILE, load_plans

    path = Path(settings.waves_file) if settings.waves_file else DEFAULT_PLAN_FILE
    return wave_labels(load_plans(path))


def check_texts(texts: dict[str, str]) -> str | None:
    """The first problem of the news texts (Telegram's HTML, its length), or None."""
    from conversations.news_html import NewsHtmlError, check_news_html

    for lang, text in texts.items():
        try:
            plain = check_news_html(text)
        except NewsHtmlError as error:
            return f"the {lang} text: {error}"
        if len(plain) > 4096:
            return f"the {lang} text is longer than Telegram's 4,096 characters"
    return None


async def _send(settings: Settings, db: Database, args: argparse.Namespace) -> int:
    from sqlmodel import select

    from conversations.rules import LANGUAGES
    from storage import news
    from storage.models import Broadcast, Institution, Programme

    if args.wave and not args.not_responded:
        return _fail(
            "--wave needs --not-responded: news goes to the graduates invited to that wave "
            "who have not answered it yet"
        )
    if args.not_responded and not args.wave:
        return _fail("--not-responded needs --wave: which wave have they not answered?")
    if args.wave:
        known = _known_waves(settings)
        if args.wave not in known:
            listed = ", ".join(f"{code} ({label})" for code, label in known.items())
            return _fail(f"unknown wave {args.wave!r}; the waves are: {listed}")
    async with db.session() as session:
        school = (
            await session.exec(select(Institution).where(Institution.code == args.school.lower()))
        ).first()
        if school is None or school.id is None:
            return _fail(f"unknown school {args.school!r}")
        programmes = (
            await session.exec(select(Programme).where(Programme.institution_id == school.id))
        ).all()
        by_code = {p.code.lower(): p.id for p in programmes}
        unknown = [code for code in args.programme if code.lower() not in by_code]
        if unknown:
            return _fail(f"unknown programme(s) of {school.code}: {', '.join(unknown)}")
        texts = {school.default_language: args.text}
        for lang, text in args.text_in:
            if lang not in LANGUAGES:
                return _fail(f"language {lang!r} is not one of {', '.join(LANGUAGES)}")
            texts[lang] = text
        problem = check_texts(texts)
        if problem:
            return _fail(problem)
        try:
            audience = news.Audience(
                institution_ids=(school.id,),
                programme_ids=tuple(by_code[c.lower()] or 0 for c in args.programme),
                graduation_years=tuple(args.year),
                languages=tuple(args.language),
                wave=args.wave,
                wave_status="not_responded" if args.not_responded else None,
            )
        except news.AudienceError as error:
            return _fail(str(error))
        due = datetime.now(UTC)
        if args.at:
            parsed = parse_local_time(args.at, school.timezone)
            if parsed is None:
                return _fail("--at must look like 2026-12-01 10:00 (the school's local time)")
            if parsed < due:
                return _fail("--at is in the past")
            due = parsed
        count = await news.count_audience(session, audience)
        if args.dry_run:
            print(f"the news is valid; {count} graduates would receive it (nothing was saved)")
            return 0
        broadcast = Broadcast(
            institution_id=school.id,
            texts=texts,
            default_language=school.default_language,
            link_url=args.link[0] if args.link else None,
            link_labels={school.default_language: args.link[1]} if args.link else {},
            filter=audience.to_filter(),
        )
        session.add(broadcast)
        await session.flush()
        await news.schedule(session, broadcast, due)
    when = "now" if not args.at else f"at {args.at} ({school.timezone})"
    print(f"news #{broadcast.id} scheduled {when} for {count} graduates")
    return 0


async def _dispatch(settings: Settings, db: Database, args: argparse.Namespace) -> int:
    from bot.app import build_application
    from bot.claims import STOP_WAIT_SECONDS
    from bot.news import dispatch_news

    if not settings.telegram_bot_token:
        return _fail("TELEGRAM_BOT_TOKEN is required to send news")
    application = build_application(settings, db)
    await application.initialize()
    rt = application.bot_data["gradtrack"]
    sending = asyncio.ensure_future(dispatch_news(rt, concurrency=args.concurrency))
    loop = asyncio.get_running_loop()

    def stop() -> None:  # SIGTERM or Ctrl+C: finish what is in flight, give back the rest
        if not rt.stopping:
            rt.stopping = True  # asked first (bot/claims.py); forced after the grace
            loop.call_later(STOP_WAIT_SECONDS, sending.cancel)

    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)
    report = None
    try:
        report = await sending
    except asyncio.CancelledError:
        if not rt.stopping:
            raise
    finally:
        for sig in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
        await application.shutdown()
    if rt.stopping or report is None:
        print("stopped: the news not sent yet is pending again; dispatch again to send it")
        return 1
    print(
        f"sent {report.sent}, blocked {report.blocked}, failed {report.failed}, "
        f"retried later {report.retried}, skipped {report.skipped}"
    )
    return 0


async def _list(db: Database, args: argparse.Namespace) -> int:
    from sqlmodel import col, select

    from storage import news
    from storage.models import Broadcast, Institution

    async with db.session() as session:
        query = select(Broadcast).order_by(col(Broadcast.id).desc()).limit(20)
        if args.school:
            school = (
                await session.exec(select(Institution).where(Institution.code == args.school))
            ).first()
            query = query.where(Broadcast.institution_id == (school.id if school else -1))
        found = (await session.exec(query)).all()
        reasons = await news.failure_reasons(session, [b.id for b in found if b.id])
        for b in found:
            due = b.due_at.isoformat(timespec="minutes") if b.due_at else "-"
            why = reasons.get(b.id or 0)
            failed = f"{b.failed} ({news.reasons_text(why)})" if why else str(b.failed)
            print(
                f"#{b.id} {b.status:9} due {due} recipients {b.total} sent {b.sent} "
                f"blocked {b.blocked} failed {failed} pending {news.pending_count(b)} "
                f"cancelled {b.cancelled}"
            )
    return 0


async def cmd_news(settings: Settings, args: argparse.Namespace) -> int:
    from storage import news
    from storage.db import Database
    from storage.migrate import upgrade

    await upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        if args.action == "send":
            return await _send(settings, db, args)
        if args.action == "dispatch":
            return await _dispatch(settings, db, args)
        if args.action == "list":
            return await _list(db, args)
        try:
            broadcast = await news.cancel(db, args.id, datetime.now(UTC))
        except news.AudienceError as error:
            return _fail(str(error))
        print(f"news #{broadcast.id} is {broadcast.status}; {broadcast.sent} were sent")
        return 0
    finally:
        await db.dispose()
