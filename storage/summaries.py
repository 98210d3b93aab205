"""The statistics kept instead of recounted (issue 20): the rows of storage/stats.py's queries
per programme, counted by the scheduler leader, added up by the overview and `/stats`.

How they stay right (docs/architecture.md, "Summary counts"):

- Every query of the overview is a sum over graduates, and a graduate belongs to one
  programme, so the rows of each programme can be counted apart and added up: the sum over the
  programmes in a scope is what the query gives for that scope. `SummaryCount` holds each
  programme's rows (with its school and each row's cohort, the scopes' filters).
- What changes a count marks its programme (`SummaryMark`): database triggers (migration
  0022) on the graduate, response, answer, invitation, web chat, programme and school rows,
  in the transaction of the change, whichever code makes it (a flow, an import, an erasure,
  a re-plan, a hand-written UPDATE). The one change that is not a row is time: a response
  counts as completed once its wave has closed (`stats.counted_complete`), so the
  programmes whose waves closed since the last refresh are counted again too.
- `refresh` (the scheduler leader, every minute) counts the marked programmes again with the
  queries the pages ran before, replaces their rows and deletes the marks it saw. A mark
  made while it counts is not deleted: the next refresh counts that programme again. So the
  summaries are the live counts as they were at `refreshed_at`; the pages say "as of".

Nothing here is ever a second way of counting: the rows are what storage/stats.py returns.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, insert, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import DBAPIError
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import stats
from storage.db import Database
from storage.models import Graduate, Invitation, SummaryCount, SummaryMark, SummaryState
from storage.stats import IndicatorQuestions, Scope


@dataclass(frozen=True)
class _Kind:
    row: type
    counts: tuple[str, ...]
    dates: tuple[str, ...] = ()
    cells_only: tuple[str, ...] = ()
    """Fields the refresh groups by (to filter by scope) that the pages' rows add up."""
    fill: tuple[tuple[str, Any], ...] = ()
    """Values of the row's fields that are not kept (`totals`)."""

    def key_fields(self) -> list[str]:
        skip = set(self.counts) | set(self.cells_only)
        return [f.name for f in dataclasses.fields(self.row) if f.name not in skip]

    @functools.cached_property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.key_fields())


KINDS: dict[str, _Kind] = {
    "population": _Kind(stats.PopulationRow, ("graduates", "reachable"), ("graduation_date",)),
    "waves": _Kind(stats.WaveRow, ("invited", "started", "completed", "declined")),
    "channels": _Kind(stats.ChannelRow, ("completed",)),
    "reach": _Kind(stats.ReachRow, ("count",)),
    "days": _Kind(
        stats.DayRow, ("completed",), ("day",), ("institution_id", "programme_id", "cohort")
    ),
    "completers": _Kind(stats.CompleterRow, ("count",), ("graduation_date",)),
    "outcomes": _Kind(stats.OutcomeRow, ("count",), (), ("cohort",)),
    # The outcome rows without their breakdowns: all the indicators' totals need (the
    # overview), a tenth of the rows.
    "totals": _Kind(
        stats.OutcomeRow,
        ("count",),
        (),
        (
            "programme_id",
            "eqf_level",
            "gender",
            "age_band",
            "pathway",
            "vet_kind",
            "institution_id",
            "country",
            "cohort",
        ),
        (("programme_id", 0), ("eqf_level", None), ("gender", None), ("age_band", "")),
    ),
    "questions": _Kind(
        stats.QuestionRow,
        ("answered", "stopped"),
        (),
        ("wave", "institution_id", "programme_id", "cohort"),
    ),
}


def outcomes_kind(questions: IndicatorQuestions) -> str:
    """The kind of the outcome rows of one questionnaire's indicator questions."""
    return "outcomes:" + json.dumps(dataclasses.astuple(questions), separators=(",", ":"))


def totals_kind(questions: IndicatorQuestions) -> str:
    """The kind of the outcome rows without breakdowns (`KINDS["totals"]`)."""
    return "totals:" + json.dumps(dataclasses.astuple(questions), separators=(",", ":"))


def without_breakdowns(rows: Sequence[stats.OutcomeRow]) -> list[stats.OutcomeRow]:
    """Outcome rows (with their cells) added up over their breakdowns: a "totals" row keeps
    the wave, the answers the indicators count and the programme's ISCO groups."""
    found: dict[stats.OutcomeRow, int] = {}
    for row in rows:
        key = dataclasses.replace(
            row,
            count=0,
            eqf_level=None,
            gender=None,
            age_band="",
            pathway=None,
            vet_kind=None,
            country=None,
        )
        found[key] = found.get(key, 0) + row.count
    return [dataclasses.replace(row, count=n) for row, n in found.items()]


def questions_kind(wave: str | None) -> str:
    """The kind of the question rows (answered, stopped there) of one wave's responses."""
    return "questions:" + json.dumps(wave)


def _kind_of(kind: str) -> _Kind:
    return KINDS[kind.split(":", 1)[0]]


def _value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def encode(kind: str, row: Any) -> dict[str, Any]:
    """A summary row (the values of SummaryCount's columns) for one row of a query."""
    spec = _kind_of(kind)
    counts = [int(getattr(row, name)) for name in spec.counts]
    counts += [0] * (4 - len(counts))
    key = [_value(getattr(row, name)) for name in spec.keys]
    return {
        "kind": kind,
        "institution_id": row.institution_id,
        "programme_id": row.programme_id,
        "cohort": row.cohort,
        "key": json.dumps(key, separators=(",", ":")),
        "n1": counts[0],
        "n2": counts[1],
        "n3": counts[2],
        "n4": counts[3],
    }


def decode(kind: str, key: str, counts: Sequence[int]) -> Any:
    """The query's row back from a summary row's key and (added up) counts."""
    spec = _kind_of(kind)
    values: dict[str, Any] = dict(spec.fill)
    values.update(zip(spec.keys, json.loads(key), strict=True))
    for name in spec.dates:
        if values.get(name) is not None:
            values[name] = date.fromisoformat(values[name])
    values.update(zip(spec.counts, (int(n) for n in counts), strict=False))
    return spec.row(**values)


@dataclass
class Counts:
    """The rows the overview needs for one scope, as of `as_of`."""

    as_of: datetime
    population: list[stats.PopulationRow] = field(default_factory=list)
    waves: list[stats.WaveRow] = field(default_factory=list)
    channels: list[stats.ChannelRow] = field(default_factory=list)
    reach: list[stats.ReachRow] = field(default_factory=list)
    days: list[stats.DayRow] = field(default_factory=list)
    completers: list[stats.CompleterRow] = field(default_factory=list)
    outcomes: dict[str, list[stats.OutcomeRow]] = field(default_factory=dict)
    """Per form id."""
    questions: list[stats.QuestionRow] | None = None
    """The question rows of the wave asked for (None: none asked for)."""


def _in_scope(scope: Scope) -> list[Any]:
    return stats.scope_conditions(
        scope,
        col(SummaryCount.institution_id),
        col(SummaryCount.programme_id),
        col(SummaryCount.cohort),
    )


async def refreshed_at(session: AsyncSession) -> datetime | None:
    """When the summaries were last counted (None: never)."""
    state = await session.get(SummaryState, 1)
    return state.refreshed_at if state is not None else None


async def read(
    session: AsyncSession,
    scope: Scope,
    questions: Sequence[IndicatorQuestions],
    wave: str | None = None,
    *,
    totals: bool = False,
) -> Counts | None:
    """The overview's rows of `scope` (with `wave`: that wave's question rows too), added
    up from the summaries in one statement (one snapshot); None when they were never counted
    (count live then). `totals`: the outcome rows without their breakdowns (enough for the
    indicators' totals; the other breakdowns of such rows are placeholders)."""
    as_of = await refreshed_at(session)
    if as_of is None:
        return None
    kind_of = totals_kind if totals else outcomes_kind
    by_form = {kind_of(q): q.form_id for q in questions}
    kinds = [k for k in KINDS if k not in ("outcomes", "totals", "questions")] + list(by_form)
    if wave is not None:
        kinds.append(questions_kind(wave))
    query = (
        core_select(
            col(SummaryCount.kind),
            col(SummaryCount.key),
            func.sum(col(SummaryCount.n1)),
            func.sum(col(SummaryCount.n2)),
            func.sum(col(SummaryCount.n3)),
            func.sum(col(SummaryCount.n4)),
        )
        .where(col(SummaryCount.kind).in_(kinds), *_in_scope(scope))
        .group_by(col(SummaryCount.kind), col(SummaryCount.key))
    )
    found = Counts(as_of, outcomes={form_id: [] for form_id in by_form.values()})
    if wave is not None:
        found.questions = []
    lists: dict[str, list[Any]] = {
        "population": found.population,
        "waves": found.waves,
        "channels": found.channels,
        "reach": found.reach,
        "days": found.days,
        "completers": found.completers,
    }
    connection = await session.connection()
    for kind, key, *counts in await connection.execute(query):
        target: list[Any]
        if kind in by_form:
            target = found.outcomes[by_form[kind]]
        elif kind.startswith("questions:") and found.questions is not None:
            target = found.questions
        else:
            target = lists[kind]
        target.append(decode(kind, key, counts))
    found.days.sort(key=lambda row: row.day)
    if found.questions is not None:
        found.questions.sort(key=lambda row: (row.form_id, row.question))
    return found


async def count(
    session: AsyncSession,
    programmes: Sequence[int] | None,
    questions: Sequence[IndicatorQuestions],
    now: datetime,
) -> list[dict[str, Any]]:
    """The summary rows of `programmes` (None: all), counted live at `now`."""
    scope = Scope() if programmes is None else Scope(programme_ids=tuple(sorted(programmes)))
    rows: list[dict[str, Any]] = []
    found: list[tuple[str, Sequence[Any]]] = [
        ("population", await stats.population(session, scope)),
        ("waves", await stats.wave_counts(session, scope, now)),
        ("channels", await stats.completed_by_channel(session, scope, now)),
        ("reach", await stats.reach_counts(session, scope)),
        ("days", await stats.completions_per_day(session, scope, now, cells=True)),
        ("completers", await stats.completers(session, scope)),
    ]
    for q in questions:
        outcome_rows = await stats.outcomes(session, scope, q, now, cells=True)
        found.append((outcomes_kind(q), outcome_rows))
        found.append((totals_kind(q), without_breakdowns(outcome_rows)))
    for kind, kind_rows in found:
        rows.extend(encode(kind, row) for row in kind_rows)
    for question in await stats.question_counts(session, scope, None, cells=True):
        rows.append(encode(questions_kind(question.wave), question))
    return rows


async def _closed_since(session: AsyncSession, since: datetime, now: datetime) -> set[int]:
    """Programmes with a wave that closed for one of their graduates in (since, now]: their
    unsent responses now count as completed."""
    query = (
        core_select(col(Graduate.programme_id))
        .join(Invitation, col(Invitation.graduate_id) == col(Graduate.id))
        .where(
            col(Invitation.seq) == 0,
            col(Invitation.closes_at) > since,
            col(Invitation.closes_at) <= now,
        )
        .distinct()
    )
    return {int(p) for (p,) in await (await session.connection()).execute(query)}


@dataclass(frozen=True)
class Refreshed:
    programmes: int | None
    """How many programmes were counted again (None: all)."""
    rows: int


async def _write(
    session: AsyncSession,
    generation: int,
    programmes: set[int] | None,
    rows: list[dict[str, Any]],
    now: datetime,
) -> bool:
    """Replace the rows of `programmes` (None: all), unless another refresh finished since
    `generation` was read (then nothing is written: False)."""
    connection = await session.connection()
    moved = await connection.execute(
        update(SummaryState)
        .where(col(SummaryState.id) == 1, col(SummaryState.generation) == generation)
        .values(refreshed_at=now, generation=generation + 1)
    )
    if moved.rowcount != 1:
        return False
    if programmes is None:
        await connection.execute(delete(SummaryCount))
    else:
        ordered = sorted(programmes)
        for start in range(0, len(ordered), 1000):
            chunk = ordered[start : start + 1000]
            await connection.execute(
                delete(SummaryCount).where(col(SummaryCount.programme_id).in_(chunk))
            )
    for start in range(0, len(rows), 5000):
        await connection.execute(insert(SummaryCount), rows[start : start + 5000])
    return True


async def refresh(
    db: Database,
    questions: Sequence[IndicatorQuestions],
    now: datetime,
    *,
    full: bool = False,
) -> Refreshed | None:
    """Count again the programmes marked since the last refresh (all of them the first time,
    or with `full`), as of `now`. None: another refresh finished first (nothing written)."""
    if db.dialect == "postgresql":
        return await _refresh_postgresql(db, questions, now, full)
    return await _refresh_sqlite(db, questions, now, full)


async def _refresh_sqlite(
    db: Database, questions: Sequence[IndicatorQuestions], now: datetime, full: bool
) -> Refreshed | None:
    # SQLite gives out mark ids in commit order (one writer at a time, AUTOINCREMENT): every
    # mark up to the largest seen was committed before the counting below started, and any
    # later one is kept. Counting takes no write lock; only the short write at the end does.
    async with db.session() as session:
        state = await session.get(SummaryState, 1)
        assert state is not None, "migration 0022 writes the state row"
        generation, since = state.generation, state.refreshed_at
        marks = await (await session.connection()).execute(
            core_select(col(SummaryMark.programme_id), func.max(col(SummaryMark.id))).group_by(
                col(SummaryMark.programme_id)
            )
        )
        marked = [(int(programme_id), int(top or 0)) for programme_id, top in marks]
        last = max((top for _programme, top in marked), default=0)
        programmes: set[int] | None = {programme for programme, _top in marked}
        if full or since is None:
            programmes = None
        else:
            assert programmes is not None
            programmes |= await _closed_since(session, since, now)
        rows = await _count_marked(session, programmes, questions, now)
    async with db.session() as session:
        if not await _write(session, generation, programmes, rows, now):
            await session.rollback()
            return None
        connection = await session.connection()
        await connection.execute(delete(SummaryMark).where(col(SummaryMark.id) <= last))
    return Refreshed(None if programmes is None else len(programmes), len(rows))


async def _count_marked(
    session: AsyncSession,
    programmes: set[int] | None,
    questions: Sequence[IndicatorQuestions],
    now: datetime,
) -> list[dict[str, Any]]:
    if programmes is None:
        return await count(session, None, questions, now)
    return await count(session, sorted(programmes), questions, now) if programmes else []


def _serialization_failure(exc: DBAPIError) -> bool:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code == "40001" or "could not serialize" in str(orig)


async def _refresh_postgresql(
    db: Database, questions: Sequence[IndicatorQuestions], now: datetime, full: bool
) -> Refreshed | None:
    # One REPEATABLE READ transaction: the marks it deletes are exactly those its snapshot
    # sees, and it counts from that same snapshot. Marks committed meanwhile stay. Writers
    # wait for nothing (the marks have no unique key); readers see the old rows until commit.
    try:
        async with db.session() as session:
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            state = await session.get(SummaryState, 1)
            assert state is not None, "migration 0022 writes the state row"
            generation, since = state.generation, state.refreshed_at
            connection = await session.connection()
            # One row per programme back, however many marks (an import makes one a row).
            gone = delete(SummaryMark).returning(col(SummaryMark.programme_id)).cte("gone")
            deleted = await connection.execute(core_select(gone.c.programme_id).distinct())
            programmes: set[int] | None = {int(p) for (p,) in deleted}
            if full or since is None:
                programmes = None
            else:
                assert programmes is not None
                programmes |= await _closed_since(session, since, now)
            rows = await _count_marked(session, programmes, questions, now)
            if not await _write(session, generation, programmes, rows, now):
                await session.rollback()
                return None
    except DBAPIError as exc:
        if _serialization_failure(exc):
            return None
        raise
    return Refreshed(None if programmes is None else len(programmes), len(rows))
