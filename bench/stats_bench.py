"""Benchmark: the statistics behind the admin dashboard on a large database.

N graduates (default 100,000) of five schools with ten programmes each, cohorts 2024-2026,
the invitations and reminders the default wave plan owes them, and their responses to the
waves pregrad, m2 and m6, routed by the real questionnaires and the real engine (default: about
1.2 million answers). Each query of storage/stats.py runs on its own, for all schools and for
the largest school; then bot.reporting.build_report as the overview page runs it, and
question_counts for one wave (the drill-down). Reported per query: median and p95 of --repeat
runs after one warm-up, the rows returned, and the indexes in the plan (EXPLAIN QUERY PLAN on
SQLite, EXPLAIN on PostgreSQL); --plans prints the plans whole. Seeding is timed apart.

    .venv/bin/python -m bench.stats_bench [--graduates 100000] [--answers-per-response 0]
        [--database sqlite|postgresql|both] [--pg-url postgresql://postgres@127.0.0.1:5432/test]
        [--repeat 5] [--plans] [--no-analyze] [--index "CREATE INDEX ..."]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, cast

import aiohttp
import asyncpg
from aiohttp import web
from sqlalchemy import event, insert
from sqlalchemy.engine import make_url
from sqlmodel.ext.asyncio.session import AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine
from bot.clock import FrozenClock
from bot.reporting import build_report
from bot.runtime import Runtime
from bot.settings import Settings
from bot.web import auth
from bot.web.dashboard import add_dashboard
from conversations import engine
from conversations.indicators import IndicatorSpec, load_specs
from conversations.questionnaire import Question, Questionnaire, QuestionType, load_questionnaire
from conversations.registry import QuestionnaireRegistry
from conversations.rules import LANGUAGES
from conversations.survey import REVIEW
from conversations.waves import WavePlans, load_plans, schedule
from storage import stats, summaries
from storage.db import Database
from storage.migrate import upgrade
from storage.models import (
    Answer,
    Graduate,
    Institution,
    Invitation,
    InvitationStatus,
    Programme,
    ResponseStatus,
    Staff,
    SurveyResponse,
)
from storage.stats import Scope

QUESTIONNAIRES = Path(__file__).resolve().parent.parent / "conversations" / "questionnaires"
BATCH = 10_000
FORMS = ("tracking", "pregrad")
STATUSES = ("completed", "partial", "declined")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

# code, name, country, language, timezone, share of the graduates
SCHOOLS = (
    ("alfa", "Alfa College", "NL", "nl", "Europe/Amsterdam", 30),
    ("bravo", "Instituto Bravo", "ES", "es", "Europe/Madrid", 25),
    ("tallinn", "Tallinna Kutsekool", "EE", "et", "Europe/Tallinn", 20),
    ("delta", "Istituto Tecnico Delta", "IT", "it", "Europe/Rome", 15),
    ("echo", "Echo Further Education College", "IE", "en", "Europe/Dublin", 10),
)
# code, name, EQF level, graduation month, share in the school, how well jobs fit (0..1),
# the sectors its graduates mostly work in
PROGRAMMES = (
    ("ICT4", "Software development", 4, 6, 14, 0.8, ("ict", "professional")),
    ("NUR4", "Nursing", 4, 7, 12, 0.9, ("health_social",)),
    ("ELE3", "Electrical installation", 3, 6, 11, 0.8, ("construction", "energy")),
    ("CAR3", "Car mechanics", 3, 7, 10, 0.7, ("trade", "manufacturing")),
    ("HOS2", "Hospitality assistant", 2, 6, 10, 0.5, ("hospitality",)),
    ("LOG2", "Logistics", 2, 8, 9, 0.5, ("transport", "trade")),
    ("CHI4", "Childcare", 4, 6, 9, 0.8, ("education", "health_social")),
    ("BUS4", "Business administration", 4, 1, 9, 0.6, ("finance", "admin_support")),
    ("CON3", "Construction", 3, 9, 8, 0.8, ("construction",)),
    ("RET2", "Retail", 2, 4, 8, 0.4, ("trade",)),
)
# The ISCO-08 major groups each programme trains for, and its pathway (odd programmes
# work-based), for 6a "in the occupation trained for" and the pathway breakdown.
ISCO = {
    "ICT4": "2,3",
    "NUR4": "2,3",
    "ELE3": "7",
    "CAR3": "7",
    "HOS2": "5",
    "LOG2": "4,8",
    "CHI4": "5",
    "BUS4": "4",
    "CON3": "7",
    "RET2": "5",
}
COHORTS = ((2024, 31), (2025, 33), (2026, 36))
GENDERS = (("female", 46), ("male", 48), ("other", 1), ("unknown", 1), (None, 4))
JOB_TITLES = ("assistant", "technician", "developer", "nurse", "mechanic", "cook", "clerk")


def weighted(rng: random.Random, pairs: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([v for v, _w in pairs], [w for _v, w in pairs])[0]


# ---------------------------------------------------------------- the data


@dataclass
class Tables:
    """Rows to insert per table, in the order of `columns`, with the ids chosen here."""

    columns: dict[str, tuple[str, ...]]
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    largest_school: int = 1

    def count(self, table: str) -> int:
        return len(self.rows.get(table, []))


COLUMNS: dict[str, tuple[str, ...]] = {
    "institution": ("id", "code", "name", "country", "default_language", "timezone", "created_at"),
    "programme": (
        "id",
        "institution_id",
        "code",
        "name",
        "eqf_level",
        "field",
        "active",
        "isco_groups",
        "pathway",
        "vet_kind",
    ),
    "graduate": (
        "id",
        "institution_id",
        "programme_id",
        "student_ref",
        "name",
        "graduation_date",
        "language",
        "gender",
        "birth_year",
        "self_registered",
        "chat_id",
        "linked_at",
        "invite_token",
        "consent_survey",
        "consent_survey_at",
        "consent_followup",
        "consent_followup_at",
        "consent_news",
        "consent_news_at",
        "opted_out_at",
        "unreachable_at",
        "unreachable_reason",
        "erased_at",
        "created_at",
        "updated_at",
    ),
    "survey_response": (
        "id",
        "graduate_id",
        "form_id",
        "version",
        "wave",
        "status",
        "current",
        "complete",
        "declined",
        "started_at",
        "updated_at",
        "completed_at",
        "submitted_at",
    ),
    "answer": ("id", "response_id", "question", "value", "answered_at"),
    "invitation": (
        "id",
        "graduate_id",
        "wave",
        "form_id",
        "seq",
        "due_at",
        "closes_at",
        "status",
        "attempts",
        "sent_at",
        "message_id",
        "error",
    ),
}
MODELS: dict[str, Any] = {
    "institution": Institution,
    "programme": Programme,
    "graduate": Graduate,
    "survey_response": SurveyResponse,
    "answer": Answer,
    "invitation": Invitation,
}


@dataclass
class Route:
    """The answerable questions a response meets, in order, for one routing, and how many of
    them must be answered before the response is complete."""

    names: list[str]
    core_end: int


class Responder:
    """Answers the real questionnaires: paths from the engine (cached per routing answer),
    values drawn per question."""

    def __init__(self, q: Questionnaire, rng: random.Random) -> None:
        self.q = q
        self.rng = rng
        self.questions = {question.name: question for question in q.questions}
        self.paths: dict[tuple[str, ...], Route] = {}

    def path(self, routing: dict[str, Any]) -> Route:
        """Walk the engine with `routing` answers (the rest are placeholders)."""
        key = tuple(f"{k}={v}" for k, v in sorted(routing.items()))
        if key in self.paths:
            return self.paths[key]
        answers: dict[str, Any] = {}
        names: list[str] = []
        core_end = 0
        after: str | None = None
        while True:
            question = engine.next_question(self.q, answers, after)
            if question is None:
                break
            after = question.name
            if not question.answerable:
                continue
            answers[question.name] = routing.get(question.name, self._placeholder(question))
            names.append(question.name)
            if not core_end and engine.is_complete(self.q, answers):
                core_end = len(names)
        self.paths[key] = Route(names, core_end or len(names))
        return self.paths[key]

    def _placeholder(self, question: Question) -> Any:
        if question.is_select:
            code = self.q.choices_for(question)[0].name
            return [code] if question.is_multiple else code
        if question.type in (QuestionType.INTEGER, QuestionType.SCALE):
            return 1
        return "x"

    def value(self, question: Question, programme: tuple[Any, ...]) -> Any:
        """A plausible answer (None: skipped, for optional questions)."""
        rng = self.rng
        codes = [c.name for c in self.q.choices_for(question)] if question.is_select else []
        fit = programme[5]
        name = question.name
        if name in ("E6", "P2"):
            return weighted(
                rng,
                [
                    ("completely", fit * 60),
                    ("partly", 30),
                    ("not_at_all", (1 - fit) * 60 + 5),
                    *([("dont_know", 10)] if "dont_know" in codes else []),
                ],
            )
        if name == "E4b":
            trained = [f"isco{g}" for g in ISCO[programme[0]].split(",")]
            return rng.choice(trained) if rng.random() < fit else rng.choice(codes)
        if name == "E7":
            return weighted(rng, [("a_lot", fit * 50), ("a_little", 40), ("not_at_all", 15)])
        if name == "E5":
            if rng.random() < 0.03:
                return "other"
            if rng.random() < 0.7:
                return rng.choice(programme[6])
            return rng.choice([c for c in codes if c != "other"])
        if name == "E3":
            return rng.choice((12, 16, 20, 24, 28, 32, 36, 38, 40, 40, 40))
        if name == "U1":
            return rng.randint(0, 12)
        if question.type == QuestionType.SCALE:
            low, high = question.scale_range
            points = list(range(low, high + 1))
            return rng.choices(points, [1, 2, 4, 6, 4] if len(points) == 5 else None)[0]
        if question.type == QuestionType.TEXT:
            if not question.required and rng.random() < 0.75:
                return None
            return rng.choice(JOB_TITLES) if name == "E4" else "something else"
        if question.is_multiple:
            if "none" in codes and rng.random() < 0.35:
                return ["none"]
            pool = [c for c in codes if c != "none"]
            return sorted(rng.sample(pool, rng.randint(1, min(3, len(pool)))))
        if question.is_select:
            return rng.choice(codes)
        if question.type == QuestionType.INTEGER:
            return rng.randint(1, 20)
        return "x"


def _activity(rng: random.Random, wave: str, eqf: int) -> str:
    weights = {
        "employed": 50.0,
        "self_employed": 4.0,
        "studying": 20.0,
        "working_and_studying": 9.0,
        "unemployed_looking": 10.0,
        "not_available": 4.0,
        "other": 3.0,
    }
    if wave == "m6":
        weights["employed"] += 8
        weights["unemployed_looking"] -= 4
    if eqf == 4:
        weights["studying"] += 8
        weights["employed"] -= 6
    elif eqf == 2:
        weights["studying"] -= 10
        weights["employed"] += 5
        weights["unemployed_looking"] += 4
    return weighted(rng, list(weights.items()))


def _plan_choice(rng: random.Random, eqf: int) -> str:
    return weighted(
        rng,
        [
            ("work", 45 if eqf < 4 else 35),
            ("own_business", 3),
            ("further_study", 15 if eqf < 4 else 28),
            ("work_and_study", 12),
            ("not_sure", 20),
            ("other", 5),
        ],
    )


# Of the graduates who can answer a wave (linked, consented, still reachable when it opens):
# how many start it; of those started: declined, stopped before the core was answered,
# stopped after it (complete, still open), submitted.
START_RATE = {"pregrad": 0.80, "m2": 0.62, "m6": 0.52}
OUTCOMES = {
    "pregrad": (("declined", 5), ("partial", 7), ("complete_open", 3), ("submitted", 85)),
    "tracking": (("declined", 7), ("partial", 15), ("complete_open", 8), ("submitted", 70)),
}


def generate(graduates: int, cap: int, plans: WavePlans, now: datetime, seed: int = 6) -> Tables:
    rng = random.Random(seed)
    forms = {
        name: load_questionnaire(QUESTIONNAIRES / f"{name}.yaml")
        for name in ("tracking", "pregrad")
    }
    responders = {name: Responder(q, rng) for name, q in forms.items()}
    tables = Tables(COLUMNS, {name: [] for name in COLUMNS})
    created = now - timedelta(days=3 * 365)
    for s, (code, name, country, language, tz, _share) in enumerate(SCHOOLS, start=1):
        tables.rows["institution"].append((s, code, name, country, language, tz, created))
        for p, (pcode, pname, eqf, *_rest) in enumerate(PROGRAMMES):
            programme_id = (s - 1) * len(PROGRAMMES) + p + 1
            pathway = "work_based" if p % 2 else "school_based"
            tables.rows["programme"].append(
                (programme_id, s, pcode, pname, eqf, pname, True, ISCO[pcode], pathway, "ivet")
            )
    tables.largest_school = max(range(len(SCHOOLS)), key=lambda i: SCHOOLS[i][5]) + 1
    school_weights = [school[5] for school in SCHOOLS]
    programme_weights = [programme[4] for programme in PROGRAMMES]
    plan = plans.default
    response_id = answer_id = invitation_id = 0
    graduate_rows = tables.rows["graduate"]
    response_rows = tables.rows["survey_response"]
    answer_rows = tables.rows["answer"]
    invitation_rows = tables.rows["invitation"]
    for gid in range(1, graduates + 1):
        s = rng.choices(range(len(SCHOOLS)), school_weights)[0]
        p = rng.choices(range(len(PROGRAMMES)), programme_weights)[0]
        school, programme = SCHOOLS[s], PROGRAMMES[p]
        cohort = weighted(rng, COHORTS)
        eqf, month = programme[2], programme[3]
        graduation = date(cohort, month, 20 + (s + p) % 8)
        age = rng.choice((17, 18, 18, 19, 19, 20, 21)) + (eqf - 2)
        if rng.random() < 0.1:
            age = rng.randint(22, 45)
        birth_year = None if rng.random() < 0.03 else cohort - age
        gender = weighted(rng, GENDERS)
        lang = school[3] if rng.random() < 0.85 else rng.choice(LANGUAGES)
        imported = datetime(cohort - 1, 9, 15, 8, tzinfo=UTC) + timedelta(hours=s)
        linked = rng.random() < 0.85
        erased = rng.random() < 0.004
        linked_at = imported + timedelta(days=rng.randint(30, 200)) if linked else None
        consent_survey = (rng.random() < 0.93) if linked else None
        consent_followup = (bool(consent_survey) and rng.random() < 0.82) if linked else None
        consent_news = (rng.random() < 0.6) if linked else None
        stopped: datetime | None = None
        opted_out_at = unreachable_at = None
        if linked and linked_at is not None and rng.random() < 0.06:
            stopped = linked_at + timedelta(days=rng.randint(1, 600))
            if stopped < now:
                if rng.random() < 0.35:
                    opted_out_at = stopped
                else:
                    unreachable_at = stopped
            else:
                stopped = None
        erased_at = (now - timedelta(days=rng.randint(1, 300))) if erased else None
        graduate_rows.append(
            (
                gid,
                s + 1,
                s * len(PROGRAMMES) + p + 1,
                f"erased-{gid}" if erased else f"{cohort % 100}{gid:07d}",
                None if erased else f"Graduate {gid}",
                graduation,
                lang,
                None if erased else gender,
                None if erased else birth_year,
                False,
                None if erased or not linked else 6_000_000_000 + gid,
                None if erased else linked_at,
                None if erased else f"bench{gid:09d}",
                consent_survey,
                linked_at,
                consent_followup,
                linked_at,
                consent_news,
                linked_at,
                opted_out_at,
                unreachable_at,
                "blocked" if unreachable_at else None,
                erased_at,
                imported,
                erased_at or stopped or linked_at or imported,
            )
        )
        items = schedule(plan, graduation, school[4])
        finished: dict[str, datetime] = {}  # wave -> when the graduate was done with it
        for wave in plan.waves:
            form = wave.questionnaire
            wave_items = [item for item in items if item.wave == wave.name]
            opens = wave_items[0].due_at
            closes = wave_items[0].closes_at
            consent = consent_followup if wave.consent == "followup" else consent_survey
            if not linked or not consent or opens > now or (stopped and stopped < opens):
                continue
            if rng.random() >= START_RATE.get(wave.name, 0.5):
                continue
            prompted = rng.choices(range(len(wave_items)), [55, 25, 13, 7][: len(wave_items)])[0]
            if wave.name == "pregrad" and prompted == 0:
                started = opens + timedelta(minutes=rng.randint(0, 240))  # in class
            else:
                started = wave_items[prompted].due_at + timedelta(
                    hours=min(rng.expovariate(1 / 20), 24 * 13)
                )
            if started >= min(closes, now) or (stopped and started >= stopped):
                continue
            responder = responders[form]
            q = responder.q
            outcome = weighted(rng, OUTCOMES["pregrad" if form == "pregrad" else "tracking"])
            consent_q = q.questions[0].name  # C0 / P0: the opening consent question
            if outcome == "declined":
                path = Route([consent_q], 1)
                values: list[Any] = ["no"]
            else:
                routing: dict[str, Any] = {consent_q: "yes"}
                if form == "tracking":
                    routing["Q1"] = _activity(rng, wave.name, eqf)
                    if routing["Q1"] in ("employed", "self_employed", "working_and_studying"):
                        routing["E5"] = responder.value(q.question("E5"), programme)
                else:
                    routing["P1"] = _plan_choice(rng, eqf)
                path = responder.path(routing)
                values = [
                    routing[n] if n in routing else responder.value(q.question(n), programme)
                    for n in path.names
                ]
            kept = len(path.names)
            if outcome == "partial":
                kept = rng.randint(1, max(1, path.core_end - 1))
            elif outcome == "complete_open":
                kept = rng.randint(path.core_end, len(path.names))
            if cap and kept > max(cap, path.core_end):
                kept = max(cap, path.core_end)
                if outcome == "submitted":
                    outcome = "complete_open"
            if outcome == "partial" and kept >= path.core_end:
                outcome, kept = "submitted", len(path.names)  # nothing to stop before
            response_id += 1
            moment = started
            completed_at: datetime | None = None
            for i, (question, value) in enumerate(
                zip(path.names[:kept], values[:kept], strict=True)
            ):
                moment += timedelta(seconds=rng.randint(6, 45))
                if i + 1 == path.core_end and outcome in ("complete_open", "submitted"):
                    completed_at = moment
                if value is None or (erased and q.question(question).type == QuestionType.TEXT):
                    continue
                answer_id += 1
                answer_rows.append((answer_id, response_id, question, value, moment))
            submitted = outcome in ("declined", "submitted")
            current = ""
            if not submitted:
                current = path.names[kept] if kept < len(path.names) else REVIEW
            submitted_at = moment + timedelta(seconds=20) if submitted else None
            response_rows.append(
                (
                    response_id,
                    gid,
                    form,
                    q.version,
                    wave.name,
                    (ResponseStatus.SUBMITTED if submitted else ResponseStatus.OPEN).value,
                    current,
                    completed_at is not None,
                    outcome == "declined",
                    started,
                    submitted_at or moment,
                    completed_at,
                    submitted_at,
                )
            )
            if completed_at is not None or outcome == "declined":
                finished[wave.name] = completed_at or moment
        if erased:
            continue  # erasure deletes the invitations
        for item in items:
            done = finished.get(item.wave)
            wave_consent = consent_followup if item.wave == "m6" else consent_survey
            status, sent_at, attempts, error = InvitationStatus.SENT.value, None, 1, None
            if item.due_at > now:
                status, attempts = InvitationStatus.PENDING.value, 0
            elif not linked or not wave_consent or (done is not None and done <= item.due_at):
                status, attempts = InvitationStatus.SKIPPED.value, 0
            elif stopped and stopped <= item.due_at:
                if unreachable_at:
                    status, error = InvitationStatus.FAILED.value, "blocked"
                else:
                    status, attempts = InvitationStatus.SKIPPED.value, 0
            else:
                sent_at = item.due_at + timedelta(seconds=rng.randint(1, 900))
            invitation_id += 1
            invitation_rows.append(
                (
                    invitation_id,
                    gid,
                    item.wave,
                    item.questionnaire,
                    item.seq,
                    item.due_at,
                    item.closes_at,
                    status,
                    attempts,
                    sent_at,
                    invitation_id if sent_at else None,
                    error,
                )
            )
    return tables


def describe(tables: Tables) -> list[str]:
    responses = tables.rows["survey_response"]
    by_wave: Counter[tuple[str, str]] = Counter()
    for row in responses:
        status = "declined" if row[8] else "completed" if row[7] else "partial"
        by_wave[(row[4], status)] += 1
    answers = tables.count("answer")
    invitations = Counter(row[7] for row in tables.rows["invitation"])
    lines = [
        f"graduates: {tables.count('graduate'):,} "
        f"({sum(1 for r in tables.rows['graduate'] if r[10] is not None):,} with a chat) in "
        f"{tables.count('institution')} schools, {tables.count('programme')} programmes",
        f"responses: {len(responses):,}; answers: {answers:,} "
        f"({answers / max(1, len(responses)):.1f} per response)",
        f"invitations and reminders: {tables.count('invitation'):,} ("
        + ", ".join(f"{k} {v:,}" for k, v in sorted(invitations.items()))
        + ")",
    ]
    for wave in ("pregrad", "m2", "m6"):
        parts = ", ".join(
            f"{status} {by_wave[(wave, status)]:,}"
            for status in ("completed", "partial", "declined")
        )
        lines.append(f"  wave {wave}: {parts}")
    return lines


# ---------------------------------------------------------------- writing it


async def write_sqlite(db: Database, tables: Tables) -> None:
    """SQLAlchemy Core executemany in batches, one transaction per table."""
    for name, columns in tables.columns.items():
        rows = tables.rows[name]
        async with db.engine.begin() as conn:
            for start in range(0, len(rows), BATCH):
                chunk = rows[start : start + BATCH]
                await conn.execute(
                    insert(MODELS[name]), [dict(zip(columns, row, strict=True)) for row in chunk]
                )


async def write_postgresql(dsn: str, tables: Tables) -> None:
    """COPY through asyncpg, then the id sequences moved past the ids written."""
    conn = await asyncpg.connect(dsn)
    try:
        for name, columns in tables.columns.items():
            rows = tables.rows[name]
            if name == "answer":
                rows = [(i, r, q, json.dumps(v), at) for i, r, q, v, at in rows]
            async with conn.transaction():
                for start in range(0, len(rows), BATCH * 10):
                    await conn.copy_records_to_table(
                        name, records=rows[start : start + BATCH * 10], columns=list(columns)
                    )
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                f"(SELECT max(id) FROM {name}))"
            )
    finally:
        await conn.close()


# ---------------------------------------------------------------- databases


@dataclass
class Target:
    backend: str
    db: Database
    dsn: str  # for asyncpg (PostgreSQL) or the file (SQLite)
    version: str


@asynccontextmanager
async def sqlite_target() -> AsyncIterator[Target]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/stats.sqlite3"
        await upgrade(url)
        db = Database(url)
        try:
            yield Target("sqlite", db, f"{tmp}/stats.sqlite3", f"SQLite {sqlite3.sqlite_version}")
        finally:
            await db.dispose()


@asynccontextmanager
async def postgresql_target(pg_url: str) -> AsyncIterator[Target]:
    """A fresh database on the server of `pg_url`, dropped at the end."""
    admin = make_url(pg_url).set(drivername="postgresql")
    if not admin.database:
        admin = admin.set(database="postgres")
    name = f"gt_stats_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    version = await conn.fetchval("SHOW server_version")
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    dsn = admin.set(database=name).render_as_string(hide_password=False)
    url = admin.set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False
    )
    try:
        await upgrade(url)
        db = Database(url)
        try:
            yield Target("postgresql", db, dsn, f"PostgreSQL {version}")
        finally:
            await db.dispose()
    finally:
        conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


async def analyze(target: Target) -> None:
    if target.backend == "sqlite":
        async with target.db.engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")
    else:
        conn = await asyncpg.connect(target.dsn)
        try:
            await conn.execute("VACUUM (ANALYZE)")
        finally:
            await conn.close()


async def size_mb(target: Target) -> float:
    if target.backend == "sqlite":
        files = [Path(target.dsn + suffix) for suffix in ("", "-wal")]
        return sum(f.stat().st_size for f in files if f.exists()) / 2**20
    conn = await asyncpg.connect(target.dsn)
    try:
        return float(await conn.fetchval("SELECT pg_database_size(current_database())")) / 2**20
    finally:
        await conn.close()


# ---------------------------------------------------------------- plans


async def explain(target: Target, statement: str, parameters: Any) -> list[str]:
    """The plan of one captured statement, as indented lines."""
    async with target.db.engine.connect() as conn:
        if target.backend == "sqlite":
            result = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            depth: dict[int, int] = {0: -1}
            lines = []
            for row in result.all():
                node, parent, _unused, detail = list(row)
                depth[node] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node] + str(detail))
            return lines
        result = await conn.exec_driver_sql("EXPLAIN " + statement, parameters)
        return [str(row[0]) for row in result.all()]


_SQLITE = re.compile(
    r"^(SCAN|SEARCH) (\S+)(?: USING (?:(COVERING )?INDEX (\S+)|(INTEGER PRIMARY KEY)))?"
    r"(?: (\(.*\)))?"
)
_PG_INDEX = re.compile(r"(Index Only Scan|Index Scan|Bitmap Index Scan) (?:using |on )(\S+)")
_PG_SEQ = re.compile(r"Seq Scan on (\S+)")


def summarise(plan: list[str], backend: str) -> str:
    """Which tables are read whole and which through an index (tables read the same way are
    named together, e.g. the three aliases of `answer` in `outcomes`)."""
    found: dict[str, list[str]] = {}  # how, with {t} for the tables -> the tables

    def add(how: str, table: str = "") -> None:
        tables = found.setdefault(how, [])
        if table and table not in tables:
            tables.append(table)

    for raw in plan:
        line = raw.strip().lstrip("->").strip()
        if backend == "sqlite":
            m = _SQLITE.match(line)
            if m:
                kind, table, covering, index, pk, condition = m.groups()
                if index and index.startswith("sqlite_autoindex") and condition:
                    index = f"{index} {condition}"  # a unique constraint: no name of ours
                if pk:
                    add("{t} by pk", table)
                elif kind == "SCAN":
                    add("**{t} full scan**" + (f" (in {index} order)" if index else ""), table)
                else:
                    add("{t} by " + str(index) + (" (covering)" if covering else ""), table)
            elif line.startswith("USE TEMP B-TREE"):
                add("temp b-tree " + line.removeprefix("USE TEMP B-TREE ").lower())
        else:
            m_seq = _PG_SEQ.search(line)
            m_idx = _PG_INDEX.search(line)
            if m_seq:
                add("**{t} seq scan**", m_seq.group(1))
            elif m_idx:
                kind, index = m_idx.groups()
                prefix = {"Index Only Scan": "index-only ", "Bitmap Index Scan": "bitmap "}
                add(prefix.get(kind, "") + str(index))
            elif line.startswith("JIT:"):
                add("JIT")
    return ", ".join(how.replace("{t}", ", ".join(tables)) for how, tables in found.items())


# ---------------------------------------------------------------- measuring


@dataclass
class Measure:
    backend: str
    query: str
    scope: str
    times: list[float]
    rows: int | None
    plan: str
    plans: list[list[str]]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times) * 1000

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.times)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] * 1000


Query = Callable[[AsyncSession], Awaitable[Any]]


async def measure(
    target: Target,
    name: str,
    scope_label: str,
    run: Callable[[], Awaitable[Any]],
    repeat: int,
    captured: list[tuple[str, Any]],
    with_plan: bool = True,
) -> Measure:
    captured.clear()
    result = await run()  # warm-up; its statements are the ones explained
    statements = list(captured)
    captured.clear()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await run()
        times.append(time.perf_counter() - t0)
    plans = []
    if with_plan:
        for statement, parameters in statements:
            plans.append(await explain(target, statement, parameters))
    summary = " ‖ ".join(summarise(plan, target.backend) for plan in plans)
    rows = len(result) if isinstance(result, list) else None
    return Measure(target.backend, name, scope_label, times, rows, summary, plans)


async def bench_target(
    target: Target,
    tables: Tables,
    plans: WavePlans,
    specs: dict[str, IndicatorSpec],
    now: datetime,
    repeat: int,
    do_analyze: bool,
    extra_indexes: Sequence[str] = (),
) -> tuple[list[Measure], float, float]:
    t0 = time.perf_counter()
    if target.backend == "sqlite":
        await write_sqlite(target.db, tables)
    else:
        await write_postgresql(target.dsn, tables)
    for statement in extra_indexes:
        async with target.db.engine.begin() as conn:
            await conn.exec_driver_sql(statement)
    if do_analyze:
        await analyze(target)
    seeding = time.perf_counter() - t0
    captured: list[tuple[str, Any]] = []

    def capture(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        captured.append((statement, parameters))

    event.listen(target.db.engine.sync_engine, "before_cursor_execute", capture)
    db = target.db
    school = tables.largest_school
    school_size = sum(1 for row in tables.rows["graduate"] if row[1] == school)
    scopes = [
        ("all schools", Scope()),
        (f"one school ({school_size:,})", Scope(institution_id=school)),
    ]
    tracking = specs["tracking"].questions

    def in_session(query: Callable[[AsyncSession], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            async with db.session() as session:
                return await query(session)

        return run

    results: list[Measure] = []
    for label, scope in scopes:
        queries: list[tuple[str, Query]] = [
            ("population", partial(stats.population, scope=scope)),
            ("wave_counts", partial(stats.wave_counts, scope=scope)),
            ("completions_per_day", partial(stats.completions_per_day, scope=scope)),
            ("outcomes (tracking)", partial(stats.outcomes, scope=scope, spec=tracking)),
            ("open_waves", partial(stats.open_waves, scope=scope, now=now)),
            ("question_counts (m2)", partial(stats.question_counts, scope=scope, wave="m2")),
        ]
        for name, query in queries:
            results.append(await measure(target, name, label, in_session(query), repeat, captured))
            print(f"  {target.backend}: {name}, {label}: {results[-1].median_ms:.0f} ms")

        async def report(sc: Scope = scope) -> Any:
            return await build_report(db, plans, specs, sc, today=now.date())

        results.append(
            await measure(target, "build_report (overview)", label, report, repeat, captured, False)
        )
        print(f"  {target.backend}: build_report, {label}: {results[-1].median_ms:.0f} ms")
    async with dashboard_pages(db, plans, now, school) as get:
        await summary_rows(target, get, scopes, plans, specs, now, repeat, captured, results)
    event.remove(target.db.engine.sync_engine, "before_cursor_execute", capture)
    return results, seeding, await size_mb(target)


async def summary_rows(
    target: Target,
    get: Callable[[str, str], Awaitable[int]],
    scopes: list[tuple[str, Scope]],
    plans: WavePlans,
    specs: dict[str, IndicatorSpec],
    now: datetime,
    repeat: int,
    captured: list[tuple[str, Any]],
    results: list[Measure],
) -> None:
    """The pages counting live, the refreshes of the summaries, the report and the pages
    reading them: before and after issue 20 in one run, over the same database."""
    db = target.db
    # Before the first refresh the pages count live (as before issue 20): the "recount" rows.
    await page_rows(target, get, scopes, repeat, captured, results, "")
    # The summaries (storage/summaries.py): the leader's first refresh counts everything;
    # a later one only the programmes marked since (here: one answer rewritten).
    questions = [spec.questions for spec in specs.values()]
    t0 = time.perf_counter()
    first = await summaries.refresh(db, questions, now, full=True)
    full_s = time.perf_counter() - t0
    assert first is not None
    results.append(
        Measure(
            target.backend, "summaries.refresh (all)", "all schools", [full_s], first.rows, "", []
        )
    )
    print(f"  {target.backend}: summaries.refresh (all): {full_s * 1000:.0f} ms")
    times = []
    for k in range(repeat):
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql(
                f"UPDATE answer SET answered_at = answered_at WHERE id = {k + 1}"
            )
        t0 = time.perf_counter()
        one = await summaries.refresh(db, questions, now)
        times.append(time.perf_counter() - t0)
        assert one is not None and one.programmes == 1
    results.append(
        Measure(
            target.backend,
            "summaries.refresh (1 programme marked)",
            "all schools",
            times,
            None,
            "",
            [],
        )
    )
    print(f"  {target.backend}: summaries.refresh (one): {results[-1].median_ms:.0f} ms")
    for label, scope in scopes:
        # Every breakdown of the indicators, as the drill-down builds it (the overview builds
        # the totals only: its GET row below).
        async def kept(sc: Scope = scope) -> Any:
            return await build_report(db, plans, specs, sc, today=now.date(), now=now, kept=True)

        results.append(
            await measure(
                target,
                "build_report (every breakdown, summaries)",
                label,
                kept,
                repeat,
                captured,
                False,
            )
        )
        print(f"  {target.backend}: build_report kept, {label}: {results[-1].median_ms:.0f} ms")
    await page_rows(target, get, scopes, repeat, captured, results, ", summaries")


async def page_rows(
    target: Target,
    get: Callable[[str, str], Awaitable[int]],
    scopes: list[tuple[str, Scope]],
    repeat: int,
    captured: list[tuple[str, Any]],
    results: list[Measure],
    suffix: str,
    pages: Sequence[str] = ("/dashboard", "/dashboard/waves/m2"),
) -> None:
    """The overview and the drill-down of m2 over HTTP, as an admin and as an officer."""
    for label, scope in scopes:
        kind = "admin" if scope.institution_id is None else "officer"
        for page in pages:

            async def fetch(path: str = page, who: str = kind) -> Any:
                return await get(who, path)

            name = f"GET {page} (page{suffix})"
            results.append(await measure(target, name, label, fetch, repeat, captured, False))
            print(f"  {target.backend}: {name}, {label}: {results[-1].median_ms:.0f} ms")


@asynccontextmanager
async def dashboard_pages(
    db: Database, plans: WavePlans, now: datetime, school: int
) -> AsyncIterator[Callable[[str, str], Awaitable[int]]]:
    """The real dashboard (aiohttp, on a loopback port) over the benchmark's database, with an
    admin of all schools and an officer of `school` logged in; yields get(who, path) -> bytes
    of the page (after checking it answered 200)."""
    settings = Settings(_env_file=None)
    rt = Runtime(
        db=db,
        settings=settings,
        bot=cast(Any, None),  # the dashboard sends nothing to Telegram
        questionnaires=QuestionnaireRegistry(),
        plans=plans,
        clock=FrozenClock(now),
    )
    cookies: dict[str, str] = {}
    async with db.session() as session:
        for who, institution in (("admin", None), ("officer", school)):
            member = Staff(
                telegram_user_id=9_000_000_000 + len(cookies),
                role="admin" if institution is None else "officer",
                institution_id=institution,
                language="en",
            )
            session.add(member)
            await session.flush()
            assert member.id is not None
            token = auth.add_login(session, member.id, now)
            cookies[who] = token
    for who, token in list(cookies.items()):
        redeemed = await auth.redeem_login(db, token, now)
        assert not isinstance(redeemed, auth.LoginProblem) and redeemed[0].id is not None
        cookies[who] = auth.Cookies(settings.key).seal(redeemed[0], auth.new_csrf())
    app = web.Application()
    add_dashboard(app, rt, secure_cookie=False)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as client:

        async def get(who: str, path: str) -> int:
            headers = {"Cookie": f"{auth.COOKIE_NAME}={cookies[who]}"}
            async with client.get(f"http://127.0.0.1:{port}{path}", headers=headers) as page:
                body = await page.read()
                if page.status != 200:
                    raise RuntimeError(f"{path} answered {page.status}")
                return len(body)

        try:
            yield get
        finally:
            await runner.cleanup()


def table(measures: list[Measure]) -> list[str]:
    lines = [
        "| database | query | scope | median ms | p95 ms | rows "
        "| plan: indexes used, **full scans** |",
        "| --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for m in measures:
        rows = "" if m.rows is None else f"{m.rows:,}"
        plan = m.plan or (
            "(build_report, question_counts for the drill-down, then Jinja and the SVG charts, "
            "over HTTP)"
            if m.query.startswith("GET")
            else "(the queries above for the marked programmes, then their rows replaced)"
            if m.query.startswith("summaries.refresh")
            else "(`names` and one read of summary_count)"
            if "summaries" in m.query
            else "(the queries above, and `names`)"
        )
        lines.append(
            f"| {m.backend} | {m.query} | {m.scope} | {m.median_ms:,.0f} | {m.p95_ms:,.0f} "
            f"| {rows} | {plan} |"
        )
    return lines


async def run(args: argparse.Namespace) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    plans = load_plans()
    specs = load_specs()
    t0 = time.perf_counter()
    tables = generate(args.graduates, args.answers_per_response, plans, now)
    generating = time.perf_counter() - t0
    command = ["python", "-m", "bench.stats_bench", *sys.argv[1:]]
    print(f"command: {' '.join(command)}")
    print(f"generated in {generating:.1f} s (not measured):")
    for line in describe(tables):
        print("  " + line)
    backends = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    measures: list[Measure] = []
    notes: list[str] = []
    for backend in backends:
        context = sqlite_target() if backend == "sqlite" else postgresql_target(args.pg_url)
        async with context as target:
            print(f"{target.version}: seeding ...")
            found, seeding, size = await bench_target(
                target, tables, plans, specs, now, args.repeat, not args.no_analyze, args.index
            )
            analysed = (
                ""
                if args.no_analyze
                else (" + ANALYZE" if backend == "sqlite" else " + VACUUM (ANALYZE)")
            )
            notes.append(
                f"{target.version}: seeding {seeding:.1f} s (migrations apart, inserts"
                f"{analysed}), database {size:,.0f} MB"
            )
            print(notes[-1])
            measures.extend(found)
    print()
    print(
        f"{machine()}, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    )
    for note in notes:
        print(note)
    print(f"runs per figure: {args.repeat} after one warm-up; now = {now.isoformat()}")
    for statement in args.index:
        print(f"extra index: {statement}")
    print()
    for line in table(measures):
        print(line)
    if args.plans:
        for m in measures:
            for i, plan in enumerate(m.plans, start=1):
                print(f"\n### {m.backend}: {m.query}, {m.scope}, statement {i}")
                for line in plan:
                    print("    " + line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--graduates", type=int, default=100_000)
    parser.add_argument(
        "--answers-per-response",
        type=int,
        default=0,
        help="at most this many answers per response (never fewer than its routing core; "
        "0: as many as the questionnaire routes to, about 10 on average)",
    )
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_URL,
        help="PostgreSQL server to create a fresh database on (default: TEST_DATABASE_URL, "
        f"else {DEFAULT_PG_URL})",
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--plans", action="store_true", help="print every plan whole")
    parser.add_argument(
        "--index",
        action="append",
        default=[],
        metavar="SQL",
        help="a CREATE INDEX statement to try, run after seeding (repeatable)",
    )
    parser.add_argument(
        "--no-analyze", action="store_true", help="no ANALYZE after seeding (as the app runs)"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
