"""Benchmark: what the summary marks (migration 0022's triggers) cost a write.

An answer is the most frequent write: the bench writes N answers, one transaction each (as a
graduate's button press commits one), on a migrated database with the triggers, and on the
same database with them dropped, alternating rounds so that a busy machine weighs on both
alike. Reported: the median time per transaction and the marks written per answer.

    .venv/bin/python -m bench.summary_marks_bench [--answers 2000] [--rounds 3]
        [--database sqlite|postgresql|both] [--pg-url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from types import ModuleType

import asyncpg
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Answer, Graduate, Institution, Programme, SummaryMark, SurveyResponse

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
MIGRATION = (
    Path(__file__).resolve().parent.parent
    / "storage"
    / "migrations"
    / "versions"
    / "0022_summary_counts.py"
)


def _migration() -> ModuleType:
    spec = importlib.util.spec_from_file_location("summary_counts_migration", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trigger_sql(dialect: str, create: bool) -> list[str]:
    m = _migration()
    found: list[str] = []
    for table, (events, _select, _moved) in m.MARKS.items():
        if dialect == "postgresql":
            if create:
                found.append(
                    f"CREATE TRIGGER summary_mark_{table} AFTER {' OR '.join(events)} ON {table} "
                    f"FOR EACH ROW EXECUTE FUNCTION summary_mark_{table}()"
                )
            else:
                found.append(f"DROP TRIGGER summary_mark_{table} ON {table}")
        elif create:
            found.extend(m._sqlite_triggers(table))
        else:
            found.extend(f"DROP TRIGGER summary_mark_{table}_{e.lower()}" for e in events)
    return found


@asynccontextmanager
async def database(backend: str, pg_url: str) -> AsyncIterator[Database]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/marks.db"
            await upgrade(url)
            db = Database(url)
            try:
                yield db
            finally:
                await db.dispose()
        return
    name = f"bench_marks_{uuid.uuid4().hex[:8]}"
    admin = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    target = make_url(pg_url).set(drivername="postgresql+asyncpg", database=name)
    rendered = target.render_as_string(hide_password=False)
    try:
        await upgrade(rendered)
        db = Database(rendered)
        try:
            yield db
        finally:
            await db.dispose()
    finally:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await conn.close()


async def seed(db: Database, responses: int) -> list[int]:
    async with db.session() as session:
        school = Institution(code="s", name="School", country="NL", default_language="nl")
        session.add(school)
        await session.flush()
        programme = Programme(institution_id=school.id or 0, code="P", name="P", eqf_level=4)
        session.add(programme)
        await session.flush()
        ids = []
        for k in range(responses):
            graduate = Graduate(
                institution_id=school.id or 0,
                programme_id=programme.id or 0,
                student_ref=f"g{k}",
                graduation_date=date(2025, 6, 30),
            )
            session.add(graduate)
            await session.flush()
            response = SurveyResponse(
                graduate_id=graduate.id or 0, form_id="tracking", version="1", wave="m2"
            )
            session.add(response)
            await session.flush()
            ids.append(response.id or 0)
    return ids


async def write_answers(db: Database, responses: list[int], question: str) -> list[float]:
    """One answer per transaction; the seconds each took."""
    times = []
    for response_id in responses:
        t0 = time.perf_counter()
        async with db.session() as session:
            connection = await session.connection()
            await connection.execute(
                insert(Answer), {"response_id": response_id, "question": question, "value": 1}
            )
        times.append(time.perf_counter() - t0)
    return times


async def marks(db: Database) -> int:
    async with db.session() as session:
        connection = await session.connection()
        return int(
            (await connection.execute(select(func.count()).select_from(SummaryMark))).one()[0]
        )


async def run_backend(backend: str, pg_url: str, answers: int, rounds: int) -> list[str]:
    async with database(backend, pg_url) as db:
        responses = await seed(db, answers)
        await write_answers(db, responses, "warm-up")  # not measured
        results: dict[str, list[float]] = {"with triggers": [], "without": []}
        before = await marks(db)
        written = 0
        for r in range(rounds):
            for label in ("with triggers", "without"):
                create = label == "with triggers"
                await _switch(db, on=create)
                times = await write_answers(db, responses, f"Q{r}{'t' if create else 'n'}")
                results[label].extend(times)
                if create:
                    written += answers
        marked = await marks(db) - before
    lines = []
    for label, times in results.items():
        lines.append(
            f"| {backend} | {label} | {len(times):,} | {statistics.median(times) * 1000:.2f} "
            f"| {sorted(times)[int(0.95 * len(times)) - 1] * 1000:.2f} |"
        )
    lines.append(f"| {backend} | marks per answer (with triggers) | {marked / written:.2f} | | |")
    return lines


_ON: dict[int, bool] = {}


async def _switch(db: Database, *, on: bool) -> None:
    if _ON.get(id(db), True) == on:
        return
    async with db.engine.begin() as conn:
        for statement in _trigger_sql(db.dialect, create=on):
            await conn.exec_driver_sql(statement)
    _ON[id(db)] = on


async def main_async(args: argparse.Namespace) -> None:
    backends = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    print(f"command: python -m bench.summary_marks_bench {' '.join(sys.argv[1:])}")
    print(machine())
    print("| database | writes | answers | median ms | p95 ms |")
    print("| --- | --- | ---: | ---: | ---: |")
    for backend in backends:
        for line in await run_backend(backend, args.pg_url, args.answers, args.rounds):
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--answers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_URL)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
