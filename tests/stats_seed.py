"""A small, designed data set for the statistics (tests/test_stats.py, the dashboard tests).

Written straight with the models, no bot. Two schools, three programmes, two cohorts, 55
graduates; the default wave plan (pregrad, m2, m6, m12: conversations/waves.yaml; m12 responses
only with `seed_m12`, at the end of this module); invitations
with the due and closing times of `conversations.waves.schedule`.

    school  country timezone          programmes            graduation dates
    alfa    NL      Europe/Amsterdam  P1 (EQF 4), P2 (EQF 3) 2025-06-30, 2026-06-30
    beta    ES      Europe/Madrid     P3 (EQF 4)             2025-06-27, 2026-06-26

Staff: an admin (no school, telegram user ADMIN_USER_ID) and an officer of alfa
(OFFICER_USER_ID).

Every graduate (`describe()` renders this table from ROWS; a test keeps the two equal).
status: linked (chat_id set), unlinked (never started the bot), blocked (unreachable_at set),
opted_out (opted_out_at set), erased (as storage/erasure.py leaves a row: no chat, gender
or birth year, opted out and erased). invitations: per wave the status of seq 0, 1, ...
(S sent, K skipped, F failed, P pending). Responses: complete (submitted, routing core
answered), complete-open (core answered, still open at `at`), partial (open, stopped at
`at`), declined (said no to the consent question). Times are UTC. Answers stored: C0 (P0 in
pregrad) and Q1 (P1), and the core of the branch: E1=under_1_month, E2=permanent, E6, E7 for
employed, self_employed, working_and_studying; S1=higher_vet for studying and
working_and_studying; U1=3 for unemployed_looking; O1=caring for other.

    ref prog cohort gender  born status    invitations
    --- ---- ------ ------- ---- --------- -----------
    A01 P1   2025   female  2006 linked    m2:SK m6:S
        m2 complete   employed E6=completely E7=a_lot 2025-08-30 11:00
        m6 complete   employed E6=completely E7=a_lot 2026-01-05 10:00
    A02 P1   2025   female  2006 linked    m2:SK m6:S
        m2 complete   employed E6=completely E7=a_lot 2025-08-31 20:00
        m6 complete   employed E6=partly E7=a_lot 2026-01-07 18:00
    A03 P1   2025   female  2005 linked    m2:S m6:S
        m2 complete   employed E6=completely E7=not_at_all 2025-09-01 09:00
    A04 P1   2025   male    2004 linked    m2:S m6:S
        m2 complete   employed E6=partly E7=a_lot 2025-09-02 12:00
    A05 P1   2025   male    2003 linked    m2:S m6:S
        m2 complete   employed E6=not_at_all E7=not_at_all 2025-09-02 19:30
    A06 P1   2025   female  2002 linked    m2:S
        m2 complete   self_employed E6=completely E7=a_little 2025-09-03 08:45
    A07 P1   2025   female  2005 linked    m2:S
        m2 complete   working_and_studying E6=completely E7=a_lot 2025-09-04 16:00
    A08 P1   2025   male    2006 linked    m2:S
        m2 complete   working_and_studying E6=completely E7=a_lot 2025-09-05 10:10
    A09 P1   2025   female  2004 linked    m2:S
        m2 complete   working_and_studying E6=partly E7=not_at_all 2025-09-07 21:00
    A10 P1   2025   other   2004 linked    m2:SS
        m2 complete   working_and_studying E6=not_at_all E7=not_at_all 2025-09-16 09:00
    A11 P1   2025   female  1999 linked    m2:SS
        m2 complete   working_and_studying E6=not_at_all E7=not_at_all 2025-09-18 14:00
    A12 P1   2025   male    2005 linked    m2:SS
        m2 complete-open at U2 unemployed_looking 2025-09-21 23:30
    A13 P1   2025   female  2005 linked    m2:SS
        m2 partial at Q1 (C0)
    A14 P1   2025   male    2004 linked    m2:SS
        m2 partial at E3 (C0 Q1=employed E1 E2)
    A15 P1   2025   female  2006 linked    m2:S
        m2 declined
    A16 P1   2025   male    2005 linked    m2:SSSS
    A17 P1   2025   female  2005 unlinked
    A18 P1   2025   male    2004 blocked   m2:SF
    A21 P1   2026   female  2008 linked
    A22 P1   2026   male    2007 linked
    A23 P1   2026   other   2008 unlinked
    A24 P1   2026   female  2007 opted_out
    B01 P2   2025   male    2006 linked    m2:SS
        m2 complete   employed E6=completely E7=a_lot 2025-09-19 11:00
    B02 P2   2025   female  2007 linked    m2:SS
        m2 complete   studying 2025-09-22 10:00
    B03 P2   2025   male    2006 linked    m2:SS
        m2 complete   studying 2025-09-23 15:00
    B04 P2   2025   male    2000 opted_out m2:SS
        m2 complete   studying 2025-09-23 20:00
    B05 P2   2025   female  2006 linked    m2:SS
        m2 complete   unemployed_looking 2025-09-24 09:30
    B06 P2   2025   male    2005 linked    m2:S
        m2 declined
    B07 P2   2025   female  2006 opted_out m2:SK
    B08 P2   2025   female  2005 linked    m2:SS
        m2 partial at S1 (C0 Q1=studying)
    B21 P2   2026   male    2008 linked
    B22 P2   2026   female  2007 unlinked
    B23 P2   2026   -       -    erased
    C01 P3   2025   male    2003 linked    m2:SK
        m2 complete   employed E6=partly E7=a_little 2025-08-27 09:15
    C02 P3   2025   female  1990 linked    m2:SK
        m2 complete   self_employed E6=not_at_all E7=a_little 2025-08-27 18:40
    C03 P3   2025   male    2004 linked    m2:SK
        m2 complete   working_and_studying E6=not_at_all E7=not_at_all 2025-08-28 07:05
    C04 P3   2025   unknown 2005 linked    m2:SS
        m2 complete   studying 2025-09-25 12:00
    C05 P3   2025   -       -    erased    m2:SS
        m2 complete   studying 2025-09-26 17:00
    C06 P3   2025   female  -    linked    m2:SSS
        m2 complete   other 2025-09-28 21:00
    C07 P3   2025   male    2004 linked    m2:SS
        m2 partial at E2 (C0 Q1=self_employed E1)
    C08 P3   2025   female  2003 linked    m2:SS
        m2 partial at Q1 (C0)
    C09 P3   2025   male    2002 linked    m2:S
        m2 declined
    C10 P3   2025   female  2004 linked    m2:SSSS
    C11 P3   2025   male    2005 unlinked
    D01 P3   2026   female  2008 linked    pregrad:S m2:P
        pregrad complete   work 2026-05-15 09:00
    D02 P3   2026   male    2008 linked    pregrad:S
        pregrad complete   further_study 2026-05-15 12:00
    D03 P3   2026   female  2007 linked    pregrad:S
        pregrad complete   work_and_study 2026-05-16 10:00
    D04 P3   2026   male    2008 linked    pregrad:S
        pregrad complete   own_business 2026-05-17 19:00
    D05 P3   2026   other   2008 linked    pregrad:S
        pregrad complete   not_sure 2026-05-17 20:00
    D06 P3   2026   female  2008 linked    pregrad:SSS
        pregrad complete   work 2026-05-29 10:00
    D07 P3   2026   male    2007 linked    pregrad:S
        pregrad declined
    D08 P3   2026   female  2008 linked    pregrad:SS
        pregrad partial at P1 (P0)
    D09 P3   2026   male    2008 linked    pregrad:SSS
    D10 P3   2026   female  2008 unlinked
    D11 P3   2026   male    2007 blocked   pregrad:F

What follows from it (the expectations of tests/test_stats.py, counted by hand):

    graduates / reachable   2025       2026       both
    P1 (alfa)               18 / 16    4 / 2      22 / 18   (A17 unlinked, A18 blocked;
    P2 (alfa)                8 / 6     3 / 1      11 / 7     A23, B22 unlinked, A24, B04,
    P3 (beta)               11 / 9    11 / 9      22 / 18    B07 opted out, B23, C05 erased,
    all                     37 / 31   18 / 12     55 / 43    C11, D10 unlinked, D11 blocked)

    m2 (cohort 2025)  invited started complete partial declined
    P1                17      15      12       2       1        (A18: sent, then failed)
    P2                 8       7       5       1       1
    P3                10       9       6       2       1
    all               35      31      23       5       3
    pregrad (beta 2026): invited 9 (D11 failed), started 8, complete 6, partial 1, declined 1.
    m6 (alfa 2025): invited 5, started 2, complete 2.

    m2 respondents  employed+self  working_and_studying  studying  looking  other  total
    P1                 5+1 = 6            5                 0         1       0      12
    P2                 1                  0                 3         1       0       5
    P3                 1+1 = 2            1                 2         0       1       6
    all                9                  6                 5         2       1      23

    m2 respondents  female male other unknown | under_20 20_24 25_29 30_plus unknown
    P1                 7     4     1     0    |    3       8     1      0       0
    P2                 2     3     0     0    |    4       0     1      0       0
    P3                 2     2     0     2    |    0       3     0      1       2

Completions per week (Monday, UTC days): m2 2025-08-25: 5, 09-01: 7, 09-08: 0, 09-15: 4
(A12 at Sunday 23:30 UTC, Monday in Amsterdam), 09-22: 7; m6 2026-01-05: 2; pregrad
2026-05-11: 5, 05-18: 0, 05-25: 1.

Invitation windows (seq 0 due, closes; from the default plan): m2 alfa 2025 2025-08-30
08:00 to 2025-10-29 23:00; m2 beta 2025 2025-08-27 08:00 to 2025-10-26 23:00; m6 alfa 2025
2025-12-30 09:00 to 2026-02-27 23:00; pregrad beta 2026 2026-05-15 08:00 to 2026-06-25
22:00; m2 beta 2026 (D01, pending) 2026-08-26 08:00 to 2026-10-25 23:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from conversations.registry import QuestionnaireRegistry
from conversations.waves import load_plans, schedule
from storage.db import Database
from storage.models import (
    Answer,
    Graduate,
    Institution,
    Invitation,
    InvitationStatus,
    Programme,
    ResponseStatus,
    Staff,
    StaffRole,
    SurveyResponse,
)

ADMIN_USER_ID = 990_001
"""Telegram user id of the seeded admin (no school: sees all)."""
OFFICER_USER_ID = 990_002
"""Telegram user id of the seeded alumni officer of alfa."""

VERSIONS = {
    form_id: QuestionnaireRegistry().deployed(form_id).version
    for form_id in ("tracking", "pregrad")
}
"""The deployed version of each questionnaire the seeded responses name (read from the
files, so that a new version of a questionnaire needs no change here)."""
CHAT_BASE = 700_000

SCHOOLS: dict[str, tuple[str, str, str, str]] = {
    # code: name, country, language, timezone
    "alfa": ("Alfa College", "NL", "nl", "Europe/Amsterdam"),
    "beta": ("Institut Beta", "ES", "es", "Europe/Madrid"),
}
PROGRAMMES: dict[str, tuple[str, str, int]] = {
    # code: school, name, EQF level
    "P1": ("alfa", "Software developer", 4),
    "P2": ("alfa", "Cook", 3),
    "P3": ("beta", "Administració", 4),
}
GRADUATION: dict[tuple[str, int], date] = {
    ("alfa", 2025): date(2025, 6, 30),
    ("alfa", 2026): date(2026, 6, 30),
    ("beta", 2025): date(2025, 6, 27),
    ("beta", 2026): date(2026, 6, 26),
}
STATUS_LETTERS = {
    "S": InvitationStatus.SENT,
    "K": InvitationStatus.SKIPPED,
    "F": InvitationStatus.FAILED,
    "P": InvitationStatus.PENDING,
}
EMPLOYED = ("employed", "self_employed", "working_and_studying")
STUDYING = ("studying", "working_and_studying")


def utc(text: str) -> datetime:
    """'2025-08-30 11:00' as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Resp:
    """One response: kind is complete, complete-open, partial or declined."""

    wave: str
    kind: str
    answers: dict[str, Any]
    current: str = ""
    completed_at: datetime | None = None
    summary: str = ""

    @property
    def form_id(self) -> str:
        return "pregrad" if self.wave == "pregrad" else "tracking"


def tracking_answers(
    activity: str, related: str | None = None, relevant: str | None = None
) -> dict[str, Any]:
    answers: dict[str, Any] = {"C0": "yes", "Q1": activity}
    if activity in EMPLOYED:
        answers |= {"E1": "under_1_month", "E2": "permanent", "E6": related, "E7": relevant}
    if activity in STUDYING:
        answers["S1"] = "higher_vet"
    if activity == "unemployed_looking":
        answers["U1"] = 3
    if activity in ("not_available", "other"):
        answers["O1"] = "caring"
    return answers


def done(
    wave: str, when: str, activity: str, related: str | None = None, relevant: str | None = None
) -> Resp:
    """A complete, submitted tracking response."""
    text = activity + (f" E6={related} E7={relevant}" if related else "")
    return Resp(
        wave,
        "complete",
        tracking_answers(activity, related, relevant),
        completed_at=utc(when),
        summary=f"{text} {when}",
    )


def open_done(wave: str, when: str, current: str, activity: str) -> Resp:
    """Routing core answered, still open (answering the optional questions) at `current`."""
    return Resp(
        wave,
        "complete-open",
        tracking_answers(activity),
        current=current,
        completed_at=utc(when),
        summary=f"at {current} {activity} {when}",
    )


def partial(wave: str, current: str, answers: dict[str, Any]) -> Resp:
    shown = " ".join(f"{k}={v}" if k in ("Q1", "P1") else k for k, v in answers.items())
    return Resp(wave, "partial", answers, current=current, summary=f"at {current} ({shown})")


def declined(wave: str) -> Resp:
    return Resp(wave, "declined", {"P0" if wave == "pregrad" else "C0": "no"})


def pregrad(when: str, plan: str) -> Resp:
    return Resp(
        "pregrad",
        "complete",
        {"P0": "yes", "P1": plan},
        completed_at=utc(when),
        summary=f"{plan} {when}",
    )


@dataclass(frozen=True)
class Row:
    ref: str
    programme: str
    cohort: int
    gender: str | None
    born: int | None
    status: str  # linked, unlinked, blocked, opted_out, erased
    invitations: str = ""  # "m2:SK m6:S": per wave the statuses of seq 0, 1, ...
    responses: tuple[Resp, ...] = ()


C, P, N = "completely", "partly", "not_at_all"
LOT, LITTLE = "a_lot", "a_little"
EMP, SELF, WS = "employed", "self_employed", "working_and_studying"
STUDY, LOOK = "studying", "unemployed_looking"

# fmt: off
ROWS: tuple[Row, ...] = (
    # alfa P1, cohort 2025
    Row("A01", "P1", 2025, "female", 2006, "linked", "m2:SK m6:S", responses=(
        done("m2", "2025-08-30 11:00", EMP, C, LOT),
        done("m6", "2026-01-05 10:00", EMP, C, LOT),
    )),
    Row("A02", "P1", 2025, "female", 2006, "linked", "m2:SK m6:S", responses=(
        done("m2", "2025-08-31 20:00", EMP, C, LOT),
        done("m6", "2026-01-07 18:00", EMP, P, LOT),
    )),
    Row("A03", "P1", 2025, "female", 2005, "linked", "m2:S m6:S", responses=(
        done("m2", "2025-09-01 09:00", EMP, C, N),
    )),
    Row("A04", "P1", 2025, "male", 2004, "linked", "m2:S m6:S", responses=(
        done("m2", "2025-09-02 12:00", EMP, P, LOT),
    )),
    Row("A05", "P1", 2025, "male", 2003, "linked", "m2:S m6:S", responses=(
        done("m2", "2025-09-02 19:30", EMP, N, N),
    )),
    Row("A06", "P1", 2025, "female", 2002, "linked", "m2:S", responses=(
        done("m2", "2025-09-03 08:45", SELF, C, LITTLE),
    )),
    Row("A07", "P1", 2025, "female", 2005, "linked", "m2:S", responses=(
        done("m2", "2025-09-04 16:00", WS, C, LOT),
    )),
    Row("A08", "P1", 2025, "male", 2006, "linked", "m2:S", responses=(
        done("m2", "2025-09-05 10:10", WS, C, LOT),
    )),
    Row("A09", "P1", 2025, "female", 2004, "linked", "m2:S", responses=(
        done("m2", "2025-09-07 21:00", WS, P, N),
    )),
    Row("A10", "P1", 2025, "other", 2004, "linked", "m2:SS", responses=(
        done("m2", "2025-09-16 09:00", WS, N, N),
    )),
    Row("A11", "P1", 2025, "female", 1999, "linked", "m2:SS", responses=(
        done("m2", "2025-09-18 14:00", WS, N, N),
    )),
    Row("A12", "P1", 2025, "male", 2005, "linked", "m2:SS", responses=(
        open_done("m2", "2025-09-21 23:30", "U2", LOOK),
    )),
    Row("A13", "P1", 2025, "female", 2005, "linked", "m2:SS", responses=(
        partial("m2", "Q1", {"C0": "yes"}),
    )),
    Row("A14", "P1", 2025, "male", 2004, "linked", "m2:SS", responses=(
        partial(
            "m2", "E3", {"C0": "yes", "Q1": EMP, "E1": "under_1_month", "E2": "permanent"}
        ),
    )),
    Row("A15", "P1", 2025, "female", 2006, "linked", "m2:S", responses=(declined("m2"),)),
    Row("A16", "P1", 2025, "male", 2005, "linked", "m2:SSSS"),
    Row("A17", "P1", 2025, "female", 2005, "unlinked"),
    Row("A18", "P1", 2025, "male", 2004, "blocked", "m2:SF"),
    # alfa P1, cohort 2026
    Row("A21", "P1", 2026, "female", 2008, "linked"),
    Row("A22", "P1", 2026, "male", 2007, "linked"),
    Row("A23", "P1", 2026, "other", 2008, "unlinked"),
    Row("A24", "P1", 2026, "female", 2007, "opted_out"),
    # alfa P2, cohort 2025
    Row("B01", "P2", 2025, "male", 2006, "linked", "m2:SS", responses=(
        done("m2", "2025-09-19 11:00", EMP, C, LOT),
    )),
    Row("B02", "P2", 2025, "female", 2007, "linked", "m2:SS", responses=(
        done("m2", "2025-09-22 10:00", STUDY),
    )),
    Row("B03", "P2", 2025, "male", 2006, "linked", "m2:SS", responses=(
        done("m2", "2025-09-23 15:00", STUDY),
    )),
    Row("B04", "P2", 2025, "male", 2000, "opted_out", "m2:SS", responses=(
        done("m2", "2025-09-23 20:00", STUDY),
    )),
    Row("B05", "P2", 2025, "female", 2006, "linked", "m2:SS", responses=(
        done("m2", "2025-09-24 09:30", LOOK),
    )),
    Row("B06", "P2", 2025, "male", 2005, "linked", "m2:S", responses=(declined("m2"),)),
    Row("B07", "P2", 2025, "female", 2006, "opted_out", "m2:SK"),
    Row("B08", "P2", 2025, "female", 2005, "linked", "m2:SS", responses=(
        partial("m2", "S1", {"C0": "yes", "Q1": STUDY}),
    )),
    # alfa P2, cohort 2026
    Row("B21", "P2", 2026, "male", 2008, "linked"),
    Row("B22", "P2", 2026, "female", 2007, "unlinked"),
    Row("B23", "P2", 2026, None, None, "erased"),
    # beta P3, cohort 2025
    Row("C01", "P3", 2025, "male", 2003, "linked", "m2:SK", responses=(
        done("m2", "2025-08-27 09:15", EMP, P, LITTLE),
    )),
    Row("C02", "P3", 2025, "female", 1990, "linked", "m2:SK", responses=(
        done("m2", "2025-08-27 18:40", SELF, N, LITTLE),
    )),
    Row("C03", "P3", 2025, "male", 2004, "linked", "m2:SK", responses=(
        done("m2", "2025-08-28 07:05", WS, N, N),
    )),
    Row("C04", "P3", 2025, "unknown", 2005, "linked", "m2:SS", responses=(
        done("m2", "2025-09-25 12:00", STUDY),
    )),
    Row("C05", "P3", 2025, None, None, "erased", "m2:SS", responses=(
        done("m2", "2025-09-26 17:00", STUDY),
    )),
    Row("C06", "P3", 2025, "female", None, "linked", "m2:SSS", responses=(
        done("m2", "2025-09-28 21:00", "other"),
    )),
    Row("C07", "P3", 2025, "male", 2004, "linked", "m2:SS", responses=(
        partial("m2", "E2", {"C0": "yes", "Q1": SELF, "E1": "under_1_month"}),
    )),
    Row("C08", "P3", 2025, "female", 2003, "linked", "m2:SS", responses=(
        partial("m2", "Q1", {"C0": "yes"}),
    )),
    Row("C09", "P3", 2025, "male", 2002, "linked", "m2:S", responses=(declined("m2"),)),
    Row("C10", "P3", 2025, "female", 2004, "linked", "m2:SSSS"),
    Row("C11", "P3", 2025, "male", 2005, "unlinked"),
    # beta P3, cohort 2026: the pre-graduation wave
    Row("D01", "P3", 2026, "female", 2008, "linked", "pregrad:S m2:P", responses=(
        pregrad("2026-05-15 09:00", "work"),
    )),
    Row("D02", "P3", 2026, "male", 2008, "linked", "pregrad:S", responses=(
        pregrad("2026-05-15 12:00", "further_study"),
    )),
    Row("D03", "P3", 2026, "female", 2007, "linked", "pregrad:S", responses=(
        pregrad("2026-05-16 10:00", "work_and_study"),
    )),
    Row("D04", "P3", 2026, "male", 2008, "linked", "pregrad:S", responses=(
        pregrad("2026-05-17 19:00", "own_business"),
    )),
    Row("D05", "P3", 2026, "other", 2008, "linked", "pregrad:S", responses=(
        pregrad("2026-05-17 20:00", "not_sure"),
    )),
    Row("D06", "P3", 2026, "female", 2008, "linked", "pregrad:SSS", responses=(
        pregrad("2026-05-29 10:00", "work"),
    )),
    Row("D07", "P3", 2026, "male", 2007, "linked", "pregrad:S", responses=(declined("pregrad"),)),
    Row("D08", "P3", 2026, "female", 2008, "linked", "pregrad:SS", responses=(
        partial("pregrad", "P1", {"P0": "yes"}),
    )),
    Row("D09", "P3", 2026, "male", 2008, "linked", "pregrad:SSS"),
    Row("D10", "P3", 2026, "female", 2008, "unlinked"),
    Row("D11", "P3", 2026, "male", 2007, "blocked", "pregrad:F"),
)
# fmt: on


def describe() -> str:
    """ROWS as the table of the module docstring."""
    lines = [
        "ref prog cohort gender  born status    invitations",
        "--- ---- ------ ------- ---- --------- -----------",
    ]
    for row in ROWS:
        born = str(row.born) if row.born is not None else "-"
        lines.append(
            f"{row.ref} {row.programme:<4} {row.cohort:<6} {row.gender or '-':<7} {born:<4} "
            f"{row.status:<9} {row.invitations}".rstrip()
        )
        for r in row.responses:
            padding = "  " if r.kind == "complete" else ""
            lines.append(f"    {r.wave} {r.kind}{padding} {r.summary}".rstrip())
    return "\n".join(lines)


@dataclass(frozen=True)
class Seeded:
    """Ids of what the seed wrote."""

    schools: dict[str, int]
    programmes: dict[str, int]
    graduates: dict[str, int]
    admin_id: int
    officer_id: int

    @property
    def alfa(self) -> int:
        return self.schools["alfa"]

    @property
    def beta(self) -> int:
        return self.schools["beta"]


def _graduate(row: Row, school_id: int, programme_id: int, number: int) -> Graduate:
    school = PROGRAMMES[row.programme][0]
    linked = utc(f"{row.cohort}-03-01 10:00") + timedelta(hours=number)
    graduate = Graduate(
        institution_id=school_id,
        programme_id=programme_id,
        student_ref=row.ref,
        name=f"Graduate {row.ref}",
        graduation_date=GRADUATION[(school, row.cohort)],
        language=SCHOOLS[school][2],
        gender=row.gender,
        birth_year=row.born,
    )
    if row.status in ("linked", "blocked", "opted_out"):
        graduate.chat_id = CHAT_BASE + number
        graduate.linked_at = linked
        graduate.consent_survey = graduate.consent_followup = True
        graduate.consent_survey_at = graduate.consent_followup_at = linked
    if row.status == "erased":
        graduate.student_ref = f"erased-{number}"
        graduate.name = None
    return graduate


def _left_at(row: Row, graduate: Graduate, invitations: list[Invitation]) -> datetime:
    """When an opted-out or erased graduate left: a month after their last completion, else
    between their first invitation and its first reminder, else a month after linking."""
    completions = [r.completed_at for r in row.responses if r.completed_at is not None]
    if completions:
        return max(completions) + timedelta(days=30)
    if invitations:
        return min(i.due_at for i in invitations) + timedelta(days=6)
    return (graduate.linked_at or utc(f"{row.cohort}-03-01 10:00")) + timedelta(days=30)


async def seed(db: Database) -> Seeded:
    """Write the data set of the module docstring; return the ids the tests need."""
    plan = load_plans().default
    async with db.session() as session:
        schools: dict[str, Institution] = {}
        for code, (name, country, language, timezone) in SCHOOLS.items():
            schools[code] = Institution(
                code=code,
                name=name,
                country=country,
                default_language=language,
                timezone=timezone,
            )
            session.add(schools[code])
        await session.flush()
        programmes: dict[str, Programme] = {}
        for code, (school, name, eqf) in PROGRAMMES.items():
            programmes[code] = Programme(
                institution_id=schools[school].id or 0, code=code, name=name, eqf_level=eqf
            )
            session.add(programmes[code])
        await session.flush()

        graduates: dict[str, Graduate] = {}
        for number, row in enumerate(ROWS, start=1):
            school = PROGRAMMES[row.programme][0]
            graduates[row.ref] = _graduate(
                row, schools[school].id or 0, programmes[row.programme].id or 0, number
            )
            session.add(graduates[row.ref])
        await session.flush()

        for row in ROWS:
            graduate = graduates[row.ref]
            assert graduate.id is not None
            school = PROGRAMMES[row.programme][0]
            timezone = SCHOOLS[school][3]
            scheduled = schedule(plan, graduate.graduation_date, timezone)
            invitations: list[Invitation] = []
            for part in row.invitations.split():
                wave, letters = part.split(":")
                items = [s for s in scheduled if s.wave == wave]
                for item, letter in zip(items, letters, strict=False):
                    status = STATUS_LETTERS[letter]
                    invitations.append(
                        Invitation(
                            graduate_id=graduate.id,
                            wave=wave,
                            form_id=item.questionnaire,
                            seq=item.seq,
                            due_at=item.due_at,
                            closes_at=item.closes_at,
                            status=status.value,
                            attempts=0 if status == InvitationStatus.PENDING else 1,
                            sent_at=item.due_at if status == InvitationStatus.SENT else None,
                            error="Forbidden: bot was blocked by the user"
                            if status == InvitationStatus.FAILED
                            else None,
                        )
                    )
                    if status == InvitationStatus.FAILED and graduate.unreachable_at is None:
                        graduate.unreachable_at = item.due_at
                        graduate.unreachable_reason = "blocked"
            session.add_all(invitations)
            assert (row.status == "blocked") == (graduate.unreachable_at is not None), row.ref
            if row.status == "opted_out":
                graduate.opted_out_at = _left_at(row, graduate, invitations)
            if row.status == "erased":
                graduate.opted_out_at = graduate.erased_at = _left_at(row, graduate, invitations)
            session.add(graduate)
            for r in row.responses:
                opened = next(s for s in scheduled if s.wave == r.wave and s.seq == 0).due_at
                started = min(opened + timedelta(hours=1), r.completed_at or opened)
                submitted = r.kind in ("complete", "declined")
                finished = r.completed_at or started + timedelta(minutes=3)
                response = SurveyResponse(
                    graduate_id=graduate.id,
                    form_id=r.form_id,
                    version=VERSIONS[r.form_id],
                    wave=r.wave,
                    status=(ResponseStatus.SUBMITTED if submitted else ResponseStatus.OPEN).value,
                    current="" if submitted else r.current,
                    complete=r.completed_at is not None,
                    declined=r.kind == "declined",
                    started_at=started,
                    updated_at=finished,
                    completed_at=r.completed_at,
                    submitted_at=finished if submitted else None,
                )
                session.add(response)
                await session.flush()
                assert response.id is not None
                for question, value in r.answers.items():
                    session.add(
                        Answer(
                            response_id=response.id,
                            question=question,
                            value=value,
                            answered_at=started,
                        )
                    )

        admin = Staff(telegram_user_id=ADMIN_USER_ID, name="Ada Admin", role=StaffRole.ADMIN.value)
        officer = Staff(
            telegram_user_id=OFFICER_USER_ID,
            name="Otto Officer",
            role=StaffRole.OFFICER.value,
            institution_id=schools["alfa"].id,
        )
        session.add_all([admin, officer])
        await session.flush()
        assert admin.id is not None and officer.id is not None
        return Seeded(
            schools={code: s.id or 0 for code, s in schools.items()},
            programmes={code: p.id or 0 for code, p in programmes.items()},
            graduates={ref: g.id or 0 for ref, g in graduates.items()},
            admin_id=admin.id,
            officer_id=officer.id,
        )


# ---------------------------------------------------------------- the 12-month wave

M12_ROWS: tuple[tuple[str, str, str | None, str | None, int | None], ...] = (
    # ref, Q1, E6, E7, A8 (satisfied with the skills acquired, 1-5; None: not answered)
    ("A01", EMP, C, LOT, 5),
    ("A02", EMP, P, LOT, 4),
    ("A03", EMP, N, N, 2),
    ("A04", SELF, C, LITTLE, 5),
    ("A05", WS, C, LOT, 4),
    ("A06", STUDY, None, None, 3),
    ("A07", STUDY, None, None, 5),
    ("A08", STUDY, None, None, 4),
    ("A09", LOOK, None, None, 1),
    ("A10", EMP, C, LOT, None),
    ("A11", EMP, C, LOT, 5),
)
"""The 12-month wave (m12, EQAVET's "one year after"), added by `seed_m12` on top of `seed`:
complete, submitted responses of alfa P1's class of 2025 (18 completers: A01-A18), with the
satisfaction question A8 of 6b1. Counted by hand:

    respondents 11 of 18 completers; female 7 of 10 (A01 A02 A03 A06 A07 A09 A11),
    male 3 of 7 (A04 A05 A08), other 1 of 1 (A10)
    5a  employed 6 (A01 A02 A03 A04 A10 A11), employed and studying 1 (A05), studying 3,
        looking 1, other 0
    5b  7 employed (6 + A05) of 11; of the completers 7 of 18
    6a  related (completely, partly) 6 of the 7 employed (A03 not at all)
    6b1 satisfied (4, 5) 7 (A01 A02 A04 A05 A07 A08 A11) of the 10 who answered A8 (not A10)
    use of skills (a lot, a little) 6 of 7 (A03 not at all)
"""


async def add_completed(
    session: AsyncSession, graduate_id: int, wave: str, when: datetime, answers: dict[str, Any]
) -> int:
    """A completed, sent tracking response of `wave` with `answers`, all given at `when` (the
    seeds' way to write one); its id."""
    response = SurveyResponse(
        graduate_id=graduate_id,
        form_id="tracking",
        version=VERSIONS["tracking"],
        wave=wave,
        status=ResponseStatus.SUBMITTED.value,
        current="",
        complete=True,
        declined=False,
        started_at=when - timedelta(minutes=5),
        updated_at=when,
        completed_at=when,
        submitted_at=when,
    )
    session.add(response)
    await session.flush()
    assert response.id is not None
    for question, value in answers.items():
        session.add(
            Answer(response_id=response.id, question=question, value=value, answered_at=when)
        )
    return response.id


async def seed_m12(db: Database, seeded: Seeded) -> None:
    """Add `M12_ROWS` (m12 responses, answered in July 2026) to the seeded data set."""
    async with db.session() as session:
        for number, (ref, activity, related, use, satisfied) in enumerate(M12_ROWS):
            answers = tracking_answers(activity, related, use)
            if satisfied is not None:
                answers["A8"] = satisfied
            when = utc("2026-07-06 10:00") + timedelta(hours=number)
            await add_completed(session, seeded.graduates[ref], "m12", when, answers)
