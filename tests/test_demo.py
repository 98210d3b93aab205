"""The demo of `make run` / `gradtrack demo` works on any day of the year: the graduate of a
fresh demo invite has a wave open today, is offered it at the end of onboarding and gets it
with /survey, and the demo school has real numbers (not "<5") in several programmes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import col, func, select

from bot.reporting import build_report
from conversations.indicators import load_specs
from storage.demo import ensure_demo
from storage.invitations import open_wave_invitation
from storage.models import Graduate, Institution, Invitation, SurveyResponse
from storage.stats import Scope
from tests.harness import Harness

MOMENTS = (
    datetime(2027, 1, 1, 0, 30, tzinfo=UTC),
    datetime(2027, 3, 15, 8, 0, tzinfo=UTC),  # before the send time, on a workday
    datetime(2027, 6, 30, 12, 0, tzinfo=UTC),
    datetime(2027, 8, 31, 22, 45, tzinfo=UTC),  # in the quiet hours (21:00-09:00)
    datetime(2027, 11, 23, 10, 0, tzinfo=UTC),
    datetime(2027, 12, 31, 23, 59, tzinfo=UTC),
)


@pytest.mark.parametrize("moment", MOMENTS, ids=[m.strftime("%m-%d-%H%M") for m in MOMENTS])
async def test_the_demo_invite_opens_a_questionnaire_on_any_day(
    harness: Harness, moment: datetime
) -> None:
    h = harness
    h.clock.set(moment)
    demo = await ensure_demo(h.db, h.runtime.plans, now=moment)
    async with h.db.session() as session:
        graduate = (
            await session.exec(select(Graduate).where(Graduate.invite_token == demo.invite_token))
        ).one()
        assert graduate.id is not None
        invitation = await open_wave_invitation(session, graduate.id, moment, h.runtime.plans)
    assert invitation is not None and invitation.wave == demo.wave == "m2"

    user = h.user("en")
    await h.send(user, f"/start {demo.invite_token}")
    await h.press(user, "English", expect=2)
    await h.press(user, "Yes")
    await h.press(user, "Yes")
    (done,) = await h.press(user, "No")
    assert "A questionnaire is open for you now." in done.content
    assert [b["text"] for b in done.buttons] == ["Start now"]

    (first,) = await h.send(user, "/survey")
    tracking = h.runtime.questionnaires.deployed("tracking")
    assert tracking.question("C0").labels["en"] in first.content
    async with h.db.session() as session:
        response = (
            await session.exec(
                select(SurveyResponse).where(SurveyResponse.graduate_id == graduate.id)
            )
        ).one()
    assert (response.wave, response.form_id, response.status) == ("m2", "tracking", "open")


async def test_the_demo_school_shows_real_numbers_and_seeding_twice_adds_nothing(
    harness: Harness,
) -> None:
    h = harness
    moment = datetime(2027, 4, 2, 10, 0, tzinfo=UTC)
    first = await ensure_demo(h.db, h.runtime.plans, now=moment)
    second = await ensure_demo(h.db, h.runtime.plans, now=moment)
    assert first.invite_token == second.invite_token  # still unused: the same invite
    async with h.db.session() as session:
        responses = (await session.exec(select(func.count()).select_from(SurveyResponse))).one()
        school = (await session.exec(select(Institution).where(Institution.code == "demo"))).one()
        invitations = (
            await session.exec(
                select(func.count()).select_from(Invitation).where(col(Invitation.seq) == 0)
            )
        ).one()
    await ensure_demo(h.db, h.runtime.plans, now=datetime(2027, 9, 1, 10, 0, tzinfo=UTC))
    async with h.db.session() as session:
        again = (await session.exec(select(func.count()).select_from(SurveyResponse))).one()
    assert again == responses and responses > 15
    assert invitations >= responses + 1  # the seeded graduates' and the demo graduate's

    report = await build_report(
        h.db,
        h.runtime.plans,
        load_specs(),
        Scope(institution_id=school.id),
        moment.date(),
        now=moment,
    )
    shown = {
        programme: funnel.shown()["completed"]
        for (wave, programme), funnel in report.by_wave_programme.items()
        if wave == first.wave
    }
    real = [n for n in shown.values() if n is not None and n >= 5]
    assert len(real) >= 2, shown
    respondents = report.wave_indicators(first.wave or "", "programme")
    with_5b = [i for i in respondents.values() if i.i5b is not None and not i.i5b.suppressed]
    assert len(with_5b) >= 2
    # The demo's programmes declare what they train for: 6a in the occupation trained for
    # has a figure in several programmes, and the pathway breakdown has both groups.
    occupation = [i for i in respondents.values() if i.i6a_occupation.value is not None]
    assert len(occupation) >= 2, respondents
    pathway = report.wave_indicators(first.wave or "", "pathway")
    assert {"school_based", "work_based"} <= set(pathway)
