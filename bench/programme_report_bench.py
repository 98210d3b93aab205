"""Benchmark: the programme report (issue 18) at 100,000 graduates.

The data set of bench/stats_bench.py (five schools with ten programmes each, cohorts
2024-2026, responses to pregrad, m2 and m6 routed by the real questionnaires and engine,
free-text answers included), written fast (executemany on SQLite, COPY on PostgreSQL). Then,
for the largest programme of the largest school, as an officer (beside the school) and as
an admin (beside the school and all schools):

- data: `build_programme_report` (its build_report calls: the programme, each cohort for the
  trends, the school, all schools; the answers to every closed question; the comments);
- page: programme_report.html rendered with the dashboard's templates and SVG charts;
- PDF: `render_pdf` (reportlab, A4).

Reported per step: median and p95 of --repeat runs after one warm-up; then, for one more
whole run (data + page + PDF), the peak of Python's allocations (tracemalloc) and the
process's peak RSS. Seeding is timed apart.

    .venv/bin/python -m bench.programme_report_bench [--graduates 100000]
        [--database sqlite|postgresql|both] [--pg-url postgresql://postgres@127.0.0.1:5432/test]
        [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, peak_memory_mb
from bench.stats_bench import (
    DEFAULT_PG_URL,
    PROGRAMMES,
    SCHOOLS,
    Target,
    analyze,
    describe,
    generate,
    postgresql_target,
    size_mb,
    sqlite_target,
    write_postgresql,
    write_sqlite,
)
from bot import i18n
from bot.web import dashboard
from bot.web.programme_report import ProgrammeReport, build_programme_report, page_values
from bot.web.report_pdf import render_pdf
from conversations.indicators import load_specs
from conversations.registry import QuestionnaireRegistry
from conversations.waves import load_plans
from storage.models import Programme


@dataclass
class Measure:
    backend: str
    step: str
    who: str
    runs: list[float]
    size: str = ""

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs) * 1000

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.runs)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000


async def timed(repeat: int, step: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    await step()  # warm-up
    runs: list[float] = []
    result: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await step()
        runs.append(time.perf_counter() - t0)
    return runs, result


def render_page(report: ProgrammeReport) -> str:
    env = dashboard._environment()
    return env.get_template("programme_report.html").render(
        session=None, lang=i18n.current_language(), path="/", **page_values(report, "")
    )


async def bench_target(
    target: Target, now: datetime, repeat: int, programme_id: int
) -> tuple[list[Measure], list[str]]:
    plans, specs, registry = load_plans(), load_specs(), QuestionnaireRegistry()
    async with target.db.session() as session:
        programme = await session.get(Programme, programme_id)
    assert programme is not None
    measures: list[Measure] = []
    notes: list[str] = []
    for who, all_schools in (("officer", False), ("admin", True)):

        async def build(everyone: bool = all_schools) -> ProgrammeReport:
            assert programme is not None
            return await build_programme_report(
                target.db,
                plans,
                specs,
                registry,
                programme,
                cohort=None,
                all_schools=everyone,
                now=now,
            )

        runs, report = await timed(repeat, build)
        measures.append(Measure(target.backend, "data (build_programme_report)", who, runs))

        async def page(r: ProgrammeReport = report) -> str:
            return render_page(r)

        runs, html = await timed(repeat, page)
        measures.append(Measure(target.backend, "page (HTML)", who, runs, f"{len(html):,} B"))

        async def pdf(r: ProgrammeReport = report) -> bytes:
            return await asyncio.to_thread(render_pdf, r)

        runs, data = await timed(repeat, pdf)
        measures.append(Measure(target.backend, "PDF (reportlab)", who, runs, f"{len(data):,} B"))

        tracemalloc.start()
        t0 = time.perf_counter()
        whole = await build()
        render_page(whole)
        render_pdf(whole)
        took = time.perf_counter() - t0
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        comments = sum(len(g.comments) for s in whole.sections for g in s.comments)
        questions = sum(len(s.questions) for s in whole.sections)
        notes.append(
            f"{target.backend}, {who}: one whole run (data + page + PDF) {took:.2f} s under "
            f"tracemalloc, peak Python allocations {peak / 2**20:.1f} MiB; "
            f"{len(whole.sections)} waves, {questions} question tables, "
            f"{len(whole.trends)} trends, {comments} comments listed"
        )
    return measures, notes


async def run(args: argparse.Namespace) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    plans = load_plans()
    t0 = time.perf_counter()
    tables = generate(args.graduates, 0, plans, now)
    generating = time.perf_counter() - t0
    print(f"command: python -m bench.programme_report_bench {' '.join(sys.argv[1:])}".rstrip())
    print(f"generated in {generating:.1f} s (not measured):")
    for line in describe(tables):
        print("  " + line)
    # The largest school's largest programme (PROGRAMMES[0] has the largest share).
    programme_id = (tables.largest_school - 1) * len(PROGRAMMES) + 1
    graduates = sum(1 for row in tables.rows["graduate"] if row[2] == programme_id)
    school = SCHOOLS[tables.largest_school - 1][1]
    print(f"report of: {PROGRAMMES[0][1]} at {school} ({graduates:,} graduates)")
    backends = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    measures: list[Measure] = []
    notes: list[str] = []
    for backend in backends:
        context = sqlite_target() if backend == "sqlite" else postgresql_target(args.pg_url)
        async with context as target:
            t0 = time.perf_counter()
            if backend == "sqlite":
                await write_sqlite(target.db, tables)
            else:
                await write_postgresql(target.dsn, tables)
            await analyze(target)
            seeding = time.perf_counter() - t0
            size = await size_mb(target)
            notes.append(f"{target.version}: seeding {seeding:.1f} s, database {size:,.0f} MB")
            print(notes[-1])
            with i18n.use_language("en"):
                found, more = await bench_target(target, now, args.repeat, programme_id)
            measures.extend(found)
            notes.extend(more)
    print()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"{machine()}, {memory:.0f} GiB")
    print(f"runs per figure: {args.repeat} after one warm-up; now = {now.isoformat()}")
    for note in notes:
        print(note)
    print(f"peak RSS of the process (seeding included): {peak_memory_mb():,.0f} MB")
    print()
    print("| database | step | staff | median ms | p95 ms | size |")
    print("|---|---|---|---:|---:|---|")
    for m in measures:
        figures = f"{m.median_ms:,.0f} | {m.p95_ms:,.0f}"
        print(f"| {m.backend} | {m.step} | {m.who} | {figures} | {m.size} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--graduates", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_URL,
        help="PostgreSQL server to create a fresh database on (default: TEST_DATABASE_URL, "
        f"else {DEFAULT_PG_URL})",
    )
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
