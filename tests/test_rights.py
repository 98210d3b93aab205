"""The graduate's rights from the chat (/mydata, /delete) and the retention sweep, through the
sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlmodel import col, select

from bot.i18n import format_date, language_name, use_language
from bot.sandbox.state import SandboxUser
from conversations import rights
from conversations.notice import shown_version
from conversations.onboarding import not_registered_text
from conversations.registry import QUESTIONNAIRES_DIR, QuestionnaireRegistry
from conversations.rules import new_invite_token
from storage import erasure
from storage.db import Database
from storage.erasure import retention_cutoff, retention_sweep
from storage.models import (
    Answer,
    ChatState,
    ConsentEvent,
    ConsentKind,
    ErasedRef,
    Graduate,
    Institution,
    Invitation,
    InvitationStatus,
    Programme,
    ResponseStatus,
    SurveyResponse,
)
from storage.queries import set_consent
from tests.harness import Harness, eventually, tr

CHAT_DIR = Path(__file__).parent / "data" / "chat"

NAME = "Zephyrine Quackenbush"
REF = "STU-7788-99"
EMAIL = "zephyrine.q@voorbeeld.nl"
MOBILE = "+31612345678"
TIPS = "More internships please. Zephyrine from class 4B"
OTHER_NAME = "Bartholomew Okonkwo-Vance"
OTHER_REF = "STU-1122-33"
OTHER_TIPS = "Bartholomew says: better coffee"

CLOSED_ANSWERS: dict[str, Any] = {
    "C0": "yes",
    "Q1": "working",
    "HOURS": 40,
    "HOW": ["friends", "online"],
    "SAT": 4,
    "START": "2026-06-30",
    "NEXT": "2026-09",
    "KM": 2.5,
}
ALL_ANSWERS: dict[str, Any] = {**CLOSED_ANSWERS, "TIPS": TIPS}

CAPTION = (
    "Here is a copy of all the data this chat stores about you. To have it deleted, send /delete."
)
YES_DELETE = "Yes, delete my data"
NO_KEEP = "No, keep my data"
KEPT = "OK, I have not deleted anything."
DONE = (
    "Done: your data has been deleted and this chat is no longer linked to you. "
    "I will not write to you again. You can also delete this chat in Telegram."
)
GONE = "Your data has already been deleted."
EXPIRED = "This button is no longer active. Send /delete again."
UNKNOWN_LINK = (
    "I don't recognise this link. Please check that you opened the whole link, "
    "or ask your school for your personal link."
)


# ---------------------------------------------------------------- set-up


def _registry_dir(target: Path) -> Path:
    """The deployed questionnaires plus the small all-types one."""
    for path in [*QUESTIONNAIRES_DIR.glob("*.yaml"), CHAT_DIR / "mini.yaml"]:
        shutil.copy(path, target / path.name)
    return target


@pytest.fixture
async def h(harness: Harness, tmp_path: Path) -> Harness:
    harness.questionnaires = QuestionnaireRegistry(_registry_dir(tmp_path))
    await harness.restart_bot()
    return harness


async def _school_of(h: Harness, graduate: Graduate) -> Institution:
    async with h.db.session() as session:
        school = await session.get(Institution, graduate.institution_id)
        assert school is not None
        return school


async def _add_response(
    db: Database,
    graduate_id: int | None,
    answers: dict[str, Any],
    *,
    version: str = "1",
    status: str = ResponseStatus.SUBMITTED.value,
    wave: str | None = "m2",
) -> SurveyResponse:
    assert graduate_id is not None
    async with db.session() as session:
        submitted = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
        response = SurveyResponse(
            graduate_id=graduate_id,
            form_id="mini",
            version=version,
            wave=wave,
            status=status,
            complete=status == ResponseStatus.SUBMITTED.value,
            started_at=submitted - timedelta(minutes=5),
            submitted_at=submitted if status == ResponseStatus.SUBMITTED.value else None,
            current="" if status == ResponseStatus.SUBMITTED.value else "SAT",
        )
        session.add(response)
        await session.flush()
        assert response.id is not None
        for question, value in answers.items():
            session.add(Answer(response_id=response.id, question=question, value=value))
    return response


async def _graduate_in_chat(
    h: Harness, lang: str, user_id: int, school: Institution | None = None
) -> tuple[Graduate, SandboxUser]:
    """A named graduate with a distinctive Telegram id, onboarded in `lang` with every consent
    given, and one submitted response with a free-text answer."""
    school = school or await h.school()
    graduate = await h.graduate(
        school,
        language=lang,
        ref=REF,
        name=NAME,
        gender="female",
        birth_year=2004,
        email=EMAIL,
        mobile=MOBILE,
    )
    user = h.sandbox.create_user(
        h.token, first_name="Zephyrine", language_code=lang, user_id=user_id
    )
    await h.send(user, f"/start {graduate.invite_token}")
    await h.press(user, language_name(lang), expect=2)
    for _ in range(3):
        await h.press(user, tr(lang, "Yes"))
    await _add_response(h.db, graduate.id, ALL_ANSWERS)
    return await h.reload(graduate), user


async def _other_graduate(h: Harness, school: Institution) -> Graduate:
    """Someone else at the same school, with data of their own that must stay untouched."""
    other = await h.graduate(
        school, language="nl", ref=OTHER_REF, name=OTHER_NAME, chat_id=555_111_222_333
    )
    async with h.db.session() as session:
        stored = await session.get(Graduate, other.id)
        assert stored is not None
        set_consent(session, stored, ConsentKind.SURVEY, True, "2026-11")
    await _add_response(h.db, other.id, {**CLOSED_ANSWERS, "TIPS": OTHER_TIPS})
    return await h.reload(other)


async def _answers(db: Database, graduate_id: int | None) -> dict[int, dict[str, Any]]:
    async with db.session() as session:
        rows = await session.exec(
            select(Answer, SurveyResponse)
            .join(SurveyResponse, col(SurveyResponse.id) == col(Answer.response_id))
            .where(SurveyResponse.graduate_id == graduate_id)
        )
        result: dict[int, dict[str, Any]] = {}
        for answer, response in rows.all():
            assert response.id is not None
            result.setdefault(response.id, {})[answer.question] = answer.value
        return result


async def _dump(db: Database) -> dict[str, list[str]]:
    """Every row of every table in the database (found by reflection, so tables added later
    are searched too), as text, sorted."""
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        dump: dict[str, list[str]] = {}
        for name in names:
            result = await conn.execute(text(f'SELECT * FROM "{name}"'))
            rows = [
                json.dumps(dict(row._mapping), default=str, sort_keys=True, ensure_ascii=False)
                for row in result
            ]
            dump[name] = sorted(rows)
    return dump


async def _find(db: Database, needles: list[str]) -> list[tuple[str, str, str]]:
    """Where any of `needles` occurs in any column of any table."""
    hits = []
    for table, rows in (await _dump(db)).items():
        for row in rows:
            for needle in needles:
                if needle in row:
                    hits.append((needle, table, row))
    return hits


async def _graduate_rows(db: Database, graduate_id: int | None) -> dict[str, Any]:
    """Everything stored about one graduate, for comparing before and after."""
    async with db.session() as session:
        graduate = await session.get(Graduate, graduate_id)
        events = (
            await session.exec(select(ConsentEvent).where(ConsentEvent.graduate_id == graduate_id))
        ).all()
        states = (
            await session.exec(select(ChatState).where(ChatState.graduate_id == graduate_id))
        ).all()
        responses = (
            await session.exec(
                select(SurveyResponse).where(SurveyResponse.graduate_id == graduate_id)
            )
        ).all()
        invitations = (
            await session.exec(select(Invitation).where(Invitation.graduate_id == graduate_id))
        ).all()
        return {
            "graduate": graduate.model_dump() if graduate else None,
            "events": [e.model_dump() for e in events],
            "states": [s.model_dump() for s in states],
            "responses": [r.model_dump() for r in responses],
            "invitations": [i.model_dump() for i in invitations],
            "answers": await _answers(db, graduate_id),
        }


# ---------------------------------------------------------------- /mydata


async def test_mydata_sends_the_stored_data_as_json_in_the_graduates_language(h: Harness) -> None:
    graduate, user = await _graduate_in_chat(h, "nl", user_id=987_654_321_001)
    other = await _other_graduate(h, await _school_of(h, graduate))

    (reply,) = await h.send(user, "/mydata")
    assert reply.document is not None
    assert reply.document["file_name"] == "gradtrack-my-data.json"
    assert reply.caption == tr("nl", CAPTION)
    raw = h.sandbox.file_bytes(h.token, reply.document["file_id"]).decode("utf-8")
    assert raw.startswith('{\n  "')  # pretty-printed
    data = json.loads(raw)

    # Nothing of anyone else, and not the invite token (a credential).
    assert graduate.invite_token is not None and graduate.invite_token not in raw
    for foreign in (OTHER_NAME, OTHER_REF, OTHER_TIPS, "555111222333", other.invite_token):
        assert foreign is not None and foreign not in raw

    async with h.db.session() as session:
        school = await session.get(Institution, graduate.institution_id)
        programme = await session.get(Programme, graduate.programme_id)
    assert school is not None and programme is not None
    assert data["school"] == {"name": school.name, "country": "NL"}
    assert data["programme"]["name"] == programme.name
    assert data["programme"]["code"] == programme.code
    assert data["name"] == NAME and data["student_number"] == REF
    assert data["graduation_date"] == "2026-06-30"
    assert (data["language"], data["gender"], data["birth_year"]) == ("nl", "female", 2004)
    # The contact data from the roster (issue 16), with what became of mail to the address.
    assert data["email"] == {"address": EMAIL, "status": None, "status_at": None}
    assert data["mobile"] == MOBILE
    assert graduate.linked_at is not None
    assert data["telegram_chat"] == {
        "chat_id": user.id,
        "linked_at": graduate.linked_at.isoformat(),
    }
    # The version of the notice shown to this school's graduates (wording, details, retention).
    version = shown_version(h.settings, school)
    assert version.startswith(h.settings.privacy_notice_version + "-")
    for kind in ConsentKind:
        at = getattr(graduate, f"consent_{kind.value}_at")
        assert data["consents"][kind.value] == {
            "given": True,
            "at": at.isoformat(),
            "notice_version": version,
        }
    events = await h.consent_events(graduate)
    assert data["consent_history"] == [
        {
            "kind": e.kind,
            "given": e.granted,
            "at": e.at.isoformat(),
            "notice_version": e.notice_version,
            "source": e.source,
        }
        for e in events
    ]
    assert [e["kind"] for e in data["consent_history"]] == ["survey", "followup", "news"]
    assert data["status"]["opted_out"] is False and data["status"]["unreachable"] is False

    (response,) = data["survey_responses"]
    assert response["questionnaire"] == "mini" and response["version"] == "1"
    assert response["questionnaire_title"] == "Mini-enquête"
    assert (response["wave"], response["status"], response["complete"]) == ("m2", "submitted", True)
    assert "language" in response  # the language answered in (seeded here without one)
    assert response["submitted_at"] == "2026-09-01T12:00:00+00:00"
    answers = {a["question"]: a for a in response["answers"]}
    # In questionnaire order, every stored answer, labelled in Dutch.
    assert list(answers) == ["C0", "Q1", "HOURS", "HOW", "SAT", "START", "NEXT", "KM", "TIPS"]
    assert {name: a["value"] for name, a in answers.items()} == ALL_ANSWERS
    with use_language("nl"):
        start_label = format_date(date(2026, 6, 30), "long")
    expected = {
        "C0": ("Mogen we je een paar vragen stellen?", "Ja"),
        "Q1": ("Wat doe je nu?", "Werken"),
        "HOURS": ("Hoeveel uur per week werk je?", "40"),
        "HOW": ("Hoe heb je gezocht?", "Vrienden, Online"),
        "START": ("Wanneer ben je begonnen?", start_label),
        "TIPS": ("Heb je tips voor de school?", TIPS),
    }
    for name, (label, value_label) in expected.items():
        assert (answers[name]["question_label"], answers[name]["value_label"]) == (
            label,
            value_label,
        )
    assert "juni" in start_label


async def test_mydata_and_delete_for_a_chat_that_is_not_registered(h: Harness) -> None:
    user = h.user("es")
    (reply,) = await h.send(user, "/mydata")
    with use_language("es"):
        assert reply.text == rights.nothing_kept_text()
    (reply,) = await h.send(user, "/delete")
    with use_language("es"):
        assert reply.text == not_registered_text()


# ---------------------------------------------------------------- /delete


async def test_delete_then_no_changes_nothing(h: Harness) -> None:
    graduate, user = await _graduate_in_chat(h, "es", user_id=987_654_321_002)
    before = await _dump(h.db)

    (question,) = await h.send(user, "/delete")
    with use_language("es"):
        assert question.text == rights.confirmation_text()
    assert [b["text"] for b in question.buttons] == [tr("es", YES_DELETE), tr("es", NO_KEEP)]
    assert all(b["callback_data"].startswith("del:") for b in question.buttons)

    (reply,) = await h.press(user, tr("es", NO_KEEP), message=question)
    assert reply.text == tr("es", KEPT)
    edited = next(
        e for e in h.sandbox.transcript(h.token, user.id) if e.message_id == question.message_id
    )
    assert edited.buttons == [] and edited.content.endswith("→ " + tr("es", NO_KEEP))

    after = await _dump(h.db)
    before.pop("processed_update")
    after.pop("processed_update")
    assert after == before
    assert (await h.reload(graduate)).erased_at is None


async def test_delete_then_yes_erases_everything_that_identifies_the_graduate(
    h: Harness,
) -> None:
    graduate, user = await _graduate_in_chat(h, "it", user_id=987_654_321_003)
    assert graduate.id is not None
    school = await _school_of(h, graduate)
    other = await _other_graduate(h, school)
    open_response = await _add_response(
        h.db, graduate.id, {"C0": "yes", "TIPS": TIPS}, status="open", wave="m6"
    )
    due = datetime(2026, 12, 30, 9, 0, tzinfo=UTC)
    async with h.db.session() as session:
        # A stray state pointing at the graduate from another chat.
        session.add(ChatState(chat_id=987_654_321_999, graduate_id=graduate.id, language="it"))
        # The rows planned when the chat was linked, replaced by one of each status.
        for planned in (
            await session.exec(select(Invitation).where(Invitation.graduate_id == graduate.id))
        ).all():
            await session.delete(planned)
        await session.flush()
        for seq, status in enumerate(
            [InvitationStatus.SENT, InvitationStatus.PENDING, InvitationStatus.CLAIMED]
        ):
            session.add(
                Invitation(
                    graduate_id=graduate.id,
                    wave="m6",
                    form_id="mini",
                    seq=seq,
                    due_at=due + timedelta(weeks=2 * seq),
                    closes_at=due + timedelta(weeks=9),
                    status=status.value,
                )
            )
    other_before = await _graduate_rows(h.db, other.id)
    token = graduate.invite_token
    assert token is not None and graduate.student_ref == REF and graduate.name == NAME
    needles = [NAME, REF, token, str(user.id), TIPS]
    assert {hit[0] for hit in await _find(h.db, needles)} == set(needles)  # the scan works

    (first,) = await h.send(user, "/delete")
    (second,) = await h.send(user, "/delete")
    (done,) = await h.press(user, tr("it", YES_DELETE), message=second)
    assert done.text == tr("it", DONE)
    press_update = h.sandbox.bot(h.token).history[-1]["update_id"]

    stored = await h.reload(graduate)
    now = h.clock.now()
    assert stored.erased_at == now and stored.opted_out_at == now
    # Kept: what the aggregate counts need.
    for kept in (
        "institution_id",
        "programme_id",
        "graduation_date",
        "language",
        "self_registered",
        "created_at",
    ):
        assert getattr(stored, kept) == getattr(graduate, kept), kept
    assert stored.language == "it"
    assert stored.student_ref == f"erased-{graduate.id}"
    assert (graduate.email, graduate.mobile) == (EMAIL, MOBILE)
    for cleared in (
        "name",
        "gender",
        "birth_year",
        "email",
        "mobile",
        "chat_id",
        "invite_token",
        "invite_revoked_at",
        "linked_at",
        "guardian_consent_at",
        *(f"consent_{k.value}{suffix}" for k in ConsentKind for suffix in ("", "_at", "_notice")),
    ):
        assert getattr(stored, cleared) is None, cleared
    assert (stored.unreachable_at, stored.unreachable_reason) == (None, None)

    async with h.db.session() as session:
        assert (
            await session.exec(select(ConsentEvent).where(ConsentEvent.graduate_id == graduate.id))
        ).all() == []
        states = await session.exec(
            select(ChatState).where(
                (col(ChatState.chat_id) == user.id) | (col(ChatState.graduate_id) == graduate.id)
            )
        )
        assert states.all() == []
        invitations = (
            await session.exec(
                select(Invitation)
                .where(Invitation.graduate_id == graduate.id)
                .order_by(col(Invitation.seq))
            )
        ).all()
        responses = (
            await session.exec(
                select(SurveyResponse)
                .where(SurveyResponse.graduate_id == graduate.id)
                .order_by(col(SurveyResponse.id))
            )
        ).all()
    assert [i.status for i in invitations] == ["sent", "skipped", "skipped"]
    # Responses stay (status, wave, times); closed answers stay, free text is gone.
    assert [(r.status, r.wave, r.complete) for r in responses] == [
        ("submitted", "m2", True),
        ("open", "m6", False),
    ]
    answers = await _answers(h.db, graduate.id)
    assert answers == {responses[0].id: CLOSED_ANSWERS, open_response.id: {"C0": "yes"}}

    # No table holds the name, student number, invite token, chat id or the free text.
    assert await _find(h.db, needles) == []
    # Everyone else's data is as it was.
    assert await _graduate_rows(h.db, other.id) == other_before

    # The older question's buttons, and the same press delivered again, change nothing.
    await h.press(user, tr("it", YES_DELETE), expect=0, message=first)
    await eventually(lambda: h.callback_answers(user)[-1:] == [tr("it", GONE)])
    h.sandbox.redeliver(h.token, press_update)

    # The chat is no longer linked, and the invite link no longer works.
    (reply,) = await h.send(user, "/start")
    with use_language("it"):
        assert reply.text == not_registered_text()
    (reply,) = await h.send(user, f"/start {token}")
    assert reply.text == tr("it", UNKNOWN_LINK)
    # /mydata says plainly that nothing is kept any more.
    (reply,) = await h.send(user, "/mydata")
    with use_language("it"):
        assert reply.text == rights.nothing_kept_text()
    assert "Non conservo nessun dato su di te" in reply.content
    # Updates are handled in order: the redelivered press came before these and did nothing.
    texts = [e.content for e in h.sandbox.bot_messages(h.token, user.id)]
    assert texts.count(tr("it", DONE)) == 1
    assert (await h.reload(graduate)).erased_at == now
    # Writing again makes the chat a stranger's: an empty state, linked to nobody.
    hits = await _find(h.db, needles)
    assert [(needle, table) for needle, table, _row in hits] == [(str(user.id), "chat_state")]
    async with h.db.session() as session:
        state = await session.get(ChatState, user.id)
    assert state is not None and state.graduate_id is None and state.data == {}


async def test_delete_buttons_expire(h: Harness) -> None:
    graduate, user = await _graduate_in_chat(h, "en", user_id=987_654_321_004)
    (question,) = await h.send(user, "/delete")
    h.clock.advance(rights.CONFIRM_TTL + timedelta(minutes=1))
    await h.press(user, YES_DELETE, expect=0, message=question)
    await eventually(lambda: h.callback_answers(user)[-1:] == [EXPIRED])
    assert (await h.reload(graduate)).erased_at is None
    # A fresh question works.
    (question,) = await h.send(user, "/delete")
    (done,) = await h.press(user, YES_DELETE, message=question)
    assert done.text == DONE
    assert (await h.reload(graduate)).erased_at == h.clock.now()


# ---------------------------------------------------------------- retention


async def _cohort_graduate(
    db: Database, school: Institution, programme: Programme, graduated: date, n: int
) -> Graduate:
    assert school.id is not None and programme.id is not None
    chat_id = 987_000_000_000 + n
    async with db.session() as session:
        graduate = Graduate(
            institution_id=school.id,
            programme_id=programme.id,
            student_ref=f"REF-{n:04d}-X",
            name=f"Person Number{n:04d}",
            graduation_date=graduated,
            language="et",
            gender="male",
            birth_year=2003,
            email=f"person{n:04d}@kool.example.ee",
            mobile=f"+3725{n:07d}",
            chat_id=chat_id,
            linked_at=datetime(2022, 1, 1, tzinfo=UTC),
            invite_token=new_invite_token(),
        )
        session.add(graduate)
        await session.flush()
        set_consent(session, graduate, ConsentKind.SURVEY, True, "2026-11")
        session.add(
            ChatState(chat_id=chat_id, graduate_id=graduate.id, language="et", data={"x": n})
        )
    await _add_response(db, graduate.id, {**CLOSED_ANSWERS, "TIPS": f"free text {n:04d}"})
    return graduate


async def _closed_counts(db: Database) -> dict[tuple[str, str], int]:
    """Answers per (question, value) over the closed questions: what statistics count."""
    counts: dict[tuple[str, str], int] = {}
    async with db.session() as session:
        for answer in (await session.exec(select(Answer))).all():
            if answer.question in CLOSED_ANSWERS:
                key = (answer.question, json.dumps(answer.value))
                counts[key] = counts.get(key, 0) + 1
    return counts


async def test_retention_sweep_erases_only_the_old_cohort_once(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await QuestionnaireRegistry(_registry_dir(tmp_path)).sync(db)
    monkeypatch.setattr(erasure, "BATCH_SIZE", 2)  # several batches
    now = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
    cutoff = retention_cutoff(now, 36)
    assert cutoff == date(2023, 1, 15)
    async with db.session() as session:
        school = Institution(code="beta", name="Beta College", country="EE", default_language="et")
        session.add(school)
        await session.flush()
        assert school.id is not None
        programme = Programme(institution_id=school.id, code="ICT4", name="Developer")
        session.add(programme)

    old_dates = [date(2022, 6, 30)] * 3 + [cutoff - timedelta(days=1)]
    kept_dates = [cutoff, date(2025, 6, 30), date(2025, 6, 30)]
    old = [await _cohort_graduate(db, school, programme, d, n) for n, d in enumerate(old_dates)]
    kept = [
        await _cohort_graduate(db, school, programme, d, 100 + n) for n, d in enumerate(kept_dates)
    ]
    # A response on a questionnaire version that is not stored: all its answers go.
    unknown = await _add_response(db, old[0].id, {"C0": "yes", "SAT": 5}, version="0-gone")
    counts = await _closed_counts(db)
    kept_before = [await _graduate_rows(db, g.id) for g in kept]

    assert await retention_sweep(db, now=now, retention_months=36) == len(old)

    old_needles = [
        s
        for g in old
        for s in (g.name, g.student_ref, g.invite_token, str(g.chat_id), g.email, g.mobile)
        if s is not None
    ] + [f"free text {n:04d}" for n in range(len(old))]
    assert await _find(db, old_needles) == []
    for graduate in old:
        stored = await _graduate_rows(db, graduate.id)
        row = stored["graduate"]
        assert row["erased_at"] == now and row["opted_out_at"] == now
        assert row["student_ref"] == f"erased-{graduate.id}"
        assert (row["name"], row["chat_id"], row["invite_token"], row["birth_year"]) == (
            None,
            None,
            None,
            None,
        )
        assert row["graduation_date"] == graduate.graduation_date and row["language"] == "et"
        assert stored["events"] == [] and stored["states"] == []
        by_response = stored["answers"]
        assert [a for rid, a in by_response.items() if rid != unknown.id] == [CLOSED_ANSWERS]
        assert unknown.id not in by_response
    # The aggregate counts are what they were (less the answers to the unknown version).
    counts[("C0", '"yes"')] -= 1
    del counts[("SAT", "5")]
    assert await _closed_counts(db) == counts
    # The others are untouched, free text and all.
    assert [await _graduate_rows(db, g.id) for g in kept] == kept_before

    # Idempotent: nothing left to do, nothing changes.
    snapshot = await _dump(db)
    assert await retention_sweep(db, now=now, retention_months=36) == 0
    assert await _dump(db) == snapshot
    # A year later, the next cohort's turn (the boundary graduate included).
    later = datetime(2028, 7, 1, tzinfo=UTC)
    assert await retention_sweep(db, now=later, retention_months=36) == len(kept)
    assert await _closed_counts(db) == counts


async def test_a_roster_import_after_erasure_does_not_bring_the_graduate_back(
    h: Harness, tmp_path: Path
) -> None:
    from storage.roster import import_roster

    school = await h.school(code="demo-nl", country="NL", language="nl")
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "student_ref,name,school,programme,graduation_date\n"
        "S-1,Anna de Vries,demo-nl,ICT4,2026-06-30\n"
        "S-2,Bram Jansen,demo-nl,CHEF4,2026-06-30\n",
        encoding="utf-8",
    )
    key = h.settings.key
    first = await import_roster(h.db, roster, ref_key=key)
    assert (first.created, first.erased) == (2, [])
    async with h.db.session() as session:
        anna = (await session.exec(select(Graduate).where(Graduate.student_ref == "S-1"))).one()
    user = h.user("nl")
    await h.send(user, f"/start {anna.invite_token}")
    (question,) = await h.send(user, "/delete")
    await h.press(user, tr("nl", "Yes, delete my data"), message=question)

    again = await import_roster(h.db, roster, ref_key=key)
    assert again.ok and again.erased == [2] and again.created == 0 and again.unchanged == 1
    found = await _find(h.db, ["S-1", "Anna de Vries"])
    assert found == []
    async with h.db.session() as session:
        erased_rows = (await session.exec(select(ErasedRef))).all()
    assert [r.institution_id for r in erased_rows] == [school.id]
    assert "S-1" not in erased_rows[0].ref_hash
