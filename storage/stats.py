"""Counts for the statistics, straight from GROUP BY queries: a few hundred rows of numbers,
whatever the number of graduates. The maths on top (rates, indicators, suppression) is in
`conversations/indicators.py`; nothing here names a person.

Definitions (the README's "Statistics" section explains them to staff):

- graduates: every roster row (erased ones too: erasure keeps the row for these counts);
- reachable: started the bot and neither blocked it, stopped, nor was erased;
- invited: got a wave's invitation or a reminder (Telegram accepted it), or started the wave
  without one (from /survey or onboarding): invited >= started >= completed;
- started: has a response for the wave; completed: its routing core is answered and it was
  sent (the graduate pressed Send), or its wave has closed for the graduate so that it can no
  longer be sent (`counted_complete`); declined: said no to the opening consent question;
  partial: started, neither of those (an open response whose wave is still open is partial,
  however far it got);
- cohort: the graduation year;
- reach (`reach_counts`): each graduate not erased in one category, the first that holds:
  "chat" (linked in Telegram, neither blocked the bot nor opted out), "web" (has used their
  web link: their web chat exists or a response was begun there; not opted out), "email"
  (an e-mail address that neither bounced nor unsubscribed; not opted out), "bounced" (an
  address that bounced or unsubscribed), "none" (no way to reach them, opted out included);
- channel of a response: where it was begun, "telegram" or "web" (None: begun before the
  channel was recorded, "unknown"); `completed_by_channel` counts completed (graduate, wave)
  pairs per channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    and_,
    case,
    exists,
    extract,
    func,
    literal_column,
    or_,
)
from sqlalchemy import select as core_select
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Executable
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Answer,
    ChatState,
    EmailStatus,
    Graduate,
    Institution,
    Invitation,
    InvitationStatus,
    Programme,
    ResponseChannel,
    ResponseStatus,
    SurveyResponse,
)
from storage.queries import WEB_CHAT_BASE
from storage.types import utcnow


@dataclass(frozen=True)
class Scope:
    """Whose numbers: one school (None: all schools), optionally one programme and cohort."""

    institution_id: int | None = None
    programme_id: int | None = None
    cohort: int | None = None
    institution_ids: tuple[int, ...] | None = None
    """A group of schools (regional staff): only these, besides `institution_id`."""
    programme_ids: tuple[int, ...] | None = None
    """A programme team's programmes: only these, besides `programme_id`."""

    def holds(self, institution_id: int, programme_id: int | None) -> bool:
        """Whether a programme (of the school `institution_id`) is within this scope."""
        return (
            (self.institution_id is None or institution_id == self.institution_id)
            and (self.institution_ids is None or institution_id in self.institution_ids)
            and (self.programme_ids is None or programme_id in self.programme_ids)
        )

    @property
    def several_schools(self) -> bool:
        """Whether the scope may hold more than one school (breakdowns by school apply)."""
        return self.institution_id is None and (
            self.institution_ids is None or len(self.institution_ids) > 1
        )


@dataclass(frozen=True)
class PopulationRow:
    institution_id: int
    programme_id: int
    cohort: int
    graduates: int
    reachable: int
    graduation_date: date | None = None
    """Set by `population`: the rows are per graduation date, so that a wave counts only the
    graduates it has reached (its opening lies relative to the graduation date)."""


@dataclass(frozen=True)
class WaveRow:
    institution_id: int
    programme_id: int
    cohort: int
    wave: str | None
    invited: int
    started: int
    completed: int
    declined: int

    @property
    def partial(self) -> int:
        return self.started - self.completed - self.declined


@dataclass(frozen=True)
class ReachRow:
    """Graduates (not erased) of one school, programme and cohort in one reach category."""

    institution_id: int
    programme_id: int
    cohort: int
    reach: str
    count: int


REACH = ("chat", "web", "email", "bounced", "none")
"""The reach categories, in the order they are decided and shown (see the module docstring)."""

CHANNELS = (ResponseChannel.TELEGRAM.value, ResponseChannel.WEB.value, "unknown")
"""Where a response was begun; "unknown" for responses begun before it was recorded."""


@dataclass(frozen=True)
class ChannelRow:
    """Completed (graduate, wave) pairs of one school, programme, cohort and wave that were
    begun on `channel` (one of CHANNELS)."""

    institution_id: int
    programme_id: int
    cohort: int
    wave: str | None
    channel: str
    completed: int


@dataclass(frozen=True)
class DayRow:
    wave: str | None
    day: date
    completed: int
    institution_id: int | None = None
    """With `cells` (storage/summaries.py): the school, programme and cohort too."""
    programme_id: int | None = None
    cohort: int | None = None


@dataclass(frozen=True)
class OutcomeRow:
    """Completed responses of one wave with the same breakdown values and indicator answers."""

    wave: str | None
    programme_id: int
    eqf_level: int | None
    gender: str | None
    age_band: str
    activity: str | None
    related: str | None
    relevant: str | None
    """The use-of-skills answer (`IndicatorQuestions.use`)."""
    count: int
    satisfied: str | None = None
    """The satisfaction answer (a scale point, as text)."""
    occupation: str | None = None
    """The occupation answer (`IndicatorQuestions.occupation`: an ISCO-08 choice code)."""
    isco_groups: str | None = None
    """The programme's declared ISCO-08 major groups, as stored ('5,7'; None: none)."""
    pathway: str | None = None
    vet_kind: str | None = None
    institution_id: int = 0
    country: str | None = None
    """The school's country (ISO 3166-1 alpha-2)."""
    cohort: int | None = None
    """With `cells` (storage/summaries.py): the graduates' cohort (otherwise added up)."""


@dataclass(frozen=True)
class CompleterRow:
    """Graduates on the roster (programme completers, erased ones too) of one school,
    programme, graduation date and breakdown values: the denominator of the indicators over
    completers."""

    institution_id: int
    programme_id: int
    graduation_date: date
    eqf_level: int | None
    gender: str | None
    age_band: str
    count: int
    pathway: str | None = None
    vet_kind: str | None = None
    country: str | None = None

    @property
    def cohort(self) -> int:
        return self.graduation_date.year


@dataclass(frozen=True)
class QuestionRow:
    """How many responses answered `question` (when it was asked: carried answers are not
    counted), and how many stopped there without answering."""

    form_id: str
    question: str
    answered: int
    stopped: int
    wave: str | None = None
    """With `cells` (storage/summaries.py): the wave, school, programme and cohort too."""
    institution_id: int | None = None
    programme_id: int | None = None
    cohort: int | None = None


@dataclass(frozen=True)
class IndicatorQuestions:
    """The questions whose answers the EQAVET indicators count (see conversations/indicators)."""

    form_id: str
    activity: str
    related: str
    use: str
    satisfied: str
    occupation: str | None = None


AGE_BANDS = ("under_20", "20_24", "25_29", "30_plus", "unknown")
"""Age at graduation (graduation year minus birth year)."""


def cohort_of() -> ColumnElement[Any]:
    return extract("year", col(Graduate.graduation_date))


def _age_band() -> ColumnElement[Any]:
    age = cohort_of() - col(Graduate.birth_year)
    return case(
        (col(Graduate.birth_year).is_(None), "unknown"),
        (age < 20, "under_20"),
        (age < 25, "20_24"),
        (age < 30, "25_29"),
        else_="30_plus",
    )


def _reachable() -> ColumnElement[bool]:
    return and_(
        col(Graduate.chat_id).is_not(None),
        col(Graduate.unreachable_at).is_(None),
        col(Graduate.opted_out_at).is_(None),
        col(Graduate.erased_at).is_(None),
    )


def counted_complete(now: datetime) -> ColumnElement[bool]:
    """Whether a response counts as completed at `now`: its routing core is answered and the
    graduate sent it, or the wave has closed for them (it can no longer be sent; the routing
    core answered then counts, as in HESA's Graduate Outcomes). An open response of a wave that
    is still open is partial."""
    wave_closed = exists().where(
        col(Invitation.graduate_id) == col(SurveyResponse.graduate_id),
        col(Invitation.wave) == col(SurveyResponse.wave),
        col(Invitation.seq) == 0,
        col(Invitation.closes_at) <= now,
    )
    return and_(
        col(SurveyResponse.complete),
        or_(col(SurveyResponse.status) == ResponseStatus.SUBMITTED.value, wave_closed),
    )


def scope_conditions(
    scope: Scope, institution: Any, programme: Any, cohort: Any
) -> list[ColumnElement[bool]]:
    """The conditions that keep rows to `scope`, given the rows' institution, programme and
    cohort columns (graduates here; the kept summary rows in storage/summaries.py)."""
    where: list[ColumnElement[bool]] = []
    if scope.institution_id is not None:
        where.append(institution == scope.institution_id)
    if scope.programme_id is not None:
        where.append(programme == scope.programme_id)
    if scope.institution_ids is not None:
        where.append(institution.in_(scope.institution_ids))
    if scope.programme_ids is not None:
        where.append(programme.in_(scope.programme_ids))
    if scope.cohort is not None:
        where.append(cohort == scope.cohort)
    return where


def _in_scope(scope: Scope) -> list[ColumnElement[bool]]:
    return scope_conditions(
        scope, col(Graduate.institution_id), col(Graduate.programme_id), cohort_of()
    )


async def _all(session: AsyncSession, query: Executable) -> list[tuple[Any, ...]]:
    connection = await session.connection()
    return [tuple(row) for row in await connection.execute(query)]


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


def json_text(column: Any, dialect: str) -> ColumnElement[Any]:
    """A JSON column holding a string, as text (NULL for anything else that is not text)."""
    if dialect == "postgresql":
        return column.op("#>>", return_type=String)(literal_column("'{}'"))
    return func.json_extract(column, "$")


def _utc_day(column: Any, dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite stores UTC without zone


async def population(session: AsyncSession, scope: Scope) -> list[PopulationRow]:
    """Graduates and reachable graduates per school, programme and graduation date."""
    day = col(Graduate.graduation_date)
    query = (
        core_select(
            col(Graduate.institution_id),
            col(Graduate.programme_id),
            day,
            func.count(),
            func.count(case((_reachable(), 1))),
        )
        .where(*_in_scope(scope))
        .group_by(col(Graduate.institution_id), col(Graduate.programme_id), day)
    )
    rows = await _all(session, query)
    return [
        PopulationRow(int(i), int(p), _as_date(d).year, int(n), int(r), _as_date(d))
        for i, p, d, n, r in rows
    ]


def reach_of() -> ColumnElement[Any]:
    """The graduate's reach category (REACH), as SQL. A web chat is the chat state row of
    `storage.queries.web_chat_id` (created when the graduate first acts on their web link,
    not when they only open it)."""
    not_opted_out = col(Graduate.opted_out_at).is_(None)
    in_chat = and_(
        col(Graduate.chat_id).is_not(None), col(Graduate.unreachable_at).is_(None), not_opted_out
    )
    # Inline, not a parameter: PostgreSQL would take a parameter beside an integer column
    # for an integer, and -2**53 is a bigint.
    base = literal_column(str(-WEB_CHAT_BASE), BigInteger)
    web_chat = exists().where(col(ChatState.chat_id) == base - col(Graduate.id))
    answered_on_web = exists().where(
        col(SurveyResponse.graduate_id) == col(Graduate.id),
        col(SurveyResponse.channel) == ResponseChannel.WEB.value,
    )
    failed = (EmailStatus.BOUNCED.value, EmailStatus.UNSUBSCRIBED.value)
    has_email = col(Graduate.email).is_not(None)
    email_failed = col(Graduate.email_status).in_(failed)
    return case(
        (in_chat, "chat"),
        (and_(not_opted_out, or_(web_chat, answered_on_web)), "web"),
        (
            and_(
                not_opted_out,
                has_email,
                or_(col(Graduate.email_status).is_(None), ~email_failed),
            ),
            "email",
        ),
        (and_(has_email, email_failed), "bounced"),
        else_="none",
    )


async def reach_counts(session: AsyncSession, scope: Scope) -> list[ReachRow]:
    """Graduates not erased per school, programme, cohort and reach category."""
    reach = reach_of().label("reach")
    cohort = cohort_of().label("cohort")
    keys = (col(Graduate.institution_id), col(Graduate.programme_id), cohort, reach)
    query = (
        core_select(*keys, func.count())
        .where(col(Graduate.erased_at).is_(None), *_in_scope(scope))
        .group_by(*keys)
    )
    return [
        ReachRow(int(i), int(p), int(c), str(r), int(n))
        for i, p, c, r, n in await _all(session, query)
    ]


async def completed_by_channel(
    session: AsyncSession, scope: Scope, now: datetime | None = None
) -> list[ChannelRow]:
    """Completed (graduate, wave) pairs (`counted_complete` at `now`, as `wave_counts`
    counts them) per school, programme, cohort, wave and the channel the completed response
    was begun on. A pair with completed responses on two channels counts once, on the
    greatest channel name ("web" before "unknown" before "telegram")."""
    done = counted_complete(now or utcnow())
    channel = func.coalesce(col(SurveyResponse.channel), "unknown")
    response_id = col(SurveyResponse.graduate_id)
    pairs: Any = (
        core_select(
            response_id.label("gid"),
            col(SurveyResponse.wave).label("wave"),
            func.max(channel).label("channel"),
        )
        .where(done)
        .group_by(response_id, col(SurveyResponse.wave))
    )
    in_scope = _in_scope(scope)
    if in_scope:
        pairs = pairs.where(response_id.in_(core_select(col(Graduate.id)).where(*in_scope)))
    per = pairs.subquery()
    cohort = cohort_of().label("cohort")
    keys = (col(Graduate.institution_id), col(Graduate.programme_id), cohort)
    query = (
        core_select(*keys, per.c.wave, per.c.channel, func.count())
        .select_from(per)
        .join(Graduate, col(Graduate.id) == per.c.gid)
        .group_by(*keys, per.c.wave, per.c.channel)
    )
    return [
        ChannelRow(int(i), int(p), int(c), wave, str(ch), int(n))
        for i, p, c, wave, ch, n in await _all(session, query)
    ]


async def wave_counts(
    session: AsyncSession, scope: Scope, now: datetime | None = None
) -> list[WaveRow]:
    """Invited, started, completed and declined graduates per school, programme, cohort and
    wave (completed as `counted_complete` at `now`). Each (graduate, wave) pair is made
    distinct first, then counted: one sort of pairs instead of a COUNT(DISTINCT) per group."""
    done = counted_complete(now or utcnow())
    cohort = cohort_of().label("cohort")
    keys = (col(Graduate.institution_id), col(Graduate.programme_id), cohort)
    in_scope = _in_scope(scope)
    graduates = core_select(col(Graduate.id)).where(*in_scope) if in_scope else None

    response_id = col(SurveyResponse.graduate_id)
    pairs: Any = core_select(
        response_id.label("gid"),
        col(SurveyResponse.wave).label("wave"),
        func.max(case((done, 1), else_=0)).label("done"),
        func.max(case((col(SurveyResponse.declined), 1), else_=0)).label("no"),
    ).group_by(response_id, col(SurveyResponse.wave))
    if graduates is not None:
        pairs = pairs.where(response_id.in_(graduates))
    per = pairs.subquery()
    responses = (
        core_select(*keys, per.c.wave, func.count(), func.sum(per.c.done), func.sum(per.c.no))
        .select_from(per)
        .join(Graduate, col(Graduate.id) == per.c.gid)
        .group_by(*keys, per.c.wave)
    )

    invitation_id = col(Invitation.graduate_id)
    sent_pairs: Any = (
        core_select(invitation_id.label("gid"), col(Invitation.wave).label("wave"))
        .where(col(Invitation.status) == InvitationStatus.SENT.value)
        .distinct()
    )
    if graduates is not None:
        sent_pairs = sent_pairs.where(invitation_id.in_(graduates))
    # Reached: an invitation went out, or the graduate started anyway (from /survey, from
    # onboarding, or from an invitation whose row is gone): a funnel never shows fewer
    # invited than started. UNION makes each (graduate, wave) pair count once.
    started_pairs: Any = core_select(
        response_id.label("gid"), col(SurveyResponse.wave).label("wave")
    )
    if graduates is not None:
        started_pairs = started_pairs.where(response_id.in_(graduates))
    sent = sent_pairs.union(started_pairs).subquery()
    invited = (
        core_select(*keys, sent.c.wave, func.count())
        .select_from(sent)
        .join(Graduate, col(Graduate.id) == sent.c.gid)
        .group_by(*keys, sent.c.wave)
    )
    found: dict[tuple[int, int, int, str | None], list[int]] = {}
    for i, p, c, wave, started, completed, declined in await _all(session, responses):
        found[(int(i), int(p), int(c), wave)] = [0, int(started), int(completed), int(declined)]
    for i, p, c, wave, count in await _all(session, invited):
        found.setdefault((int(i), int(p), int(c), wave), [0, 0, 0, 0])[0] = int(count)
    return [WaveRow(*key, *values) for key, values in sorted(found.items(), key=_sort_key)]


def _sort_key(item: tuple[tuple[int, int, int, str | None], list[int]]) -> tuple[Any, ...]:
    (i, p, c, wave), _values = item
    return (i, p, c, wave or "")


async def completions_per_day(
    session: AsyncSession, scope: Scope, now: datetime | None = None, *, cells: bool = False
) -> list[DayRow]:
    """Completed responses (`counted_complete`) per UTC day their routing core was answered
    (with `cells`: per school, programme and cohort too)."""
    dialect = _dialect(session)
    day = _utc_day(col(SurveyResponse.completed_at), dialect).label("day")
    keys: list[Any] = [col(SurveyResponse.wave), day]
    if cells:
        keys += [col(Graduate.institution_id), col(Graduate.programme_id), cohort_of()]
    query = (
        core_select(*keys, func.count())
        .join(Graduate, col(Graduate.id) == col(SurveyResponse.graduate_id))
        .where(
            col(SurveyResponse.completed_at).is_not(None),
            counted_complete(now or utcnow()),
            *_in_scope(scope),
        )
        .group_by(*keys)
        .order_by(day)
    )
    rows = await _all(session, query)
    if cells:
        return [
            DayRow(wave, _as_date(value), int(n), int(i), int(p), int(c))
            for wave, value, i, p, c, n in rows
        ]
    return [DayRow(wave, _as_date(value), int(n)) for wave, value, n in rows]


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


async def outcomes(
    session: AsyncSession,
    scope: Scope,
    spec: IndicatorQuestions,
    now: datetime | None = None,
    *,
    cells: bool = False,
) -> list[OutcomeRow]:
    """Completed responses (`counted_complete`) of `spec.form_id`, grouped by wave,
    breakdowns (with the programme's declared ISCO groups) and the answers the indicators
    count (with `cells`: per cohort too)."""
    dialect = _dialect(session)
    questions = {
        "act": spec.activity,
        "rel": spec.related,
        "use": spec.use,
        "sat": spec.satisfied,
    }
    if spec.occupation is not None:
        questions["occ"] = spec.occupation
    answers = {name: aliased(Answer, name=f"a_{name}") for name in questions}
    values = {
        name: json_text(col(alias.value), dialect).label(name) for name, alias in answers.items()
    }
    band = _age_band().label("band")
    # Without an occupation question its column is a constant NULL (selected, not grouped).
    occupation = values.get("occ")
    keys: Sequence[Any] = (
        col(SurveyResponse.wave),
        col(Graduate.programme_id),
        col(Programme.eqf_level),
        col(Graduate.gender),
        band,
        values["act"],
        values["rel"],
        values["use"],
        values["sat"],
        *([occupation] if occupation is not None else []),
        col(Programme.isco_groups),
        col(Programme.pathway),
        col(Programme.vet_kind),
        col(Graduate.institution_id),
        col(Institution.country),
        *([cohort_of()] if cells else []),
    )
    selected = list(keys)
    if occupation is None:
        selected.insert(9, literal_column("NULL").label("occ"))
    query = (
        core_select(*selected, func.count())
        .select_from(SurveyResponse)
        .join(Graduate, col(Graduate.id) == col(SurveyResponse.graduate_id))
        .join(Programme, col(Programme.id) == col(Graduate.programme_id))
        .join(Institution, col(Institution.id) == col(Graduate.institution_id))
        .where(
            col(SurveyResponse.form_id) == spec.form_id,
            counted_complete(now or utcnow()),
            *_in_scope(scope),
        )
        .group_by(*keys)
    )
    for name, alias in answers.items():
        query = query.outerjoin(
            alias,
            and_(
                col(alias.response_id) == col(SurveyResponse.id),
                col(alias.question) == questions[name],
            ),
        )
    rows = await _all(session, query)
    return [
        OutcomeRow(
            wave,
            int(p),
            eqf,
            gender,
            str(age),
            act,
            rel,
            use,
            int(n),
            _point(sat),
            occ,
            isco,
            pathway,
            kind,
            int(i),
            country,
            int(cohort[0]) if cohort else None,
        )
        for (
            wave,
            p,
            eqf,
            gender,
            age,
            act,
            rel,
            use,
            sat,
            occ,
            isco,
            pathway,
            kind,
            i,
            country,
            *cohort,
            n,
        ) in rows
    ]


def _point(value: Any) -> str | None:
    """A scale answer as text ("4"): SQLite's json_extract gives a number, PostgreSQL text."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


async def completers(session: AsyncSession, scope: Scope) -> list[CompleterRow]:
    """The roster's graduates per school, programme, graduation date and the breakdowns of
    the indicators (EQF level, gender, age band, the programme's pathway and VET kind, the
    school's country)."""
    day = col(Graduate.graduation_date)
    band = _age_band().label("band")
    keys: Sequence[Any] = (
        col(Graduate.institution_id),
        col(Graduate.programme_id),
        day,
        col(Programme.eqf_level),
        col(Graduate.gender),
        band,
        col(Programme.pathway),
        col(Programme.vet_kind),
        col(Institution.country),
    )
    query = (
        core_select(*keys, func.count())
        .select_from(Graduate)
        .join(Programme, col(Programme.id) == col(Graduate.programme_id))
        .join(Institution, col(Institution.id) == col(Graduate.institution_id))
        .where(*_in_scope(scope))
        .group_by(*keys)
    )
    return [
        CompleterRow(
            int(i), int(p), _as_date(d), eqf, gender, str(age), int(n), pathway, kind, country
        )
        for i, p, d, eqf, gender, age, pathway, kind, country, n in await _all(session, query)
    ]


async def question_counts(
    session: AsyncSession, scope: Scope, wave: str | None, *, cells: bool = False
) -> list[QuestionRow]:
    """Per question of the wave's responses: answered, and stopped there (the response is
    still open at that question and it has no answer). With `cells`: per wave (None: every
    wave), school, programme and cohort too."""
    extra: list[Any] = []
    if cells:
        extra = [
            col(SurveyResponse.wave),
            col(Graduate.institution_id),
            col(Graduate.programme_id),
            cohort_of(),
        ]
    of_wave = [] if wave is None else [col(SurveyResponse.wave) == wave]
    answered_q = (
        core_select(col(SurveyResponse.form_id), col(Answer.question), *extra, func.count())
        .join(SurveyResponse, col(SurveyResponse.id) == col(Answer.response_id))
        .join(Graduate, col(Graduate.id) == col(SurveyResponse.graduate_id))
        .where(
            *of_wave,
            # A carried answer (kept from the previous wave) was not asked: no drop-off there.
            col(Answer.carried_from).is_(None),
            *_in_scope(scope),
        )
        .group_by(col(SurveyResponse.form_id), col(Answer.question), *extra)
    )
    at = aliased(Answer, name="at_current")
    stopped_q = (
        core_select(col(SurveyResponse.form_id), col(SurveyResponse.current), *extra, func.count())
        .join(Graduate, col(Graduate.id) == col(SurveyResponse.graduate_id))
        .outerjoin(
            at,
            and_(
                col(at.response_id) == col(SurveyResponse.id),
                col(at.question) == col(SurveyResponse.current),
            ),
        )
        .where(
            *of_wave,
            col(SurveyResponse.status) == ResponseStatus.OPEN.value,
            col(at.id).is_(None),
            *_in_scope(scope),
        )
        .group_by(col(SurveyResponse.form_id), col(SurveyResponse.current), *extra)
    )
    counts: dict[tuple[Any, ...], list[int]] = {}
    for form_id, question, *cell, n in await _all(session, answered_q):
        counts.setdefault((form_id, question, *cell), [0, 0])[0] = int(n)
    for form_id, question, *cell, n in await _all(session, stopped_q):
        if question:
            counts.setdefault((form_id, question, *cell), [0, 0])[1] = int(n)
    if cells:
        return [
            QuestionRow(f, q, a, s, w, int(i), int(p), int(c))
            for (f, q, w, i, p, c), (a, s) in sorted(counts.items(), key=lambda kv: str(kv[0]))
        ]
    return [QuestionRow(f, q, a, s) for (f, q), (a, s) in sorted(counts.items())]


async def open_waves(session: AsyncSession, scope: Scope, now: datetime) -> list[tuple[str, int]]:
    """(wave, cohort) pairs whose invitation is due and whose wave has not closed at `now`."""
    cohort = cohort_of().label("cohort")
    query = (
        core_select(col(Invitation.wave), cohort)
        .join(Graduate, col(Graduate.id) == col(Invitation.graduate_id))
        .where(
            col(Invitation.seq) == 0,
            col(Invitation.due_at) <= now,
            col(Invitation.closes_at) > now,
            *_in_scope(scope),
        )
        .group_by(col(Invitation.wave), cohort)
        .order_by(cohort, col(Invitation.wave))
    )
    return [(wave, int(c)) for wave, c in await _all(session, query)]


@dataclass(frozen=True)
class Names:
    """Codes and names of schools and programmes, for labels."""

    schools: dict[int, Institution]
    programmes: dict[int, Programme]


async def names(session: AsyncSession, scope: Scope | int | None) -> Names:
    """The schools and programmes of `scope` (or of one school's id; None: all)."""
    if not isinstance(scope, Scope):
        scope = Scope(institution_id=scope)
    schools = select(Institution)
    programmes = select(Programme)
    if scope.institution_id is not None:
        schools = schools.where(Institution.id == scope.institution_id)
        programmes = programmes.where(Programme.institution_id == scope.institution_id)
    if scope.institution_ids is not None:
        schools = schools.where(col(Institution.id).in_(scope.institution_ids))
        programmes = programmes.where(col(Programme.institution_id).in_(scope.institution_ids))
    if scope.programme_ids is not None:
        programmes = programmes.where(col(Programme.id).in_(scope.programme_ids))
    return Names(
        schools={s.id: s for s in (await session.exec(schools)).all() if s.id is not None},
        programmes={
            p.id: p
            for p in (await session.exec(programmes.order_by(col(Programme.code)))).all()
            if p.id is not None
        },
    )


@dataclass(frozen=True)
class ResponseRow:
    response: SurveyResponse
    school: str
    programme: str
    cohort: int
    answers: dict[str, Any]
    completed: bool = False
    """Counted as completed (`counted_complete`) when the rows were read."""
    carried: tuple[str, ...] = ()
    """The questions whose answers were carried from the previous wave (`Answer.carried_from`)."""

    @property
    def outcome(self) -> str:
        """``completed``, ``declined`` or ``partial``: as the statistics count it."""
        if self.completed:
            return "completed"
        return "declined" if self.response.declined else "partial"


async def iter_responses(
    session: AsyncSession,
    scope: Scope,
    form_id: str,
    wave: str | None = None,
    batch: int = 1000,
    now: datetime | None = None,
) -> AsyncIterator[ResponseRow]:
    """Every response of `form_id` in scope with its answers, batch by batch (for exports)."""
    last = 0
    done = counted_complete(now or utcnow())
    while True:
        query = (
            select(SurveyResponse, Institution.code, Programme.code, cohort_of())
            .join(Graduate, col(Graduate.id) == col(SurveyResponse.graduate_id))
            .join(Institution, col(Institution.id) == col(Graduate.institution_id))
            .join(Programme, col(Programme.id) == col(Graduate.programme_id))
            .where(
                col(SurveyResponse.form_id) == form_id,
                col(SurveyResponse.id) > last,
                *_in_scope(scope),
            )
            .order_by(col(SurveyResponse.id))
            .limit(batch)
        )
        if wave is not None:
            query = query.where(col(SurveyResponse.wave) == wave)
        rows = (await session.exec(query)).all()
        if not rows:
            return
        ids = [r.id for r, *_rest in rows if r.id is not None]
        found: dict[int, dict[str, Any]] = {i: {} for i in ids}
        carried: dict[int, list[str]] = {i: [] for i in ids}
        answers = await session.exec(select(Answer).where(col(Answer.response_id).in_(ids)))
        for answer in answers.all():
            found[answer.response_id][answer.question] = answer.value
            if answer.carried_from is not None:
                carried[answer.response_id].append(answer.question)
        counted = set(
            (
                await session.exec(
                    select(SurveyResponse.id).where(col(SurveyResponse.id).in_(ids), done)
                )
            ).all()
        )
        for response, school, programme, cohort in rows:
            assert response.id is not None
            yield ResponseRow(
                response,
                school,
                programme,
                int(cohort),
                found[response.id],
                response.id in counted,
                tuple(sorted(carried[response.id])),
            )
        last = ids[-1]
