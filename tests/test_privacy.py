"""Privacy (issue 8): an erased graduate leaves no personal data in any table, log or export,
and exports never hold chat ids or tokens. On SQLite and PostgreSQL, through the sandbox.

One flow, walked by every test here (`run_flow`):

- a school, and an admin of it who joins through a staff invitation link (`/start t_...`);
- graduate A (erased on request): school record with a distinctive name, student number,
  gender, birth year, e-mail address and mobile number (the roster's contact data); a
  Telegram account with its own distinctive first name, last name and @username; opens the
  invite link, chooses English, gives all three consents (the consent history), gets the m2
  invitation from the dispatcher and answers the real tracking questionnaire in the chat,
  typing free text with markers, an e-mail address and a phone number; receives a news
  message; sends a stray message with another e-mail address and phone number; asks for
  /mydata; then sends /delete and confirms;
- graduate B (erased by the retention period): the same kinds of data, graduated in 2022;
  answers the tracking questionnaire opened by hand (no wave: that cohort's waves closed),
  receives the news; erased by the scheduler's retention job;
- graduate C: wants news but deactivated their Telegram account: the news delivery gets a 403
  and the bot marks the chat unreachable (a log line that names the chat).

What erasure keeps (storage/erasure.py, decided there): the graduate row without anything that
identifies the person, the responses, and the answers to closed questions (codes and numbers);
free text, consents, the consent history and the chat state go. So after erasure the responses
export still has A's and B's responses, under their pseudonymous respondent key, with their
closed answers and without any text answer.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import product
from typing import Any

import aiohttp
import pytest
from sqlalchemy import inspect, text, update
from sqlmodel import SQLModel, col, select

from bot import logs
from bot.delivery import RateLimiter, dispatch_due
from bot.i18n import language_name
from bot.news import dispatch_news
from bot.sandbox.state import SandboxUser
from bot.scheduler import retention_job
from bot.settings import Settings
from conversations.questionnaire import Question, Questionnaire
from storage import news
from storage.db import Database
from storage.invitations import plan_invitations
from storage.models import Broadcast, Delivery, Graduate, Institution, Staff, SurveyResponse
from storage.staff import create_invite
from tests.harness import Harness, eventually
from tests.survey_walk import Walk, default_answer
from tests.test_dashboard import client_session, login_link

NO_LIMIT = RateLimiter(0)

SECRET_KEY = "privacy-test-secret-key-7f3a9c2e5b8d4f61"
WEBHOOK_SECRET = "privacy-webhook-secret-2b7e151628aed2a6"

CONSENTED = datetime(2026, 8, 1, 9, 0, tzinfo=UTC)
M2_OPENS = datetime(2026, 8, 30, 8, 5, tzinfo=UTC)  # 10:05 in Amsterdam: the m2 invitation
THANKS = "Thank you! Your answers have been saved."
YES_DELETE = "Yes, delete my data"
DONE = (
    "Done: your data has been deleted and this chat is no longer linked to you. "
    "I will not write to you again. You can also delete this chat in Telegram."
)


@dataclass
class Person:
    """A graduate with everything that identifies them, as the test knows it."""

    name: str
    ref: str
    chat_id: int
    tg_first: str
    tg_last: str
    tg_username: str
    email: str
    phone: str
    #: Free text typed into the questionnaire, by question.
    typed: dict[str, str]
    #: A message typed outside any question (never stored).
    stray: str
    graduation: date
    #: The contact data of the school's roster (issue 16), as stored (normalised).
    roster_email: str = ""
    roster_mobile: str = ""
    graduate: Graduate | None = None
    user: SandboxUser | None = None
    token: str = ""

    @property
    def stored(self) -> list[str]:
        """The values the database holds before erasure."""
        return [
            self.name,
            self.ref,
            self.token,
            str(self.chat_id),
            self.roster_email,
            self.roster_mobile,
            *self.typed.values(),
        ]

    @property
    def personal(self) -> list[str]:
        """Every value that identifies the person (some are never stored at all)."""
        first, last = self.name.split(" ", 1)
        values = [
            *self.stored,
            first,
            last,
            self.tg_first,
            self.tg_last,
            self.tg_username,
            self.email,
            self.phone,
            self.stray,
        ]
        return [v for v in values if v]


def person_a() -> Person:
    return Person(
        name="Ysolde Quennevais-Brøndum",
        ref="STU-QX-48213-Z",
        chat_id=7_319_846_205,
        tg_first="Xanthippa",
        tg_last="Quirkwood",
        tg_username="yqb_privacy_probe",
        email="ysolde.qb@example.org",
        phone="+31 6 4417 2290",
        typed={
            "E4": "Quokka keeper, I feed quokkas every morning PRIV-E4-51973",
            "E5_other": "Marsupial care PRIV-E5-80417",
            "A4": (
                "More practice in the zoo please PRIV-A4-26644 ø; "
                "write to ysolde.qb@example.org or call +31 6 4417 2290"
            ),
        },
        stray="You can reach me at y.brondum@example.net or 0031-20-555-0199",
        graduation=date(2026, 6, 30),
        roster_email="ysolde.quennevais@leerling.example.nl",
        roster_mobile="+31629815537",
    )


def person_b() -> Person:
    return Person(
        name="Tancredi Oyelaran-Vasquez",
        ref="STU-TV-99127-K",
        chat_id=7_420_558_913,
        tg_first="Ottoline",
        tg_last="Fairweather-Nash",
        tg_username="tov_privacy_probe",
        email="tancredi.ov@example.org",
        phone="+39 347 118 9064",
        typed={
            "E4": "Harpsichord tuner PRIV-E4-33810",
            "E5_other": "Early music PRIV-E5-61295",
            "A4": "Teach more tuning PRIV-A4-70552, mail tancredi.ov@example.org +39 347 118 9064",
        },
        stray="",
        graduation=date(2022, 6, 30),
        roster_email="t.oyelaran@studenti.example.it",
        roster_mobile="+393398812745",
    )


C_CHAT = 7_555_012_348
C_NAME = "Wilhelmina Drakeford-Oyo"
C_REF = "STU-WD-10293-Q"
OFFICER_ID = 7_600_440_271


@dataclass
class Flow:
    """What the flow made, and the secrets no export or log may hold."""

    school: Institution
    a: Person
    b: Person
    c_token: str
    officer: SandboxUser
    staff_token: str
    q: Questionnaire
    delete_press: int = 0
    secrets: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The harness's settings, with the secrets a real deployment has (so that a leak of
    them can be seen)."""
    return Settings(
        database_url=database_url,
        telegram_bot_token="",
        throttle_per_second=0,
        secret_key=SECRET_KEY,
        webhook_secret=WEBHOOK_SECRET,
        _env_file=None,
    )


@pytest.fixture
def service_logs(settings: Settings) -> Iterator[io.StringIO]:
    """Logging set up as `gradtrack serve` does it (bot.logs.setup, LOG_FORMAT=json, the
    service's secrets), at DEBUG: our packages at DEBUG, the libraries at the levels the
    service gives them. Everything written goes to the returned stream; logging is restored
    afterwards. Request it before `harness` to capture the bot's start too."""
    root = logging.getLogger()
    level = root.level
    saved = {name: logging.getLogger(name).level for name in logs.NOISY_LOGGERS}
    stream = io.StringIO()
    handler = logs.setup(
        "DEBUG",
        "json",
        secrets=(settings.telegram_bot_token, settings.webhook_secret, settings.secret_key),
        stream=stream,
    )
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)
    for name, old in saved.items():
        logging.getLogger(name).setLevel(old)


@pytest.fixture
async def web_client(web: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser for the dashboard of the harness's bot (served by `web`)."""
    async with client_session() as client:
        yield client


# ---------------------------------------------------------------- the flow


def tracking_policy(q: Questionnaire, person: Person) -> Any:
    """The employed route, with "something else" as the sector: every text question of the
    tracking questionnaire is asked, and answered with the person's typed text."""

    def choose(question: Question) -> Any:
        if question.name in person.typed:
            return person.typed[question.name]
        if question.name == "C0":
            return "yes"
        if question.name == "Q1":
            return "employed"
        if question.name == "E5":
            return "other"
        if not question.required:
            return None
        if question.type == "select_multiple":
            return [q.choices_for(question)[0].name]
        return default_answer(q, question)

    return choose


async def walk_tracking(h: Harness, person: Person, q: Questionnaire, first: Any) -> None:
    """Answer the tracking questionnaire from its first question to the thanks."""
    assert person.user is not None
    walk = Walk(h, person.user, q, "en")
    review = await walk.run(first, tracking_policy(q, person))
    assert set(person.typed) <= set(walk.asked)
    (thanks,) = await h.press(person.user, "✅ Send my answers", message=review)
    assert thanks.content == THANKS


async def onboard(h: Harness, school: Institution, person: Person) -> None:
    """The school's record, the Telegram account, the invite link and all three consents."""
    graduate = await h.graduate(
        school,
        language=None,
        ref=person.ref,
        name=person.name,
        gender="female",
        birth_year=2001,
        email=person.roster_email,
        mobile=person.roster_mobile,
    )
    async with h.db.session() as session:
        await session.exec(
            update(Graduate)
            .where(col(Graduate.id) == graduate.id)
            .values(graduation_date=person.graduation)
        )
    assert graduate.invite_token is not None
    person.token = graduate.invite_token
    person.user = h.sandbox.create_user(
        h.token,
        first_name=person.tg_first,
        last_name=person.tg_last,
        username=person.tg_username,
        language_code="en",
        user_id=person.chat_id,
    )
    await h.send(person.user, f"/start {person.token}")
    await h.press(person.user, language_name("en"), expect=2)
    for _ in range(3):  # survey, follow-up, news: the consent history
        await h.press(person.user, "Yes")
    person.graduate = await h.reload(graduate)
    assert person.graduate.chat_id == person.chat_id


async def run_flow(h: Harness, *, before_erasure: Any = None) -> Flow:
    """Everything described in the module docstring. `before_erasure(flow)` runs when all the
    data is in place and nothing is erased yet."""
    h.clock.set(CONSENTED)
    q = h.runtime.questionnaires.deployed("tracking")
    school = await h.school(code="alfa", country="NL", language="nl")
    assert school.id is not None

    # An admin of the school (row-level exports are for admins), through a one-time staff
    # invitation link.
    invite = await create_invite(h.db, "admin", "alfa", hours=24, now=h.clock.now())
    officer = h.sandbox.create_user(h.token, first_name="Officer", user_id=OFFICER_ID)
    await h.send(officer, f"/start {invite.token}")
    async with h.db.session() as session:
        assert (await session.exec(select(Staff))).one().telegram_user_id == OFFICER_ID

    a, b = person_a(), person_b()
    await onboard(h, school, a)
    await onboard(h, school, b)
    c = await h.graduate(
        school,
        ref=C_REF,
        name=C_NAME,
        language="en",
        chat_id=C_CHAT,
        consent_news=True,
    )
    h.sandbox.create_user(h.token, first_name="Mina", user_id=C_CHAT)
    h.sandbox.chat(h.token, C_CHAT).started = True  # long ago
    h.sandbox.deactivate_user(C_CHAT)
    assert c.invite_token is not None
    flow = Flow(school, a, b, c.invite_token, officer, invite.token, q)

    # A: the m2 invitation, from the planner and the dispatcher, and the questionnaire.
    assert a.user is not None and b.user is not None
    await plan_invitations(h.db, h.runtime.plans, now=h.clock.now())
    h.clock.set(M2_OPENS)
    report = await dispatch_due(h.runtime, limiter=NO_LIMIT)
    assert report.sent == 1  # A only: B's waves closed long ago, C gave no survey consent
    (invitation,) = await h.replies(a.user, 1)
    (first,) = await h.press(a.user, "Start the questionnaire", message=invitation)
    await walk_tracking(h, a, q, first)

    # B: a response opened by hand (no wave), answered from /survey.
    assert b.graduate is not None
    await h.open_survey(b.graduate, "tracking")
    _welcome, first = await h.send(b.user, "/survey", expect=2)
    await walk_tracking(h, b, q, first)

    # News for the school: A and B get it, C's account is gone (403: marked unreachable).
    async with h.db.session() as session:
        row = Broadcast(
            institution_id=school.id,
            texts={"en": "<b>Open day</b> on 12 December"},
            default_language="en",
            filter=news.Audience(institution_ids=(school.id,)).to_filter(),
            report_chat_id=OFFICER_ID,
        )
        session.add(row)
        await session.flush()
        await news.schedule(session, row, h.clock.now())
    sent = await dispatch_news(h.runtime, limiter=NO_LIMIT)
    assert sent.sent == 2, sent
    await h.sandbox.wait_for(h.token, OFFICER_ID, lambda e: "has been sent" in e.content)
    for person in (a, b):
        assert person.user is not None
        texts = [e.content for e in h.sandbox.bot_messages(h.token, person.chat_id)]
        assert any("Open day" in t for t in texts)

    async def c_unreachable() -> bool:
        return (await h.reload(c)).unreachable_at is not None

    await eventually(c_unreachable)

    # A types personal details outside any question, and asks for a copy of the data.
    await h.send(a.user, a.stray, expect=0)
    await h.sandbox.send_text(h.token, a.chat_id, "/mydata")
    replies = await h.sandbox.wait_for(h.token, a.chat_id, lambda e: e.document is not None)
    assert replies[-1].document is not None

    flow.secrets = {
        "bot token": h.token,
        "bot token secret part": h.token.split(":", 1)[1],
        "SECRET_KEY": SECRET_KEY,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "staff invite token": invite.token,
        "invite token A": a.token,
        "invite token B": b.token,
        "invite token C": c.invite_token,
        "chat id A": str(a.chat_id),
        "chat id B": str(b.chat_id),
        "chat id C": str(C_CHAT),
        "officer chat id": str(OFFICER_ID),
    }
    if before_erasure is not None:
        await before_erasure(flow)

    # A: /delete, and yes.
    (question,) = await h.send(a.user, "/delete")
    (done,) = await h.press(a.user, YES_DELETE, message=question)
    assert done.text == DONE
    flow.delete_press = h.sandbox.bot(h.token).history[-1]["update_id"]
    assert a.graduate is not None and (await h.reload(a.graduate)).erased_at is not None

    # B: the scheduler's retention job (36 months after graduation by default).
    assert h.settings.retention_months == 36
    assert await retention_job(h.runtime) == 1
    assert (await h.reload(b.graduate)).erased_at is not None
    assert (await h.reload(c)).erased_at is None
    return flow


# ---------------------------------------------------------------- the database


@dataclass
class Dump:
    tables: int
    rows: list[tuple[str, str]]


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    return str(value)


async def dump(db: Database) -> Dump:
    """Every row of every table, each value as text (JSON columns decoded, then written
    without escapes). The tables of the models, and any other table the database has."""
    rows: list[tuple[str, str]] = []
    async with db.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            for row in (await conn.execute(table.select())).mappings():
                rows.append((table.name, " | ".join(_text(v) for v in row.values())))
        known = {t.name for t in SQLModel.metadata.sorted_tables}
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        others = [n for n in names if n not in known]
        assert set(others) <= {"alembic_version"}, others
        for name in others:
            for row in (await conn.execute(text(f'SELECT * FROM "{name}"'))).mappings():
                rows.append((name, " | ".join(_text(v) for v in row.values())))
    return Dump(len(SQLModel.metadata.sorted_tables) + len(others), rows)


def hits(haystacks: list[tuple[str, str]], needles: list[str]) -> list[tuple[str, str]]:
    """(needle, where) for every needle found."""
    return [(n, where) for where, hay in haystacks for n in needles if n and n in hay]


async def test_erased_graduates_leave_no_personal_data_in_any_table(harness: Harness) -> None:
    """Proves that after an erasure on request (/delete) and one by the retention period, no
    row of any table holds the graduate's name, first or last name, student number, chat id,
    invite token, Telegram profile, an e-mail address or phone number they typed, or any of
    their free-text answers; and that what erasure keeps (the responses and closed answers)
    is still there. The same scan finds the stored values before the erasure, so it can fail."""
    h = harness
    before: list[Dump] = []

    async def scan(flow: Flow) -> None:
        snapshot = await dump(h.db)
        before.append(snapshot)
        for person in (flow.a, flow.b):
            found = {n for n, _where in hits(snapshot.rows, person.stored)}
            assert found == set(person.stored), set(person.stored) - found

    flow = await run_flow(h, before_erasure=scan)
    after = await dump(h.db)
    needles = [*flow.a.personal, *flow.b.personal]
    assert hits(after.rows, needles) == []

    # Kept, without a name: the two rows, their responses and closed answers.
    async with h.db.session() as session:
        for person in (flow.a, flow.b):
            assert person.graduate is not None
            stored = await session.get(Graduate, person.graduate.id)
            assert stored is not None and stored.student_ref == f"erased-{stored.id}"
            responses = (
                await session.exec(
                    select(SurveyResponse).where(SurveyResponse.graduate_id == stored.id)
                )
            ).all()
            assert [(r.form_id, r.status, r.complete) for r in responses] == [
                ("tracking", "submitted", True)
            ]
        deliveries = (await session.exec(select(Delivery))).all()
        assert len(deliveries) == 3  # the news report's counts stay right
    print(
        f"\nprivacy/db: {after.tables} tables, {len(before[0].rows)} rows before and "
        f"{len(after.rows)} after erasure scanned for {len(set(needles))} personal values: "
        f"0 leaks"
    )


# ---------------------------------------------------------------- logs


async def test_logs_of_the_whole_flow_hold_no_personal_data_chat_id_or_token(
    service_logs: io.StringIO, harness: Harness, web_client: aiohttp.ClientSession
) -> None:
    """Proves that everything the service logs during the whole flow (the bot's start,
    onboarding, invitation, questionnaire, news with a 403, /mydata, /delete, a redelivered
    update, the retention job and dashboard exports), set up as in production with
    LOG_FORMAT=json and at DEBUG for our packages, holds none of the graduates' personal
    values, no chat id (a chat appears as its keyed reference), no invite token, and neither
    the bot token nor the secrets. The lines that name a chat are checked to be there."""
    h = harness
    flow = await run_flow(h)
    a = flow.a
    assert a.user is not None
    await download_exports(h, web_client, flow)
    # Telegram delivers the /delete press again: logged with the chat's reference.
    h.sandbox.redeliver(h.token, flow.delete_press)
    ref_a = logs.chat_ref(a.chat_id)

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in service_logs.getvalue().splitlines() if line]

    await eventually(lambda: any("was delivered again" in line["message"] for line in lines()))
    captured = service_logs.getvalue()
    records = lines()
    needles = {
        **{f"A {i}": v for i, v in enumerate(a.personal)},
        **{f"B {i}": v for i, v in enumerate(flow.b.personal)},
        "name C": C_NAME,
        "ref C": C_REF,
        **flow.secrets,
    }
    leaks = [(label, value) for label, value in needles.items() if value and value in captured]
    assert leaks == []
    assert not any("chat_id" in record for record in records)
    messages = [str(record["message"]) for record in records]
    # The lines that would carry a chat id, an erasure or a job are there (so this can fail).
    assert f"chat {logs.chat_ref(C_CHAT)} is unreachable: Forbidden: user is deactivated" in (
        messages
    ), messages
    # The erasure names no graduate id: the line carries the chat's reference.
    assert "erased 1 graduate(s), reason request" in messages
    assert any(m.startswith("retention: erased 1 graduates") for m in messages)
    assert any(m.startswith("dispatch: ") for m in messages)
    redelivered = [r for r in records if "was delivered again" in str(r["message"])]
    assert redelivered and all(r.get("chat") == ref_a for r in redelivered)
    assert all(isinstance(r["update_id"], int) for r in redelivered)
    print(
        f"\nprivacy/logs: {len(records)} log lines checked for {len(needles)} values "
        f"(personal data, chat ids, tokens, secrets): 0 leaks"
    )


def test_database_errors_in_logs_lose_their_parameters() -> None:
    """Proves that a database error logged with its traceback (as the error handler does)
    does not write the statement's parameters (SQLAlchemy) nor PostgreSQL's DETAIL line,
    which hold the values being written: a name, a chat id."""
    from sqlalchemy.exc import IntegrityError

    stream = io.StringIO()
    handler = logs.setup("INFO", "json", stream=stream)
    try:
        driver = Exception(
            'duplicate key value violates unique constraint "uq_graduate_chat_id"\n'
            "DETAIL:  Key (chat_id)=(7319846205) already exists."
        )
        try:
            raise IntegrityError(
                "INSERT INTO graduate (name, chat_id) VALUES ($1, $2)",
                ("Ysolde Quennevais-Brøndum", 7319846205),
                driver,
            )
        except IntegrityError:
            logging.getLogger("bot.app").exception("error while handling an update")
    finally:
        logging.getLogger().removeHandler(handler)
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert "IntegrityError" in line["exception"]
    assert "uq_graduate_chat_id" in line["exception"]  # what failed stays readable
    assert "[parameters: <redacted>]" in line["exception"]
    assert "Ysolde" not in line["exception"] and "7319846205" not in line["exception"]


def test_email_addresses_in_logs_are_redacted() -> None:
    """Proves that an e-mail address in a log line, its arguments, an exception (an SMTP
    server's refusal quotes the recipient) or an extra field is written as `<e-mail>`, in
    text and JSON, while a database URL's user@host and a bot's @username stay readable."""
    for fmt in ("json", "text"):
        stream = io.StringIO()
        handler = logs.setup("INFO", fmt, stream=stream)
        try:
            log = logging.getLogger("bot.mail")
            log.warning("mail to %s refused", "Ysolde.QB@Example.org", extra={"to": "t@x.it"})
            try:
                raise RuntimeError("(550, '5.1.1 <jüri.tamm@xn--nide-loa.ee>: no such user')")
            except RuntimeError:
                log.exception("sending failed")
            log.info("database postgresql://postgres@127.0.0.1:5432/test, bot @gradtrack_bot")
        finally:
            logging.getLogger().removeHandler(handler)
        written = stream.getvalue()
        for address in ("Ysolde.QB@Example.org", "t@x.it", "jüri.tamm@xn--nide-loa.ee"):
            assert address not in written, (fmt, address)
        assert written.count("<e-mail>") >= 3, written
        assert "postgres@127.0.0.1:5432" in written and "@gradtrack_bot" in written


# ---------------------------------------------------------------- exports


@dataclass
class Download:
    url: str
    body: bytes

    @property
    def text(self) -> str:
        """The file as text: a CSV, or every part of an XLSX (zip) file."""
        if self.body.startswith(b"PK"):
            with zipfile.ZipFile(io.BytesIO(self.body)) as archive:
                return "\n".join(
                    archive.read(name).decode("utf-8", errors="replace")
                    for name in archive.namelist()
                )
        return self.body.decode("utf-8-sig")


async def log_in(h: Harness, client: aiohttp.ClientSession, flow: Flow) -> None:
    """The officer logs in through the link the bot sends; its token and the session's CSRF
    token and cookie join the secrets no export may hold."""
    link = await login_link(h, flow.officer)
    flow.secrets["dashboard login token"] = link.rsplit("/", 1)[-1]
    async with client.get(link) as page:
        token = re.search(r'name="token" value="([^"]+)"', await page.text())
    assert token
    async with client.post(
        f"{h.settings.base_url}/dashboard/login", data={"token": token.group(1)}
    ) as response:
        assert response.status == 200 and str(response.url).endswith("/dashboard")
        csrf = re.search(r'name="csrf" value="([^"]+)"', await response.text())
    assert csrf
    flow.secrets["CSRF token"] = csrf.group(1)
    for cookie in client.cookie_jar:
        flow.secrets[f"cookie {cookie.key}"] = cookie.value


async def offered_exports(h: Harness, client: aiohttp.ClientSession) -> list[str]:
    """Every export the exports page offers: each form's buttons, with every combination of
    its choices (questionnaire, wave), in English."""
    base = h.settings.base_url
    async with client.get(f"{base}/dashboard/exports") as page:
        assert page.status == 200
        html = await page.text()
    urls = []
    for form in re.findall(r"<form [^>]*id=\"export-[^\"]+\".*?</form>", html, re.S):
        actions = re.findall(r'formaction="([^"]+)"', form)
        choices: list[list[tuple[str, str]]] = []
        for name, options in re.findall(r'<select [^>]*name="(\w+)">(.*?)</select>', form, re.S):
            values = re.findall(r'<option value="([^"]*)"', options)
            choices.append([(name, v) for v in (["en"] if name == "lang" else values)])
        for action, combo in product(actions, product(*choices)):
            query = "&".join(f"{k}={v}" for k, v in combo)
            urls.append(f"{base}{action}?{query}")
    assert len(urls) >= 12, urls
    return urls


async def download_exports(h: Harness, client: aiohttp.ClientSession, flow: Flow) -> list[Download]:
    if "CSRF token" not in flow.secrets:
        await log_in(h, client, flow)
    downloads = []
    for url in await offered_exports(h, client):
        async with client.get(url) as response:
            assert response.status == 200, url
            downloads.append(Download(url, await response.read()))
    return downloads


def response_rows(downloads: list[Download]) -> list[dict[str, str]]:
    """The rows of the tracking responses CSV (all waves)."""
    (found,) = [
        d for d in downloads if "responses.csv" in d.url and "form=tracking&wave=&" in d.url
    ]
    return list(csv.DictReader(io.StringIO(found.text)))


async def test_exports_hold_no_chat_ids_tokens_or_personal_data_before_or_after_erasure(
    harness: Harness, web_client: aiohttp.ClientSession
) -> None:
    """Proves that no export the dashboard offers (responses, codebook, indicators and rates,
    CSV and XLSX, for every questionnaire and wave; XLSX searched in all its XML parts) holds
    a chat id, an invite token, the staff invite token, the dashboard login token, the
    session's cookie or CSRF token, the bot token or a secret, nor a graduate's name, student
    number or Telegram profile. Free-text answers are exported as typed (bot/web/exports.py):
    before erasure A's and B's typed text is in the responses export (the check that these
    files are searched); after erasure none of it is, and their responses remain under the
    same pseudonymous respondent key with their closed answers only."""
    h = harness
    before: list[Download] = []

    async def download(flow: Flow) -> None:
        before.extend(await download_exports(h, web_client, flow))

    flow = await run_flow(h, before_erasure=download)
    after = await download_exports(h, web_client, flow)

    # Never, before or after erasure: secrets, chat ids, tokens, C's name and number, and
    # whatever identifies A and B except what they typed into free-text answers.
    never = {**flow.secrets, "name C": C_NAME, "ref C": C_REF}
    everything = dict(never)
    for person in (flow.a, flow.b):
        typed = " ".join(person.typed.values())
        for value in person.personal:
            everything[f"{person.ref} {value}"] = value
            if value not in typed:
                never[f"{person.ref} {value}"] = value
    files_before = [(d.url, d.text) for d in before]
    files_after = [(d.url, d.text) for d in after]
    assert hits(files_before, list(never.values())) == []

    # Before erasure the typed answers (an e-mail address and phone number in them too) are
    # in the responses export: the files are searched.
    typed_needles = [t for p in (flow.a, flow.b) for t in p.typed.values()]
    assert {n for n, _ in hits(files_before, typed_needles)} == set(typed_needles)
    assert flow.a.email in everything.values() and flow.a.email not in never.values()
    # The roster's e-mail addresses and mobile numbers are never exported (issue 16).
    for person in (flow.a, flow.b):
        assert {person.roster_email, person.roster_mobile} <= set(never.values())
    # After erasure: nothing of A and B at all; their responses stay, closed answers only.
    assert hits(files_after, list(everything.values())) == []
    rows_before = response_rows(before)
    rows_after = response_rows(after)
    assert len(rows_after) == len(rows_before) == 2
    by_key = {row["respondent"]: row for row in rows_after}
    for row in rows_before:
        kept = by_key[row["respondent"]]
        assert kept["Q1"] == "employed" and kept["E5"] == "other" and kept["A2"] == row["A2"]
        assert (kept["E4"], kept["E5_other"], kept["A4"]) == ("", "", "")
        assert kept["outcome"] == "completed"
    print(
        f"\nprivacy/exports: {len(before) + len(after)} export files ({len(before)} before, "
        f"{len(after)} after erasure) checked for {len(never)} values before and "
        f"{len(everything)} after erasure: 0 leaks"
    )
