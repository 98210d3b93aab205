"""The programme report's data set (tests/test_programme_report.py): tests/stats_seed.py
with its 12-month wave (`seed_m12`), and on top of it an older class of alfa's P1 and some
free-text answers (A4, "what should your programme do better"), so that P1 has three cohorts
to follow (2024, 2025, 2026) and comments to list. Written straight with the models.

    P1 class of 2024 (graduated 2024-06-30): 14 graduates, linked, Y01-Y14
        m2 complete (submitted), answered 2024-09-0N 10:00 for Y01-Y12:
            Y01-Y05 employed E6=completely E7=a_lot
            Y06-Y12 studying
        Y13, Y14: no response
        A4 of Y01 (2024-09-01), Y02 (2024-09-02), Y06 (2024-09-06)
        A7 (select_multiple): Y01-Y03 guest_lecture + mentor, Y04, Y05 mentor, Y06 none

    Comments on the responses of stats_seed:
        A01's m6 response: A4 "m6 comment" (m6 has 2 respondents: not shown)
        A02's m12 response: A4 "m12 comment", answered 2026-07-07

Counted by hand in tests/test_programme_report.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlmodel import select

from storage.db import Database
from storage.models import Answer, Graduate, SurveyResponse
from tests.stats_seed import (
    EMP,
    STUDY,
    Seeded,
    add_completed,
    seed,
    seed_m12,
    tracking_answers,
)

OLD_CLASS = date(2024, 6, 30)
COMMENTS_2024 = {
    "Y01": "More practice with real customers",
    "Y02": "Teach <b>Git</b> earlier & better",
    "Y06": "The internship was too short",
}
HELP = (["guest_lecture", "mentor"], ["mentor"])
M6_COMMENT = "m6 comment"
M12_COMMENT = "m12 comment"


def at(day: int) -> datetime:
    return datetime(2024, 9, day, 10, tzinfo=UTC)


async def seed_report(db: Database) -> Seeded:
    """stats_seed, its m12 wave, P1's class of 2024 and the comments above."""
    seeded = await seed(db)
    await seed_m12(db, seeded)
    programme = seeded.programmes["P1"]
    async with db.session() as session:
        for n in range(1, 15):
            ref = f"Y{n:02d}"
            graduate = Graduate(
                institution_id=seeded.alfa,
                programme_id=programme,
                student_ref=ref,
                name=f"Graduate {ref}",
                graduation_date=OLD_CLASS,
                language="nl",
                gender="female" if n % 2 else "male",
                birth_year=2005,
                chat_id=800_000 + n,
                linked_at=datetime(2024, 3, 1, tzinfo=UTC),
                consent_survey=True,
                consent_followup=True,
            )
            session.add(graduate)
            await session.flush()
            assert graduate.id is not None
            seeded.graduates[ref] = graduate.id
            if n > 12:
                continue
            answers = tracking_answers(EMP, "completely", "a_lot") if n <= 5 else None
            answers = answers or tracking_answers(STUDY)
            when = at(n)
            if ref in COMMENTS_2024:
                answers["A4"] = COMMENTS_2024[ref]
            if n <= 6:
                answers["A7"] = HELP[(n - 1) // 3] if n <= 5 else ["none"]
                if n in (4, 5):
                    answers["A7"] = ["mentor"]
            await add_completed(session, graduate.id, "m2", when, answers)
        for ref, wave, text, when in (
            ("A01", "m6", M6_COMMENT, datetime(2026, 1, 5, 10, tzinfo=UTC)),
            ("A02", "m12", M12_COMMENT, datetime(2026, 7, 7, 10, tzinfo=UTC)),
        ):
            response_id = (
                await session.exec(
                    select(SurveyResponse.id).where(
                        SurveyResponse.graduate_id == seeded.graduates[ref],
                        SurveyResponse.wave == wave,
                    )
                )
            ).one()
            assert response_id is not None
            session.add(
                Answer(response_id=response_id, question="A4", value=text, answered_at=when)
            )
    return seeded
