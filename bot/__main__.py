"""`gradtrack` command line: run, serve, migrate, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import runner
from bot.news_cli import add_news_parser

if TYPE_CHECKING:
    from bot.settings import Settings
    from storage.db import Database
    from storage.models import Institution

# Everything heavier than the argument parser (the database layer, python-telegram-bot,
# aiohttp) is imported by the command that needs it: `gradtrack --help` answers at once.

log = logging.getLogger("gradtrack")
SANDBOX_BOT_USERNAME = "gradtrack_demo_bot"


async def upgrade(database_url: str) -> None:
    """Bring the schema up to date (Alembic), as every command that opens the database does."""
    from storage.migrate import upgrade as alembic_upgrade

    await alembic_upgrade(database_url)


#: storage.models.StaffRole's values (not imported: `--help` loads no database library;
#: tests/test_roles.py checks that they are the same).
STAFF_ROLES = ("officer", "admin", "programme", "researcher", "regional")


def open_database(settings: Settings) -> Database:
    from storage.db import Database

    return Database(settings.database_url)


@dataclass
class RunningBot:
    application: Any
    token: str
    sandbox_url: str | None


def _setup_logging(settings: Settings) -> None:
    """LOG_LEVEL and LOG_FORMAT (text or json) on stderr; bot tokens never written (bot.logs)."""
    from bot import logs

    logs.setup(
        settings.log_level,
        settings.log_format,
        secrets=(settings.telegram_bot_token, settings.webhook_secret, settings.secret_key),
    )


def _stop_on_signal() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM. Made before the process says it is ready, so that
    a signal right after that line stops it cleanly instead of killing it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


class AlreadyRunning(Exception):
    """Another `gradtrack run` or `serve` holds the SQLite database."""


@contextlib.contextmanager
def _sole_process(database_url: str) -> Iterator[None]:
    """On SQLite, hold an exclusive lock on `<database>.lock` for as long as this process
    runs the bot: SQLite is one process (the scheduler leader is always this process, and
    two writers would wait on each other), so a second `gradtrack run` or `serve` on the
    same file is refused. The lock is the kernel's (flock): it goes with the process, even
    on SIGKILL. Other commands (migrate, import, news ...) take no lock. PostgreSQL: no lock,
    several processes share the database (bot/leader.py)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    path = url.database or ""
    if url.get_backend_name() != "sqlite" or path in ("", ":memory:") or "memory" in str(url):
        yield
        return
    import fcntl

    lock_path = Path(f"{path}.lock").resolve()
    lock_path.parent.mkdir(parents=True, exist_ok=True)  # a fresh checkout has no var/ yet
    with open(lock_path, "a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise AlreadyRunning(
                f"another gradtrack process (pid {holder}) is running the bot on the SQLite "
                f"database {Path(path).resolve()}: SQLite is one process. Stop it first "
                "(or use PostgreSQL to run several processes)."
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _plans(settings: Settings) -> Any:
    """The wave plans of WAVES_FILE (conversations.waves.WavePlans)."""
    from pathlib import Path

    from conversations.waves import DEFAULT_PLAN_FILE, load_plans

    return load_plans(Path(settings.waves_file) if settings.waves_file else DEFAULT_PLAN_FILE)


async def cmd_migrate(settings: Settings) -> int:
    await upgrade(settings.database_url)
    print("database is up to date")
    return 0


async def cmd_demo(settings: Settings) -> int:
    from bot.links import chat_link
    from storage.demo import ensure_demo

    await upgrade(settings.database_url)
    db = open_database(settings)
    try:
        demo = await ensure_demo(db, _plans(settings))
    finally:
        await db.dispose()
    invite = chat_link(settings, demo.invite_token)
    school = chat_link(settings, "s_" + demo.school_code)
    if invite is None or school is None:
        print(f"demo invite:      /start {demo.invite_token}")
        print(f"demo school link: /start s_{demo.school_code}")
        print("(set BOT_USERNAME to print them as t.me links)")
        return 0
    print(f"demo invite:      {invite}")
    print(f"demo school link: {school}")
    if settings.uses_sandbox:
        print("(links into the sandbox's web chat: they open while `gradtrack run` runs)")
    return 0


@asynccontextmanager
async def _running_bot(settings: Settings, db: Database) -> AsyncIterator[RunningBot]:
    """The started bot: against Telegram with a token, else against the built-in sandbox."""
    from bot.app import build_application, on_startup
    from bot.links import SANDBOX_BOT_USERNAME
    from bot.mail import make_mailer
    from bot.sandbox import SandboxServer
    from bot.scheduler import start_scheduler

    sandbox: SandboxServer | None = None
    if settings.uses_sandbox:
        sandbox = SandboxServer(
            host=settings.sandbox_host,
            port=settings.sandbox_port,
            state_file=settings.sandbox_state_file,
            # The sandbox page shows the mails kept in the local mailbox (no SMTP_URL).
            mailbox_dir=None if settings.smtp_url.strip() else settings.mailbox_dir,
        )
        await sandbox.start()  # with the users, chats and update numbers of the last run
        known = [b for b in sandbox.state.bots.values() if b.username == SANDBOX_BOT_USERNAME]
        token = (
            known[0].token
            if known
            else sandbox.create_bot(username=SANDBOX_BOT_USERNAME, first_name="GradTrack")
        )
        application = build_application(settings, db, token=token, base_url=f"{sandbox.url}/bot")
    else:
        token = settings.telegram_bot_token
        application = build_application(settings, db)
    rt = application.bot_data["gradtrack"]
    rt.mailer = make_mailer(settings.smtp_url, settings.mailbox_dir)  # checked by main()
    if not settings.uses_sandbox and not settings.smtp_url.strip():
        log.warning("no SMTP_URL: invitations and reminders go by Telegram only, not by e-mail")
    try:
        async with application:
            await application.start()
            scheduler = None
            try:
                await on_startup(application)
                scheduler = start_scheduler(application.bot_data["gradtrack"])
                yield RunningBot(application, token, sandbox.url if sandbox else None)
            finally:
                if scheduler is not None:
                    await scheduler.stop()
                if application.updater is not None and application.updater.running:
                    await application.updater.stop()
                await application.stop()
    finally:
        await rt.mailer.close()
        if sandbox is not None:
            await sandbox.stop()


async def cmd_run(settings: Settings) -> int:
    """Long polling (development and the sandbox)."""
    from bot.app import ALLOWED_UPDATES
    from bot.links import SANDBOX_BOT_USERNAME, sandbox_chat_link, web_chat_link
    from storage.demo import ensure_demo
    from storage.staff import create_invite
    from storage.types import utcnow

    await upgrade(settings.database_url)
    db = open_database(settings)
    try:
        # The demo school is for the sandbox; against real Telegram it is `gradtrack demo`.
        demo = (
            await ensure_demo(db, _plans(settings), email=True) if settings.uses_sandbox else None
        )
        async with _running_bot(settings, db) as running, _web(running, db, None, settings):
            updater = running.application.updater
            assert updater is not None
            await updater.start_polling(allowed_updates=ALLOWED_UPDATES)
            stop = _stop_on_signal()
            username = running.application.bot.username
            print()
            print(f"gradtrack is running as @{username} (database: {db.dialect})")
            if running.sandbox_url and demo is not None:
                url, bot = running.sandbox_url, SANDBOX_BOT_USERNAME
                staff = await create_invite(db, "admin", None, 24, utcnow())
                print("No TELEGRAM_BOT_TOKEN: using the built-in Telegram sandbox.")
                invite = sandbox_chat_link(url, bot, demo.invite_token)
                school = sandbox_chat_link(url, bot, "s_" + demo.school_code)
                admin = sandbox_chat_link(url, bot, staff.token)
                web_chat = web_chat_link(settings, demo.invite_token)
                print(f"  Telegram, as a new graduate:  {invite}")
                print(f"  Web chat (any browser):       {web_chat}")
                print("    (the same graduate: begin in one, go on in the other)")
                print(f"  Self-registration (school):   {school}")
                print(f"  Telegram, as an admin:        {admin}")
                print("    (then send /dashboard there for a dashboard login link, or /stats)")
            print(f"  Dashboard:         {settings.base_url}/dashboard (log in via /dashboard)")
            if running.sandbox_url and not settings.smtp_url.strip():
                # No SMTP server: the e-mails are kept here (with a real bot token and no
                # SMTP_URL, none are sent at all: bot.delivery.mail_enabled).
                print(f"  Local mailbox (e-mails):      {running.sandbox_url}/sandbox/mailbox")
            print("Press Ctrl+C to stop.", flush=True)
            await stop.wait()
    finally:
        await db.dispose()
    return 0


@asynccontextmanager
async def _web(
    running: RunningBot, db: Database, secret: str | None, settings: Settings
) -> AsyncIterator[None]:
    """The aiohttp server on HOST:PORT: dashboard and health checks, and in webhook mode
    (`secret` given) the webhook route.

    On exit (before the bot stops: see `cmd_serve`) the server drains: it stops listening and
    closes idle keep-alive connections, so that Telegram's new deliveries fail and are retried
    later, then waits for the requests in progress (a webhook call is answered once its update
    is processed; a dashboard export is cancelled after 20 s)."""
    from aiohttp import web

    from bot.web.server import WebLimits, build_web_app, web_runner

    app = build_web_app(running.application, db, secret, limits=WebLimits.of(settings))
    runner = web_runner(app, shutdown_timeout=20.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        yield
    finally:
        await runner.cleanup()


async def cmd_serve(settings: Settings) -> int:
    """Webhook mode: one aiohttp server on $PORT. Without a token, the sandbox delivers.

    The webhook answers an update once it is processed (bot.web.server), so an update
    Telegram saw acknowledged has taken effect, whatever happens to the process afterwards.
    SIGTERM (or SIGINT) drains: the web server stops accepting requests and finishes those in
    progress (`_web`), then the bot stops. Updates Telegram could not deliver meanwhile stay
    pending there and are delivered again to the next process; an update delivered twice
    takes effect once (bot.dedupe)."""
    from bot.app import ALLOWED_UPDATES
    from bot.web.server import WEBHOOK_PATH, webhook_secret

    if not settings.uses_sandbox and not settings.public_url:
        print("PUBLIC_URL is required for `gradtrack serve` with a real bot token.")
        return 2
    public_url = settings.public_url or f"http://127.0.0.1:{settings.port}"
    await upgrade(settings.database_url)
    db = open_database(settings)
    try:
        async with _running_bot(settings, db) as running:
            secret = webhook_secret(settings.webhook_secret, running.token)
            async with _web(running, db, secret, settings):
                await running.application.bot.set_webhook(
                    url=public_url.rstrip("/") + WEBHOOK_PATH,
                    secret_token=secret,
                    allowed_updates=ALLOWED_UPDATES,
                )
                stop = _stop_on_signal()
                print(f"gradtrack serving on {settings.host}:{settings.port}", flush=True)
                await stop.wait()
                log.info("stopping: finishing the webhook calls in progress")
        log.info("stopped: every acknowledged update was processed")
    finally:
        await db.dispose()
    return 0


def cmd_questionnaire(args: argparse.Namespace) -> int:
    """check / export / import questionnaire files (no database needed)."""
    from conversations.questionnaire import QuestionnaireError, load_questionnaire
    from conversations.xlsform import export_xlsx

    try:
        if args.action == "check":
            failed = False
            for path in args.files:  # every file is checked and reported (issue 19)
                failed = _check_questionnaire(path, getattr(args, "language", None)) or failed
            return 1 if failed else 0
        elif args.action == "export":
            export_xlsx(load_questionnaire(args.source), args.target)
            print(f"wrote {args.target}")
        else:
            _import_questionnaire(args.source, args.target, args.language)
    except QuestionnaireError as error:
        print(error, file=sys.stderr)
        return 1
    except OSError as error:
        print(f"{error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


def _check_questionnaire(path: str, language: str | None) -> bool:
    """Check one questionnaire file and print what was found; True: it failed."""
    from conversations.questionnaire import QuestionnaireError, load_questionnaire
    from conversations.workbooks import is_workbook
    from conversations.xlsform import load_xlsx

    warnings: list[str] = []
    try:
        if is_workbook(path):
            q = load_xlsx(path, warnings=warnings, language=language)
        else:
            q = load_questionnaire(path)
    except QuestionnaireError as error:
        for warning in warnings:
            print(f"{path}: warning: {warning}", file=sys.stderr)
        print(error, file=sys.stderr)
        print(f"{path}: FAILED")
        return True
    except OSError as error:
        print(f"{error.filename or path}: {error.strerror}", file=sys.stderr)
        print(f"{path}: FAILED")
        return True
    for warning in warnings:
        print(f"{path}: warning: {warning}", file=sys.stderr)
    problems = _indicator_problems(q)
    for problem in problems:
        print(f"{path}: conversations/indicators.yaml: {problem}", file=sys.stderr)
    asked = sum(1 for question in q.questions if question.answerable)
    print(
        f"{path}: {q.form_id} version {q.version}, {asked} questions, "
        f"languages {', '.join(q.languages)}: " + ("indicators do not fit" if problems else "OK")
    )
    return bool(problems)


def _indicator_problems(questionnaire: Any) -> list[str]:
    """What does not fit between the questionnaire and the indicators.yaml entry of its id
    (none: it has no entry)."""
    from conversations.feedback import check_comments, check_plans, default_feedback
    from conversations.indicators import check_spec, default_specs

    spec = default_specs().get(questionnaire.form_id)
    problems = check_spec(spec, questionnaire) if spec is not None else []
    for feedback in default_feedback().values():  # comments and plans (issue 18)
        if feedback.form_id == questionnaire.form_id:
            problems += check_comments(feedback, questionnaire)
        if feedback.plan_form == questionnaire.form_id:
            problems += check_plans(feedback, questionnaire)
    return problems


def _import_questionnaire(source: str, target: str, language: str | None = None) -> None:
    """Write the spreadsheet's questionnaire as YAML to `target`. A target that already holds
    the same questionnaire is left as it is, with its comments and layout (an export and
    import round trip changes nothing); one that differs is kept beside it as `target.bak`,
    since the YAML written from a spreadsheet has no comments."""
    from pathlib import Path

    from conversations.questionnaire import QuestionnaireError, parse_questionnaire
    from conversations.xlsform import import_xlsx

    warnings: list[str] = []
    try:
        text = import_xlsx(source, warnings=warnings, language=language)
    finally:  # the warnings also when the import fails: they may explain it
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
    path = Path(target)
    if path.exists():
        old_text = path.read_text(encoding="utf-8")
        try:
            unchanged = parse_questionnaire(old_text, target) == parse_questionnaire(text, source)
        except QuestionnaireError:
            unchanged = False
        if unchanged:
            print(f"{target} already holds this questionnaire: left as it is (comments kept)")
            return
        backup = path.with_name(path.name + ".bak")
        backup.write_text(old_text, encoding="utf-8")
        print(f"the previous {target} (with its comments) is kept as {backup}")
    path.write_text(text, encoding="utf-8")
    print(f"wrote {target}")


# Schools, programmes, roster import and invitations ------------------------------------------


def _problem_out(error: Exception) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 1


def _upsert_word(created: bool, changed: tuple[str, ...]) -> str:
    if created:
        return "added"
    return f"updated ({', '.join(changed)})" if changed else "unchanged"


def print_privacy_details(settings: Settings, school: Institution) -> None:
    """What the privacy notice says about the school, as `gradtrack school show` prints it."""
    from conversations.notice import controller_name, shown_version, supervisory_authority

    authority = supervisory_authority(school.country)
    print(f"  legal name (controller): {controller_name(school)}")
    if school.privacy_contact:
        print(f"  privacy contact: {school.privacy_contact}")
    else:
        print(
            "  privacy contact: not set (the notice sends graduates to the school's office; "
            "set it with --privacy-contact)"
        )
    print(f"  DPO contact: {school.dpo_contact or 'none'}")
    print(f"  supervisory authority: {authority.name} ({authority.website})")
    print(f"  retention: {settings.retention_months} months after graduation (RETENTION_MONTHS)")
    print(f"  privacy notice version: {shown_version(settings, school)}")


async def _school_labels(db: Database, args: argparse.Namespace) -> int:
    """school label / unlabel / labels: a school's own choice labels."""
    from conversations.registry import QuestionnaireRegistry
    from storage.schools import list_choice_labels, remove_choice_label, set_choice_label

    registry = QuestionnaireRegistry()
    forms = [registry.deployed(form_id) for form_id in registry.form_ids]
    if args.action == "labels":
        labels = await list_choice_labels(db, args.code)
        if not labels:
            print(f"school {args.code} shows the questionnaires' own choice labels")
        for own in labels:
            print(f"{own.list_name}.{own.choice}  {own.language}  {own.label}")
        return 0
    if args.action == "unlabel":
        removed = await remove_choice_label(db, args.code, args.choice, args.lang, forms)
        print(
            f"removed {removed} label(s) of {args.choice}: the questionnaire's label shows again"
            if removed
            else f"school {args.code} has no own label for {args.choice}"
            + (f" in {args.lang}" if args.lang else "")
        )
        return 0
    changed = await set_choice_label(db, args.code, args.choice, args.lang, args.text, forms)
    print(f"label of {args.choice} in {args.lang} " + ("set" if changed else "unchanged"))
    return 0


async def cmd_school(settings: Settings, args: argparse.Namespace) -> int:
    """school add / set / show / list / label / unlabel / labels."""
    from bot.links import chat_link
    from storage.schools import SchoolError, get_school, list_schools, upsert_school

    await upgrade(settings.database_url)
    db = open_database(settings)
    try:
        if args.action in ("label", "unlabel", "labels"):
            return await _school_labels(db, args)
        if args.action in ("add", "set"):
            done = await upsert_school(
                db,
                args.code,
                name=args.name,
                country=args.country,
                language=args.language,
                timezone=args.timezone,
                legal_name=args.legal_name,
                privacy_contact=args.privacy_contact,
                dpo_contact=args.dpo_contact,
                must_exist=args.action == "set",
            )
            print(f"school {done.code} {_upsert_word(done.created, done.changed)}")
            return 0
        if args.action == "show":
            school = await get_school(db, args.code)
            print(f"{school.code}  {school.name}")
            print(
                f"  country {school.country}, language {school.default_language}, {school.timezone}"
            )
            print_privacy_details(settings, school)
            return 0
        schools = await list_schools(db)
    except SchoolError as error:
        return _problem_out(error)
    finally:
        await db.dispose()
    if not schools:
        print("no schools yet: add one with `gradtrack school add`")
    for s in schools:
        print(f"{s.code}  {s.name}  ({s.country}, language {s.language}, {s.timezone})")
        join = chat_link(settings, s.join_payload)
        print(f"  join payload: {s.join_payload}" + (f"  {join}" if join else ""))
        for p in s.programmes:
            level = f"EQF {p.eqf_level}" if p.eqf_level else "EQF ?"
            extra = (f", {p.field}" if p.field else "") + ("" if p.active else ", inactive")
            extra += f", ISCO {p.isco_groups}" if p.isco_groups else ""
            extra += f", {p.pathway}" if p.pathway else ""
            extra += f", {p.vet_kind}" if p.vet_kind else ""
            print(f"  - {p.code}  {p.name}  ({level}{extra})")
    return 0


async def cmd_programme(settings: Settings, args: argparse.Namespace) -> int:
    """programme add."""
    from storage.schools import SchoolError, upsert_programme

    await upgrade(settings.database_url)
    db = open_database(settings)
    try:
        done = await upsert_programme(
            db,
            args.school,
            args.code,
            name=args.name,
            eqf_level=args.eqf,
            field=args.field,
            isco_groups=args.isco,
            pathway=args.pathway,
            vet_kind=args.vet_kind,
        )
    except SchoolError as error:
        return _problem_out(error)
    finally:
        await db.dispose()
    print(
        f"programme {args.school.strip().lower()}/{done.code} "
        f"{_upsert_word(done.created, done.changed)}"
    )
    return 0


async def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """import FILE: check a roster and, without problems and --dry-run, upsert it."""
    from storage.roster import import_roster, more_problems_text

    await upgrade(settings.database_url)
    db = open_database(settings)
    try:
        result = await import_roster(
            db,
            args.file,
            school_code=args.school,
            dry_run=args.dry_run,
            ref_key=settings.key,
            limits=settings.roster_limits,
            plans=_plans(settings),
        )
    finally:
        await db.dispose()
    for problem in result.problems:
        where = f"{result.path}:{problem.line}" if problem.line else result.path
        print(f"{where}: {problem.message}")
    if result.more_problems:
        print(f"{result.path}: {more_problems_text(result.more_problems)}")
    if result.ignored_columns:
        print(f"ignored columns: {', '.join(result.ignored_columns)}")
    if args.dry_run or result.problems:
        shown = result.changes[:20]
        for change in shown:
            fields = f" ({', '.join(change.fields)})" if change.fields else ""
            who = f"{change.school}/{change.student_ref}"
            print(f"  line {change.line}: {change.action} {who}{fields}")
        if len(result.changes) > len(shown):
            print(f"  ... and {len(result.changes) - len(shown)} more")
    verb = "" if result.written else " would be"
    for programme in result.programmes:
        print(
            f"programme {programme.school}/{programme.code}{verb} updated "
            f"({', '.join(programme.fields)})"
        )
    print(
        f"{result.rows} rows: {result.created}{verb} created, {result.updated}{verb} updated, "
        f"{result.unchanged} unchanged"
    )
    if result.problems:
        print(f"{result.problem_count} problem(s): nothing was written")
        return 1
    if result.erased:
        lines = ", ".join(str(line) for line in result.erased[:20])
        print(
            f"left out {len(result.erased)} graduate(s) who had their data erased "
            f"(lines {lines}{', ...' if len(result.erased) > 20 else ''})"
        )
    print("dry run: nothing was written" if args.dry_run else "import complete")
    return 0


async def cmd_invites(settings: Settings, args: argparse.Namespace) -> int:
    """invites: per-class link CSVs and QR sheets, or revoke / renew one graduate's link."""
    import re

    from bot.links import chat_link
    from storage.invite_sheets import write_invite_files
    from storage.invites import InviteError, invite_classes, renew_invite, revoke_invite

    username = settings.bot_username.lstrip("@")
    if username and not re.fullmatch(r"[A-Za-z0-9_]{4,32}", username):
        return _problem_out(ValueError(f"BOT_USERNAME {username!r} is not a Telegram username"))
    writing = not (args.revoke or args.renew)
    if writing and chat_link(settings, "x") is None:
        return _problem_out(
            ValueError(
                "BOT_USERNAME is not set: set it to the bot's Telegram username "
                "(e.g. BOT_USERNAME=my_school_bot) to print t.me links"
            )
        )
    await upgrade(settings.database_url)
    db = open_database(settings)
    try:
        if args.revoke:
            state = await revoke_invite(db, args.revoke, school_code=args.school)
            print(f"revoked the link of {state.school_code}/{state.student_ref} {state.name}")
            return 0
        if args.renew:
            state = await renew_invite(db, args.renew, school_code=args.school)
            assert state.token is not None
            link = chat_link(settings, state.token) or state.token
            print(f"new link for {state.school_code}/{state.student_ref} {state.name}: {link}")
            return 0
        classes = await invite_classes(
            db, school_code=args.school, programme_code=args.programme, cohort=args.cohort
        )
    except InviteError as error:
        return _problem_out(error)
    finally:
        await db.dispose()
    if not classes:
        print("no graduates match")
        return 0
    write_invite_files(classes, args.out, lambda token: chat_link(settings, token) or token)
    for group in classes:
        print(
            f"{group.school_code} {group.programme_code} {group.year}: "
            f"{len(group.invited)} invitations, {len(group.connected)} already connected "
            f"-> {args.out}/{group.slug}.html, .csv"
        )
    print(f"all classes in one printable file: {args.out}/all-classes.html")
    return 0


ROSTER_COMMANDS = {
    "school": cmd_school,
    "programme": cmd_programme,
    "import": cmd_import,
    "invites": cmd_invites,
}


def _add_roster_parsers(sub: Any) -> None:
    school = sub.add_parser("school", help="add, update or list schools")
    school_actions = school.add_subparsers(dest="action", required=True)
    add = school_actions.add_parser("add", help="add a school, or update the options given")
    change = school_actions.add_parser("set", help="update the options given of a school")
    for parser in (add, change):
        parser.add_argument("code", help="join code: 2-32 characters a-z 0-9 - (link s_<code>)")
        parser.add_argument("--name")
        parser.add_argument("--country", help="ISO 3166-1 alpha-2, e.g. NL")
        parser.add_argument("--language", help="default language: nl, es, et, it or en")
        parser.add_argument("--timezone", help="IANA time zone, e.g. Europe/Amsterdam")
        parser.add_argument(
            "--legal-name", help="the controller in the privacy notice (default: --name)"
        )
        parser.add_argument(
            "--privacy-contact", help="e-mail or address for privacy questions (notice)"
        )
        parser.add_argument("--dpo-contact", help="data protection officer's contact, if any")
    show = school_actions.add_parser("show", help="a school's details and privacy notice data")
    show.add_argument("code", help="school code")
    school_actions.add_parser("list", help="schools, their programmes and join links")
    label = school_actions.add_parser(
        "label",
        help="the school's own label for a questionnaire choice (e.g. VDAB)",
        description=(
            "Show the school's graduates its own text for a choice, over the questionnaire's "
            "label and its country variant. CHOICE is LIST.CODE of the questionnaire's choices, "
            "e.g. job_search.public_employment_service. `school unlabel` removes it."
        ),
    )
    label.add_argument("code", help="school code")
    label.add_argument("choice", help="LIST.CODE, e.g. job_search.public_employment_service")
    label.add_argument("--lang", required=True, help="language of the label: nl, es, et, it, en")
    label.add_argument("text", help="the label (a phone button: keep it short)")
    unlabel = school_actions.add_parser(
        "unlabel", help="remove the school's own label for a choice (the questionnaire's shows)"
    )
    unlabel.add_argument("code", help="school code")
    unlabel.add_argument("choice", help="LIST.CODE")
    unlabel.add_argument("--lang", help="only in this language (default: in every language)")
    labels = school_actions.add_parser("labels", help="the school's own choice labels")
    labels.add_argument("code", help="school code")
    programme = sub.add_parser("programme", help="add or update a school's programmes")
    programme_actions = programme.add_subparsers(dest="action", required=True)
    padd = programme_actions.add_parser("add", help="add a programme, or update the options given")
    padd.add_argument("school", help="school code")
    padd.add_argument("code", help="programme code (the school's own)")
    padd.add_argument("--name")
    padd.add_argument("--eqf", type=int, help="EQF level 1-8")
    padd.add_argument("--field", help="field of training")
    padd.add_argument(
        "--isco",
        metavar="GROUPS",
        help="ISCO-08 major groups trained for, e.g. 5 or '5,7' (0-9; '' clears)",
    )
    padd.add_argument(
        "--pathway",
        help="school_based (BOL) or work_based (BBL, dual, apprenticeship); '' clears",
    )
    padd.add_argument("--vet-kind", help="ivet (initial) or cvet (continuing); '' clears")
    imp = sub.add_parser(
        "import",
        help="import a roster of graduates (CSV or XLSX)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "columns (any case, accents optional):\n"
            "  required: student_ref, name, school (or --school), programme (code or name),\n"
            "            graduation_date (2026-06-30, 30-06-2026, 30/06/2026, 30.06.2026)\n"
            "  optional: eqf_level, language (nl/es/et/it/en), gender (F/M/X/U...), birth_year,\n"
            "            email, mobile; of the programme: isco_groups (5;7), pathway (BOL/BBL),\n"
            "            vet_kind (IVET/CVET): set on the programme; an empty cell: no change\n"
            "Headers may be in English, Dutch, Spanish, Italian or Estonian (e.g. studentnummer,\n"
            "naam, opleiding, diplomadatum); other names are listed in storage/roster.py.\n"
            "The dashboard's roster page explains each column and offers a template (CSV or\n"
            "XLSX) with the headers in the staff member's language.\n"
            "CSV: UTF-8, comma or semicolon. XLSX: the first sheet. Any problem: nothing is\n"
            "written and the exit code is 1. Limits: ROSTER_MAX_ROWS (50,000 rows),\n"
            "ROSTER_MAX_COLUMNS, ROSTER_MAX_CELL_CHARS, UPLOAD_MAX_UNPACKED_MB."
        ),
    )
    imp.add_argument("file")
    imp.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
    imp.add_argument("--school", help="school of rows that name none (others must match)")
    inv = sub.add_parser("invites", help="write invitation QR sheets, revoke or renew links")
    inv.add_argument("--school", help="only this school")
    inv.add_argument("--programme", help="only this programme (code)")
    inv.add_argument("--cohort", type=int, help="only this graduation year")
    inv.add_argument("--out", default="invites", help="directory to write (default: invites)")
    one = inv.add_mutually_exclusive_group()
    one.add_argument("--revoke", metavar="STUDENT_REF", help="stop this graduate's link")
    one.add_argument("--renew", metavar="STUDENT_REF", help="give this graduate a new link")


def _add_staff_parser(sub: Any) -> None:
    """`gradtrack staff add|list|remove|invite`."""
    staff = sub.add_parser(
        "staff", help="officers, admins, programme teams, researchers, regional staff; invites"
    )
    roles = list(STAFF_ROLES)
    programmes_help = "a programme team's programme codes at --school, e.g. P1,P2"
    schools_help = "regional staff: their schools' codes, e.g. alfa,beta"
    actions = staff.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add a staff member, or change their role or school")
    add.add_argument("--telegram-id", type=int, required=True, help="numeric Telegram user id")
    add.add_argument("--role", required=True, choices=roles)
    add.add_argument(
        "--school",
        help="school code (officers and programme teams: required; admins, researchers: all "
        "if none)",
    )
    add.add_argument("--programmes", help=programmes_help)
    add.add_argument("--schools", help=schools_help)
    add.add_argument("--name")
    actions.add_parser("list", help="list staff members")
    remove = actions.add_parser("remove", help="remove a staff member")
    remove.add_argument("--telegram-id", type=int, required=True)
    invite = actions.add_parser("invite", help="print a one-time link that makes its opener staff")
    invite.add_argument("--role", required=True, choices=roles)
    invite.add_argument("--school", help="school code (officers and programme teams: required)")
    invite.add_argument("--programmes", help=programmes_help)
    invite.add_argument("--schools", help=schools_help)
    invite.add_argument("--hours", type=float, default=48, help="valid for (default 48)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradtrack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the bot with long polling (sandbox without a token)")
    sub.add_parser("serve", help="serve the webhook and health checks on $PORT")
    sub.add_parser("migrate", help="bring the database schema up to date")
    add_news_parser(sub)
    sub.add_parser("demo", help="seed the demo school and print a fresh demo invite link")
    questionnaire = sub.add_parser("questionnaire", help="check, export or import questionnaires")
    actions = questionnaire.add_subparsers(dest="action", required=True)
    check = actions.add_parser("check", help="validate YAML or XLSForm files")
    check.add_argument("files", nargs="+")
    check.add_argument("--language", help=_LANGUAGE_HELP)
    export = actions.add_parser("export", help="write a questionnaire as an XLSForm .xlsx")
    export.add_argument("source", help="questionnaire YAML")
    export.add_argument("target", help="spreadsheet to write (.xlsx)")
    imp = actions.add_parser("import", help="read an XLSForm .xlsx into questionnaire YAML")
    imp.add_argument("source", help="spreadsheet (.xlsx)")
    imp.add_argument("target", help="YAML to write")
    imp.add_argument("--language", help=_LANGUAGE_HELP)
    _add_roster_parsers(sub)
    _add_staff_parser(sub)
    return parser


_LANGUAGE_HELP = (
    "the language of bare label/hint/form_title columns when the settings sheet names no "
    "default_language (en, nl, es, et, it)"
)


def needs_secret_key(args: argparse.Namespace) -> bool:
    """The commands that, with a real bot token, refuse to start without a SECRET_KEY: those
    that talk to Telegram (`run`, `serve`, `news dispatch`) and `import`, whose keyed hashes
    of erased student numbers must match the ones the service writes."""
    if args.command in ("run", "serve", "import"):
        return True
    return args.command == "news" and args.action == "dispatch"


def mail_problem(settings: Settings) -> str | None:
    """Why SMTP_URL or MAIL_FROM cannot be used (bot.mail.MailConfigError), or None. `run`
    and `serve` refuse to start with one, rather than fail at the first invitation."""
    from bot.mail import MailConfigError, parse_smtp_url, sender_for

    try:
        if settings.smtp_url.strip():
            parse_smtp_url(settings.smtp_url)
        sender_for(settings.smtp_url, settings.mail_from)
    except MailConfigError as error:
        return str(error)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "questionnaire":
        return cmd_questionnaire(args)
    from bot.settings import get_settings

    settings = get_settings()
    problem = settings.secret_key_problem
    if problem is not None and needs_secret_key(args):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.command in ("run", "serve"):
        mail = mail_problem(settings)
        if mail is not None:
            print(f"error: {mail}", file=sys.stderr)
            return 2
    _setup_logging(settings)
    if args.command == "news":
        from bot.news_cli import cmd_news

        return runner.run(cmd_news(settings, args))
    if args.command == "staff":
        from conversations.staff import cmd_staff

        return runner.run(cmd_staff(settings, args))
    if args.command in ROSTER_COMMANDS:
        return runner.run(ROSTER_COMMANDS[args.command](settings, args))
    commands = {"run": cmd_run, "serve": cmd_serve, "migrate": cmd_migrate, "demo": cmd_demo}
    sole = args.command in ("run", "serve")
    try:
        with _sole_process(settings.database_url) if sole else contextlib.nullcontext():
            return runner.run(commands[args.command](settings))
    except AlreadyRunning as refused:
        print(f"error: {refused}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def entry() -> int:
    """The `gradtrack` command: `main`, and a process that always ends (bot.runner)."""
    return runner.finish(main())


if __name__ == "__main__":
    sys.exit(entry())
