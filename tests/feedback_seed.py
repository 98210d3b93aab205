"""A small, hand-counted data set for the comments and the expectations table (issue 18):
tests/test_feedback.py, tests/test_feedback_browser.py. Written straight with the models.

School alfa (NL): programme P1 "Cook", 31 graduates of 2025 (G01-G31, named "Secret Name
NN"), and P2 "Baker", 4 graduates who answered m12; school beta (ES): programme P3
"Electrician" with one graduate. Every response is submitted unless said otherwise.

    graduates   plan before graduating (pregrad P1)       m12 (Q1)           m2 (Q1)
    G01-G06     work                                      employed           employed
    G07         further_study, later again: work (latest) employed
    G08         own_business                              self_employed
    G09-G13     work                                      unemployed_looking
    G14         work                                      studying
    G15-G20     further_study                             studying
    G21-G22     further_study                             employed
    G23-G27     not_sure                                  unemployed_looking
    G28         work, but that response is not complete   employed
    G29         (none)                                    (none)
    G30         work                                      partial (open, not complete)
    G31         work                                      declined

P1 at m12, hand-counted (plan groups: work = work + own_business, study = further_study;
G28 has no completed pre-graduation response, so "no plan"):

    plan \\ now     employed  studying  looking  total
    work               8         1         5       14
    study              2         6         0        8
    not_sure           0         0         5        5
    none               1         0         0        1
    total             11         7        10       28

Shown (EXPECTED_M12): 1, 2 and 1 are small; work·looking (5) goes with work·studying (row
work), study·studying (6) with study·employed (row study), not_sure·looking (5) with
work·looking (column looking), and then not_sure's total (5) with none's total (the totals
column). At m2 the six of G01-G06 are all "work → employed".

Comments (A4), newest first as COMMENTS lists them: G15 m12 2026-08-01, G09 m12 2026-07-20,
G01 m12 2026-07-10, G02 m2 2025-09-01. Not shown: G14's blank answer, G30's (partial
response), the job titles (E4), P2's (four respondents only), beta's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from storage.db import Database
from storage.models import Answer, Graduate, Institution, Programme, SurveyResponse

COMMENTS = [
    ("G15", "m12", "Teachers should know the new equipment.", datetime(2026, 8, 1, tzinfo=UTC)),
    ("G09", "m12", "The work placement was too short.", datetime(2026, 7, 20, tzinfo=UTC)),
    ("G01", "m12", "More practice in a real kitchen, please.", datetime(2026, 7, 10, tzinfo=UTC)),
    ("G02", "m2", "Earlier comment from m2 <b>bold</b>", datetime(2025, 9, 1, tzinfo=UTC)),
]
"""(graduate, wave, text, answered at): the comments P1 shows, newest first."""
NOT_SHOWN = ("Partial comment never shown", "Chef at Hotel Secret", "Small group comment")

EXPECTED_M12 = {
    "work": {"employed": "8", "studying": "<5", "looking_for_work": "<5", "total": "14"},
    "study": {"employed": "<5", "studying": "<5", "looking_for_work": "0", "total": "8"},
    "not_sure": {"employed": "0", "studying": "0", "looking_for_work": "<5", "total": "<5"},
    "none": {"employed": "<5", "studying": "0", "looking_for_work": "0", "total": "<5"},
    "total": {"employed": "11", "studying": "7", "looking_for_work": "10", "total": "28"},
}
"""The m12 table as shown (counts; working_and_studying and other are 0 throughout)."""


@dataclass(frozen=True)
class Seeded:
    alfa: int
    beta: int
    p1: int
    p2: int
    p3: int
    responses: dict[str, int]
    """"G15/m12" -> the response id (P1's and beta's tracking responses)."""
    graduates: dict[str, int]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def seed(db: Database) -> Seeded:
    responses: dict[str, int] = {}
    graduates: dict[str, int] = {}
    async with db.session() as session:
        alfa = Institution(code="alfa", name="Alfa College", country="NL", default_language="nl")
        beta = Institution(code="beta", name="Beta College", country="ES", default_language="es")
        session.add_all([alfa, beta])
        await session.flush()
        assert alfa.id is not None and beta.id is not None
        p1 = Programme(institution_id=alfa.id, code="P1", name="Cook", eqf_level=4)
        p2 = Programme(institution_id=alfa.id, code="P2", name="Baker", eqf_level=3)
        p3 = Programme(institution_id=beta.id, code="P3", name="Electrician", eqf_level=4)
        session.add_all([p1, p2, p3])
        await session.flush()
        assert p1.id is not None and p2.id is not None and p3.id is not None

        async def graduate(ref: str, school: int, programme: int) -> int:
            g = Graduate(
                institution_id=school,
                programme_id=programme,
                student_ref=ref,
                name=f"Secret Name {ref}",
                graduation_date=date(2025, 6, 30),
            )
            session.add(g)
            await session.flush()
            assert g.id is not None
            graduates[ref] = g.id
            return g.id

        async def respond(
            graduate_id: int,
            form: str,
            wave: str | None,
            answers: dict[str, Any],
            *,
            done: bool = True,
            declined: bool = False,
            at: str = "2026-07-01 12:00",
            key: str | None = None,
        ) -> int:
            r = SurveyResponse(
                graduate_id=graduate_id,
                form_id=form,
                version="2026.3" if form == "tracking" else "2026.2",
                wave=wave,
                status="submitted" if done or declined else "open",
                current="",
                complete=done,
                declined=declined,
                completed_at=_at(at) if done else None,
                submitted_at=_at(at) if done or declined else None,
            )
            session.add(r)
            await session.flush()
            assert r.id is not None
            for question, value in answers.items():
                when = value[1] if isinstance(value, tuple) else _at(at)
                text = value[0] if isinstance(value, tuple) else value
                session.add(
                    Answer(response_id=r.id, question=question, value=text, answered_at=when)
                )
            if key:
                responses[key] = r.id
            return r.id

        def plan(code: str) -> dict[str, Any]:
            return {"P0": "yes", "P1": code}

        def now(code: str) -> dict[str, Any]:
            return {"C0": "yes", "Q1": code}

        rows: list[tuple[str, str | None, str | None]] = (
            [(f"G0{k}", "work", "employed") for k in range(1, 7)]
            + [("G07", "work", "employed"), ("G08", "own_business", "self_employed")]
            + [(f"G{k:02}", "work", "unemployed_looking") for k in range(9, 14)]
            + [("G14", "work", "studying")]
            + [(f"G{k}", "further_study", "studying") for k in range(15, 21)]
            + [(f"G{k}", "further_study", "employed") for k in range(21, 23)]
            + [(f"G{k}", "not_sure", "unemployed_looking") for k in range(23, 28)]
            + [("G28", None, "employed"), ("G29", None, None)]
            + [("G30", "work", None), ("G31", "work", None)]
        )
        comments = {ref: (text, when) for ref, wave, text, when in COMMENTS if wave == "m12"}
        for ref, code, activity in rows:
            gid = await graduate(ref, alfa.id, p1.id)
            if ref == "G07":  # said "study" first, then "work": the latest counts
                await respond(gid, "pregrad", "pregrad", plan("further_study"), at="2025-05-20")
                await respond(gid, "pregrad", None, plan("work"), at="2025-06-10")
            elif ref == "G28":  # answered the plan, never completed the questionnaire
                await respond(gid, "pregrad", "pregrad", {"P1": "work"}, done=False)
            elif code is not None:
                await respond(gid, "pregrad", "pregrad", plan(code), at="2025-05-20")
            if activity is not None:
                answers = now(activity)
                if ref in comments:
                    answers["A4"] = comments[ref]
                if ref == "G14":
                    answers["A4"] = "   "
                if ref == "G01":
                    answers["E4"] = "Chef at Hotel Secret"
                await respond(gid, "tracking", "m12", answers, key=f"{ref}/m12")
            if ref in {f"G0{k}" for k in range(1, 7)}:
                answers = now("employed")
                if ref == "G02":
                    answers["A4"] = (COMMENTS[3][2], COMMENTS[3][3])
                await respond(gid, "tracking", "m2", answers, at="2025-09-01", key=f"{ref}/m2")
            if ref == "G30":
                partial = {**now("employed"), "A4": "Partial comment never shown"}
                await respond(gid, "tracking", "m12", partial, done=False, key="G30/m12")
            if ref == "G31":
                await respond(gid, "tracking", "m12", {"C0": "no"}, done=False, declined=True)
        for k in range(1, 5):
            gid = await graduate(f"H{k}", alfa.id, p2.id)
            await respond(gid, "pregrad", "pregrad", plan("work"), at="2025-05-20")
            answers = {**now("employed"), "A4": "Small group comment"}
            await respond(gid, "tracking", "m12", answers, key=f"H{k}/m12")
        gid = await graduate("B1", beta.id, p3.id)
        await respond(
            gid, "tracking", "m12", {**now("employed"), "A4": "Beta comment"}, key="B1/m12"
        )
    return Seeded(alfa.id, beta.id, p1.id, p2.id, p3.id, responses, graduates)
