"""Waves with a controllable clock: invitations, reminders, quiet hours, completion, blocked
and stopped graduates, a crash between claim and send, and Telegram's 429 and 5xx."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlmodel import col, select

from bot.delivery import RateLimiter, dispatch_due
from bot.sandbox.state import SandboxUser
from conversations.registry import QuestionnaireRegistry
from conversations.waves import (
    QuietHours,
    WavePlanError,
    load_plans,
    next_allowed,
    parse_plans,
    schedule,
)
from storage.invitations import claim_due, plan_invitations
from storage.models import Invitation, InvitationStatus, ResponseStatus, SurveyResponse
from tests.harness import Harness, eventually, tr
from tests.test_survey import CHAT_DIR, MINI_PLANS

AMS = "Europe/Amsterdam"
NO_LIMIT = RateLimiter(0)


# ---------------------------------------------------------------- the plan (pure)


def test_default_plan_is_valid_and_schedules_reminders_inside_the_wave() -> None:
    plans = load_plans(questionnaires={"tracking", "pregrad"})
    items = schedule(plans.default, date(2026, 6, 30), AMS)
    m2 = [i for i in items if i.wave == "m2"]
    assert [i.seq for i in m2] == [0, 1, 2, 3]
    # Invitations at 10:00 in the school's time zone (CEST = UTC+2 in August).
    assert m2[0].due_at == datetime(2026, 8, 30, 8, 0, tzinfo=UTC)
    assert m2[1].due_at - m2[0].due_at == timedelta(weeks=2)
    assert all(i.due_at < i.closes_at for i in items)
    pregrad = [i for i in items if i.wave == "pregrad"]
    assert pregrad[0].due_at.date() == date(2026, 5, 19)  # six weeks before graduation


def test_reminders_that_would_fall_after_closing_are_left_out() -> None:
    plans = parse_plans(
        "default:\n  waves:\n    - {name: w, questionnaire: q, opens: 0d, closes: 10d,"
        " reminders: {count: 5, every: 4d}}\n"
    )
    items = schedule(plans.default, date(2026, 1, 1), "Europe/Tallinn")
    assert [i.seq for i in items] == [0, 1, 2]


def test_month_offsets_keep_the_day_or_end_of_month() -> None:
    plans = parse_plans(
        "default:\n  waves:\n    - {name: w, questionnaire: q, opens: 1m, closes: 2m}\n"
    )
    (item,) = schedule(plans.default, date(2026, 1, 31), "Europe/Rome")
    assert item.due_at.astimezone().date() == date(2026, 2, 28)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default: {waves: []}", "give at least one wave"),
        (
            "default: {waves: [{name: w, questionnaire: q, opens: soon, closes: 1m}]}",
            "'soon' is not an offset",
        ),
        (
            "default: {waves: [{name: w, questionnaire: q, opens: 2m, closes: 1m}]}",
            "closes (1m) must come after opens (2m)",
        ),
        (
            "default: {waves: [{name: w, questionnaire: nope, opens: 0d, closes: 1m}]}",
            "'nope' is not a deployed questionnaire",
        ),
        (
            "default: {waves: [{name: w, questionnaire: q, opens: 0d, closes: 1m},"
            " {name: w, questionnaire: q, opens: 1m, closes: 2m}]}",
            "'w' is used twice",
        ),
        (
            "default: {send_time: '22:00', waves: [{name: w, questionnaire: q, opens: 0d,"
            " closes: 1m}]}",
            "inside the quiet hours",
        ),
        (
            "default: {waves: [{name: w, questionnaire: q, opens: 0d, closes: 1m,"
            " consent: maybe}]}",
            "must be one of survey, followup",
        ),
        (
            "default: {waves: [{name: w, questionnaire: q, opens: 0d, closes: 1m}]}\n"
            "schools: {alfa: {waves: [{name: W!, questionnaire: q, opens: 0d, closes: 1m}]}}",
            "schools.alfa.waves[0].name",
        ),
    ],
)
def test_plan_validation(text: str, message: str) -> None:
    with pytest.raises(WavePlanError) as error:
        parse_plans(text, questionnaires={"q"})
    assert message in str(error.value)


def test_school_and_programme_plans_replace_the_default() -> None:
    plans = parse_plans(
        """
default: {waves: [{name: m2, questionnaire: q, opens: 2m, closes: 4m}]}
schools:
  alfa: {waves: [{name: m6, questionnaire: q, opens: 6m, closes: 8m}]}
  alfa/ICT4: {waves: [{name: m18, questionnaire: q, opens: 18m, closes: 20m}]}
""",
        questionnaires={"q"},
    )
    assert [w.name for w in plans.for_graduate("beta", "X").waves] == ["m2"]
    assert [w.name for w in plans.for_graduate("alfa", "CHEF4").waves] == ["m6"]
    assert [w.name for w in plans.for_graduate("alfa", "ICT4").waves] == ["m18"]


def test_quiet_hours_across_midnight() -> None:
    quiet = QuietHours(time(21, 0), time(9, 0))
    evening = datetime(2026, 9, 1, 20, 30, tzinfo=UTC)  # 22:30 in Amsterdam
    assert next_allowed(evening, quiet, AMS) == datetime(2026, 9, 2, 7, 0, tzinfo=UTC)
    night = datetime(2026, 9, 2, 3, 0, tzinfo=UTC)  # 05:00
    assert next_allowed(night, quiet, AMS) == datetime(2026, 9, 2, 7, 0, tzinfo=UTC)
    day = datetime(2026, 9, 2, 10, 0, tzinfo=UTC)
    assert next_allowed(day, quiet, AMS) == day


# ---------------------------------------------------------------- through the sandbox


@pytest.fixture
async def waves(harness: Harness) -> Harness:
    harness.questionnaires = QuestionnaireRegistry(CHAT_DIR)
    harness.plans = MINI_PLANS
    harness.clock.set(datetime(2026, 6, 1, 9, 0, tzinfo=UTC))
    await harness.restart_bot()
    return harness


def local(day: date, hour: int, minute: int = 0) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(AMS)).astimezone(UTC)


async def dispatch(h: Harness) -> dict[str, int]:
    report = await dispatch_due(h.runtime, limiter=NO_LIMIT)
    return {
        "sent": report.sent,
        "skipped": report.skipped,
        "deferred": report.deferred,
        "failed": report.failed,
        "retried": report.retried,
    }


def bot_texts(h: Harness, user: SandboxUser) -> list[str]:
    return [e.content for e in h.sandbox.bot_messages(h.token, user.id)]


async def invitations(h: Harness) -> list[Invitation]:
    async with h.db.session() as session:
        return list((await session.exec(select(Invitation).order_by(col(Invitation.id)))).all())


INVITE = (
    "Hello! {school} would like to know how you are doing. Could you answer a few "
    "questions? It takes about five minutes, and the questionnaire is open until {date}."
)
REMINDER = (
    "A friendly reminder: the questionnaire of {school} is open until {date}. Every "
    "answer helps the school and the students after you."
)


async def test_a_cohort_through_its_wave(waves: Harness) -> None:
    h = waves
    school = await h.school(country="NL", language="nl")
    ana, ana_chat = await h.consenting_graduate("en", school)
    bert, bert_chat = await h.consenting_graduate("nl", school)
    cleo, cleo_chat = await h.consenting_graduate("it", school, answers=("No", "No"))
    _dirk, dirk_chat = await h.consenting_graduate("nl", school)
    eva, eva_chat = await h.consenting_graduate("et", school)
    fay, fay_chat = await h.consenting_graduate("es", school)
    await h.send(dirk_chat, "/stop")
    h.sandbox.block(h.token, eva_chat.id)  # the bot hears of it (my_chat_member)
    h.sandbox.deactivate_user(fay_chat.id)  # the bot learns it only when sending (403)

    async def eva_blocked() -> bool:
        return (await h.reload(eva)).unreachable_reason == "blocked"

    await eventually(eva_blocked)

    # Rows were planned as each chat was linked, one invitation and two reminders each
    # (Dirk's too: he stopped afterwards, so his are skipped); nothing is due yet.
    assert len([i for i in await invitations(h) if i.wave == "m2"]) == 6 * 3
    assert await plan_invitations(h.db, h.runtime.plans, now=h.clock.now()) == 0
    assert await dispatch(h) == {"sent": 0, "skipped": 0, "deferred": 0, "failed": 0, "retried": 0}

    opening = date(2026, 8, 30)
    h.clock.set(local(opening, 10, 5))
    before = {u.id: len(bot_texts(h, u)) for u in (ana_chat, bert_chat, cleo_chat, eva_chat)}
    outcome = await dispatch(h)
    # Skipped: Cleo (declined), Eva (blocked) and Dirk (stopped).
    assert outcome == {"sent": 2, "skipped": 3, "deferred": 0, "failed": 1, "retried": 0}
    (ana_invite,) = await h.replies(ana_chat, 1)
    assert ana_invite.content == INVITE.format(school=school.name, date="October 29, 2026")
    assert [b["text"] for b in ana_invite.buttons] == ["Start the questionnaire"]
    (bert_invite,) = await h.replies(bert_chat, 1)
    assert bert_invite.content == tr("nl", INVITE).format(
        school=school.name, date="29 oktober 2026"
    )
    assert len(bot_texts(h, cleo_chat)) == before[cleo_chat.id]  # declined the survey
    assert (await h.reload(fay)).unreachable_reason == "deactivated"  # 403 from Telegram

    # Ana answers from the invitation's button and sends her answers.
    (c0,) = await h.press(ana_chat, "Start the questionnaire", message=ana_invite)
    (q1,) = await h.press(ana_chat, "No", message=c0)
    assert q1.content == "Thank you! Your answers have been saved."

    # Two weeks later: a reminder for Bert only.
    h.clock.set(local(opening + timedelta(weeks=2), 10, 1))
    assert (await dispatch(h))["sent"] == 1
    (reminder,) = await h.replies(bert_chat, 1)
    assert reminder.content == tr("nl", REMINDER).format(school=school.name, date="29 oktober 2026")

    # The second reminder falls due while the dispatcher was down; it runs at 22:30: quiet.
    h.clock.set(local(opening + timedelta(weeks=4), 22, 30))
    assert (await dispatch(h))["deferred"] == 1
    h.clock.set(local(opening + timedelta(weeks=4, days=1), 8, 59))
    assert (await dispatch(h))["sent"] == 0
    h.clock.set(local(opening + timedelta(weeks=4, days=1), 9, 0))
    assert (await dispatch(h))["sent"] == 1
    (second,) = await h.replies(bert_chat, 1)
    assert second.content.startswith(tr("nl", REMINDER).split("{")[0])

    # Every row ended once: sent or skipped with its reason, never sent twice.
    rows = await invitations(h)
    sent = [(r.graduate_id, r.seq) for r in rows if r.status == InvitationStatus.SENT.value]
    assert sorted(sent) == sorted([(ana.id, 0), (bert.id, 0), (bert.id, 1), (bert.id, 2)])
    reasons = {(r.graduate_id, r.seq): r.error for r in rows if r.status != "sent"}
    assert ana.id is not None and cleo.id is not None
    assert reasons[(ana.id, 1)] == reasons[(ana.id, 2)] == "completed"
    assert reasons[(cleo.id, 0)] == "no_consent"
    # Eva blocked the bot and has no e-mail address: no channel is left to reach her.
    assert {(r.status, r.error) for r in rows if r.graduate_id == eva.id} == {
        ("skipped", "no_channel")
    }
    fay_rows = {(r.seq, r.status) for r in rows if r.graduate_id == fay.id}
    assert fay_rows == {(0, "failed"), (1, "skipped"), (2, "skipped")}

    # After the wave closed, an old button says so.
    h.clock.set(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    assert await dispatch(h) == {"sent": 0, "skipped": 0, "deferred": 0, "failed": 0, "retried": 0}
    await h.press(bert_chat, tr("nl", "Start the questionnaire"), expect=0, message=bert_invite)
    await eventually(
        lambda: (
            h.callback_answers(bert_chat)[-1:]
            == [tr("nl", "This questionnaire has closed. Thank you all the same!")]
        )
    )


async def test_survey_command_starts_the_open_wave(waves: Harness) -> None:
    h = waves
    graduate, user = await h.consenting_graduate("en")
    (none,) = await h.send(user, "/survey")
    assert none.content.startswith("There is no questionnaire for you right now.")
    await plan_invitations(h.db, h.runtime.plans, now=h.clock.now())
    h.clock.set(local(date(2026, 8, 30), 11))
    (c0,) = await h.send(user, "/survey")
    assert "May we ask you a few questions?" in c0.content
    async with h.db.session() as session:
        response = (
            await session.exec(
                select(SurveyResponse).where(SurveyResponse.graduate_id == graduate.id)
            )
        ).one()
    assert (response.wave, response.form_id, response.status) == (
        "m2",
        "mini",
        ResponseStatus.OPEN.value,
    )
    await h.press(user, "No", message=c0)
    # Answered before the invitation went out: no invitation, no reminders.
    outcome = await dispatch(h)
    assert outcome["sent"] == 0 and outcome["skipped"] == 1


async def test_a_crash_between_claim_and_send_loses_and_duplicates_nothing(
    waves: Harness,
) -> None:
    h = waves
    _graduate, user = await h.consenting_graduate("en")
    await plan_invitations(h.db, h.runtime.plans, now=h.clock.now())
    h.clock.set(local(date(2026, 8, 30), 10, 30))
    # A dispatcher claims the invitation and dies before sending it.
    async with h.db.session() as session:
        claimed = await claim_due(session, now=h.clock.now(), worker="dead", limit=10)
    assert len(claimed) == 1
    assert (await dispatch(h))["sent"] == 0  # still claimed by the dead one
    h.clock.advance(timedelta(minutes=6))  # its claim has expired
    assert (await dispatch(h))["sent"] == 1
    assert (await dispatch(h))["sent"] == 0
    texts = bot_texts(h, user)
    assert sum(t.startswith("Hello! Alfa College would like to know") for t in texts) == 1
    (row,) = [r for r in await invitations(h) if r.seq == 0]
    assert (row.status, row.attempts) == ("sent", 2)


async def test_telegram_429_and_5xx_are_retried_later(waves: Harness) -> None:
    h = waves
    _graduate, user = await h.consenting_graduate("en")
    await plan_invitations(h.db, h.runtime.plans, now=h.clock.now())
    h.clock.set(local(date(2026, 8, 30), 10, 30))
    # One 429: the rate limiter waits retry_after (real seconds) and the message goes out.
    h.sandbox.faults.add("sendMessage", status=429, retry_after=1, count=1)
    assert (await dispatch(h))["sent"] == 1
    h.clock.set(local(date(2026, 9, 13), 10, 30))  # the first reminder
    # A flood that outlasts the limiter's retries: the row waits for retry_after, unsent.
    h.sandbox.faults.add("sendMessage", status=429, retry_after=1, count=4)
    assert (await dispatch(h))["retried"] == 1
    assert (await dispatch(h))["sent"] == 0  # not before retry_after
    h.clock.advance(timedelta(seconds=2))
    h.sandbox.faults.add("sendMessage", status=502, count=1)
    assert (await dispatch(h))["retried"] == 1
    h.clock.advance(timedelta(minutes=2))
    assert (await dispatch(h))["sent"] == 1
    texts = bot_texts(h, user)
    assert sum(t.startswith("Hello! Alfa College would like to know") for t in texts) == 1
    assert sum(t.startswith("A friendly reminder") for t in texts) == 1


async def test_new_graduates_do_not_get_waves_that_already_closed(waves: Harness) -> None:
    h = waves
    h.clock.set(datetime(2027, 9, 1, 12, 0, tzinfo=UTC))  # m12 (June 2026) closed 2027-08-30
    await h.consenting_graduate("en")
    assert await plan_invitations(h.db, h.runtime.plans, now=h.clock.now()) == 0


async def test_a_graduate_through_every_wave_of_the_default_plan(harness: Harness) -> None:
    """Before graduation, 2, 6 and 12 months after: each invitation and reminder once, at
    10:00 local time, and none after the graduate sent the wave's answers."""
    h = harness
    h.clock.set(datetime(2026, 4, 1, 9, 0, tzinfo=UTC))
    await h.restart_bot()
    graduate, user = await h.consenting_graduate("it")
    # Planned when the chat was linked: nothing left for the planner.
    assert await plan_invitations(h.db, h.runtime.plans, now=h.clock.now()) == 0
    assert len(await invitations(h)) == 3 + 4 + 4 + 4
    rows = sorted(await invitations(h), key=lambda r: r.due_at)
    sent_texts: list[str] = []
    for row in rows:
        h.clock.set(row.due_at + timedelta(minutes=1))
        outcome = await dispatch(h)
        if row.wave == "m2" and row.seq > 0:
            assert outcome["skipped"] == 1  # answered at the invitation
            continue
        assert outcome["sent"] == 1, (row.wave, row.seq, outcome)
        (message,) = await h.replies(user, 1)
        sent_texts.append(message.content)
        if row.wave == "m2" and row.seq == 0:
            (c0,) = await h.press(user, tr("it", "Start the questionnaire"), message=message)
            await h.press(user, "No", message=c0)  # declines this time: the wave is answered
    assert len(sent_texts) == 3 + 1 + 4 + 4
    assert sum(t.startswith(tr("it", INVITE).split("{")[0]) for t in sent_texts) == 4
    assert all(r.status in ("sent", "skipped") for r in await invitations(h))
    assert graduate.consent_followup


# ---------------------------------------------------------------- answering at once


START_NOW = "A questionnaire is open for you now. It takes about five minutes."
NOTHING_NOW = (
    "There is no questionnaire for you right now. I will write to you when the next one opens."
)


async def test_a_graduate_linked_while_a_wave_is_open_is_offered_it_at_once(
    harness: Harness,
) -> None:
    """No planning run between linking and the end of onboarding: the invitation rows are
    made when the chat is linked, the last onboarding message offers the open wave with a
    "Start now" button, and the dispatcher does not send a second invitation."""
    h = harness
    h.clock.set(local(date(2026, 9, 15), 10, 0))  # m2 of the June 2026 graduates is open
    school = await h.school()
    graduate = await h.graduate(school)
    user = h.user("en")
    await h.send(user, f"/start {graduate.invite_token}")
    assert {(i.wave, i.seq) for i in await invitations(h)} >= {("m2", 0), ("m6", 0)}
    await h.press(user, "English", expect=2)
    await h.press(user, "Yes")
    await h.press(user, "Yes")
    (done,) = await h.press(user, "Yes")
    assert START_NOW in done.content
    assert [b["text"] for b in done.buttons] == ["Start now"]
    assert (await dispatch(h))["sent"] == 0  # the offer was the invitation
    (c0,) = await h.press(user, "Start now", message=done)
    assert "Do you have about 5 minutes" in c0.content
    async with h.db.session() as session:
        response = (await session.exec(select(SurveyResponse))).one()
    assert (response.graduate_id, response.wave) == (graduate.id, "m2")


async def test_a_self_registered_graduate_is_offered_the_open_wave(harness: Harness) -> None:
    h = harness
    h.clock.set(local(date(2026, 9, 15), 10, 0))
    await h.school(code="alfa")
    user = h.user("en")
    await h.send(user, "/start s_alfa")
    await h.press(user, "English")
    await h.press(user, "Cook")
    await h.press(user, "2026")
    await h.press(user, "June")
    await h.send(user, "2004", expect=2)
    await h.press(user, "Yes")
    await h.press(user, "Yes")
    (done,) = await h.press(user, "No")
    assert START_NOW in done.content and [b["text"] for b in done.buttons] == ["Start now"]


async def test_roster_graduates_have_their_invitations_planned_by_the_import(
    harness: Harness, tmp_path: object
) -> None:
    from pathlib import Path

    from storage.roster import import_roster

    h = harness
    h.clock.set(local(date(2026, 9, 15), 10, 0))
    await h.school(code="alfa")
    roster = Path(str(tmp_path)) / "roster.csv"
    roster.write_text(
        "student_ref,name,programme,graduation_date\n"
        "r1,Rosa,ICT4,2026-06-30\nr2,Rui,CHEF4,2026-06-30\n",
        encoding="utf-8",
    )
    result = await import_roster(
        h.db, roster, school_code="alfa", plans=h.runtime.plans, now=h.clock.now()
    )
    assert result.ok and result.created == 2
    planned = await invitations(h)
    assert sorted({(i.wave, i.seq) for i in planned if i.seq == 0}) == [
        ("m12", 0),
        ("m2", 0),
        ("m6", 0),
    ]
    assert len({i.graduate_id for i in planned}) == 2


async def test_survey_in_the_quiet_hours_starts_the_open_wave(harness: Harness) -> None:
    """Quiet hours hold back what the bot sends unasked, not what a graduate asks for: the
    dispatcher moved the invitation that fell due to the next morning, and /survey at 22:35
    still starts the questionnaire."""
    h = harness
    h.clock.set(local(date(2026, 8, 20), 10, 0))  # before m2 opens (08-30)
    _graduate, user = await h.consenting_graduate("en")
    h.clock.set(local(date(2026, 8, 30), 22, 30))  # m2 opened at 10:00; the dispatcher was down
    assert (await dispatch(h))["deferred"] == 1
    h.clock.set(local(date(2026, 8, 30), 22, 35))
    (c0,) = await h.send(user, "/survey")
    assert c0.content != NOTHING_NOW
    assert "Do you have about 5 minutes" in c0.content
