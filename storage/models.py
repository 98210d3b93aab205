"""The tables. Migrations in storage/migrations must match these (a test checks it)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow

# Named constraints: Alembic's batch mode on SQLite needs names to alter them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


class StaffRole(StrEnum):
    """What a staff member may do (bot/access.py has the rules per route and command)."""

    OFFICER = "officer"
    """One school: its figures, news, roster and aggregate exports."""
    ADMIN = "admin"
    """One school or all: everything, with the row-level exports."""
    PROGRAMME = "programme"
    """Programme team: read-only figures of its programmes (`Staff.programme_ids`)."""
    RESEARCHER = "researcher"
    """Figures and pseudonymous exports of one school or all; no names, no messages."""
    REGIONAL = "regional"
    """Aggregates of a group of schools (`Staff.school_ids`); no row-level data."""


class EmailStatus(StrEnum):
    """Graduate.email_status: what became of mail to the graduate's address."""

    OK = "ok"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"


class ConsentKind(StrEnum):
    SURVEY = "survey"
    FOLLOWUP = "followup"
    NEWS = "news"


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class Institution(SQLModel, table=True):
    """A school."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(sa_type=String(32), unique=True, description="Join code in school links")
    name: str = Field(sa_type=String(200))
    country: str = Field(sa_type=String(2), description="ISO 3166-1 alpha-2, e.g. NL")
    default_language: str = Field(sa_type=String(8))
    timezone: str = Field(sa_type=String(64), default="Europe/Amsterdam")
    # The controller's details for the privacy notice (GDPR Art. 13); set with `gradtrack school`.
    legal_name: str | None = Field(
        default=None, sa_type=String(200), description="Controller's legal name; default: name"
    )
    privacy_contact: str | None = Field(
        default=None, sa_type=String(300), description="E-mail or address for privacy questions"
    )
    dpo_contact: str | None = Field(
        default=None, sa_type=String(300), description="Data protection officer, if any"
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SchoolChoiceLabel(SQLModel, table=True):
    """A school's own text for a questionnaire choice in one language (VDAB for a Flemish
    school's public employment service), shown to its graduates over the questionnaire's
    label and its country variant. Keyed by choice list and code, so it applies to every
    questionnaire and version with that choice; set with `gradtrack school label`."""

    __tablename__ = "school_choice_label"
    __table_args__ = (UniqueConstraint("institution_id", "list_name", "choice", "language"),)

    id: int | None = Field(default=None, primary_key=True)
    institution_id: int = Field(foreign_key="institution.id", index=True)
    list_name: str = Field(sa_type=String(32))
    choice: str = Field(sa_type=String(32))
    language: str = Field(sa_type=String(8))
    label: str = Field(sa_type=String(100))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Programme(SQLModel, table=True):
    """A training programme of a school."""

    __table_args__ = (UniqueConstraint("institution_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    institution_id: int = Field(foreign_key="institution.id", index=True)
    code: str = Field(sa_type=String(64))
    name: str = Field(sa_type=String(200))
    eqf_level: int | None = Field(default=None, description="EQF level 1-8")
    field: str | None = Field(default=None, sa_type=String(200), description="Field of training")
    active: bool = Field(default=True)
    # What the programme trains for and how (conversations/programme_kinds.py), for the
    # indicators' 6a occupation figure and breakdowns; set with `gradtrack programme` or a
    # roster. None: not declared.
    isco_groups: str | None = Field(
        default=None,
        sa_type=String(32),
        description="ISCO-08 major groups trained for: digits, comma-separated, e.g. '5,7'",
    )
    pathway: str | None = Field(
        default=None, sa_type=String(16), description="school_based (BOL) or work_based (BBL)"
    )
    vet_kind: str | None = Field(default=None, sa_type=String(8), description="ivet or cvet")


class Graduate(SQLModel, table=True):
    """A graduate (or soon-to-be graduate) of a programme."""

    __table_args__ = (UniqueConstraint("institution_id", "student_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    institution_id: int = Field(foreign_key="institution.id", index=True)
    programme_id: int = Field(foreign_key="programme.id", index=True)
    student_ref: str = Field(sa_type=String(64), description="The school's own student number")
    name: str | None = Field(default=None, sa_type=String(200))
    graduation_date: date
    language: str | None = Field(default=None, sa_type=String(8))
    gender: str | None = Field(default=None, sa_type=String(16))
    birth_year: int | None = None
    self_registered: bool = Field(default=False)

    chat_id: int | None = Field(default=None, sa_type=BigInteger, unique=True)
    linked_at: datetime | None = _ts()
    invite_token: str | None = Field(default=None, sa_type=String(64), unique=True)
    invite_revoked_at: datetime | None = _ts()

    consent_survey: bool | None = None
    consent_survey_at: datetime | None = _ts()
    consent_survey_notice: str | None = Field(default=None, sa_type=String(32))
    consent_followup: bool | None = None
    consent_followup_at: datetime | None = _ts()
    consent_followup_notice: str | None = Field(default=None, sa_type=String(32))
    consent_news: bool | None = None
    consent_news_at: datetime | None = _ts()
    consent_news_notice: str | None = Field(default=None, sa_type=String(32))
    guardian_consent_at: datetime | None = _ts()

    opted_out_at: datetime | None = _ts()
    unreachable_at: datetime | None = _ts()
    unreachable_reason: str | None = Field(default=None, sa_type=String(64))
    # Contact data from the roster (personal data: exported by /mydata, erased, never logged).
    # `email`: trimmed, domain lower-cased and in ASCII (IDNA); `mobile`: E.164 (+31612345678).
    email: str | None = Field(default=None, sa_type=String(254))
    mobile: str | None = Field(default=None, sa_type=String(16))
    # What became of mail to `email`: None (nothing yet or ok), "ok", "bounced" (a permanent
    # SMTP failure), "unsubscribed" (the graduate's opt-out from e-mail); and since when.
    email_status: str | None = Field(default=None, sa_type=String(16))
    email_status_at: datetime | None = _ts()
    # Personal data erased (by the graduate or the retention period); the row stays, without
    # anything that identifies the person, so that aggregate counts stay right.
    erased_at: datetime | None = _ts(index=True)

    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ConsentEvent(SQLModel, table=True):
    """Every consent given or withdrawn, with the notice version shown: the audit trail."""

    __tablename__ = "consent_event"

    id: int | None = Field(default=None, primary_key=True)
    graduate_id: int = Field(foreign_key="graduate.id", index=True)
    kind: str = Field(sa_type=String(16))
    granted: bool
    notice_version: str = Field(sa_type=String(32))
    source: str = Field(sa_type=String(16), default="chat")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Staff(SQLModel, table=True):
    """An alumni officer or admin. No institution means all schools (admins only).

    The row of a removed staff member who wrote news or saved segments stays as a tombstone
    without anything that identifies the person (`removed_at` set; no Telegram id, name or
    language), so that those keep their creator ("removed staff member")."""

    id: int | None = Field(default=None, primary_key=True)
    telegram_user_id: int | None = Field(default=None, sa_type=BigInteger, unique=True)
    name: str | None = Field(default=None, sa_type=String(200))
    role: str = Field(sa_type=String(16), default=StaffRole.OFFICER.value)
    institution_id: int | None = Field(default=None, foreign_key="institution.id", index=True)
    programme_ids: list[int] | None = Field(
        default=None, sa_type=JSON, description="A programme team's programmes (their ids)"
    )
    school_ids: list[int] | None = Field(
        default=None, sa_type=JSON, description="A regional staff member's schools (their ids)"
    )
    language: str | None = Field(default=None, sa_type=String(8))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    removed_at: datetime | None = _ts()


class ChatState(SQLModel, table=True):
    """Where each chat is in a conversation. Written on every step, read on every update."""

    __tablename__ = "chat_state"

    chat_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    flow: str = Field(default="", sa_type=String(32))
    step: str = Field(default="", sa_type=String(32))
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    language: str | None = Field(default=None, sa_type=String(8))
    graduate_id: int | None = Field(default=None, foreign_key="graduate.id", index=True)
    prompt_pending: bool = Field(default=False, index=True)
    # Set on every write: a pending prompt untouched for a while has lost its sender.
    updated_at: datetime = Field(
        default_factory=utcnow, sa_type=UTCDateTime, sa_column_kwargs={"onupdate": utcnow}
    )


class ProcessedUpdate(SQLModel, table=True):
    """Telegram updates already handled: a redelivered update changes nothing twice. Written in
    the same transaction as the update's effect."""

    __tablename__ = "processed_update"

    update_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    processed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class QuestionnaireDefinition(SQLModel, table=True):
    """Every questionnaire version ever loaded, so responses begun on it can be finished after
    a newer version is deployed."""

    __tablename__ = "questionnaire_definition"
    __table_args__ = (UniqueConstraint("form_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    form_id: str = Field(sa_type=String(24))
    version: str = Field(sa_type=String(32))
    source: str = Field(sa_type=Text, description="The YAML text")
    loaded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ResponseChannel(StrEnum):
    """SurveyResponse.channel: where a response was begun (None: before 0012, unknown)."""

    TELEGRAM = "telegram"
    WEB = "web"


class ResponseStatus(StrEnum):
    OPEN = "open"
    SUBMITTED = "submitted"


class SurveyResponse(SQLModel, table=True):
    """One graduate answering one questionnaire version. `current` is where they are."""

    __tablename__ = "survey_response"

    id: int | None = Field(default=None, primary_key=True)
    graduate_id: int = Field(foreign_key="graduate.id", index=True)
    form_id: str = Field(sa_type=String(24), index=True)
    version: str = Field(sa_type=String(32))
    wave: str | None = Field(default=None, sa_type=String(32), index=True)
    status: str = Field(sa_type=String(16), default=ResponseStatus.OPEN.value, index=True)
    current: str = Field(sa_type=String(32), default="", description="Question name or review")
    complete: bool = Field(default=False, description="The routing core is answered")
    declined: bool = Field(default=False, description="Said no to the opening consent question")
    language: str | None = Field(default=None, sa_type=String(8))
    """The language the questionnaire was shown in when it started (None: before 0009)."""
    channel: str | None = Field(default=None, sa_type=String(16))
    """Where it was begun: "telegram" or "web" (`ResponseChannel`; None: before 0012,
    unknown). The dashboard's response rates per channel count it."""
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    completed_at: datetime | None = _ts(index=True)
    """When the routing core was first complete: the date of "responses over time"."""
    submitted_at: datetime | None = _ts()


class Answer(SQLModel, table=True):
    """One answer, under the question's name; choice codes, never label text."""

    __table_args__ = (UniqueConstraint("response_id", "question"),)

    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(foreign_key="survey_response.id", index=True)
    question: str = Field(sa_type=String(32))
    value: Any = Field(sa_type=JSON)
    answered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    carried_from: int | None = Field(default=None, foreign_key="survey_response.id")
    """Not asked in this response: the graduate's answer in that earlier response (their
    previous wave), kept because the question's `carry` held (None: answered here)."""


class InvitationStatus(StrEnum):
    PENDING = "pending"  # due at `due_at`
    CLAIMED = "claimed"  # a dispatcher is sending it (lease until claimed_at + lease)
    SENT = "sent"
    SKIPPED = "skipped"  # not needed any more (completed, wave closed, no consent, erased)
    FAILED = "failed"  # refused for good (blocked, deactivated, bad request, mail bounced)


class Channel(StrEnum):
    """Invitation.channel: how an invitation or reminder went out."""

    TELEGRAM = "telegram"
    EMAIL = "email"


class Invitation(SQLModel, table=True):
    """A message a wave owes a graduate: the invitation (seq 0) or reminder seq 1, 2, ...
    Time is data: a dispatcher claims the due rows and sends them."""

    __table_args__ = (
        UniqueConstraint("graduate_id", "wave", "seq"),
        # The waves open now (`/stats`): seq = 0 and not closed yet, a small part of the table.
        Index("ix_invitation_seq_closes_at", "seq", "closes_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    graduate_id: int = Field(foreign_key="graduate.id", index=True)
    wave: str = Field(sa_type=String(32))
    form_id: str = Field(sa_type=String(24))
    seq: int = Field(default=0, description="0: invitation; 1..n: reminders")
    due_at: datetime = Field(sa_type=UTCDateTime, index=True)
    closes_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(sa_type=String(16), default=InvitationStatus.PENDING.value, index=True)
    claimed_at: datetime | None = _ts()
    claimed_by: str | None = Field(default=None, sa_type=String(64))
    attempts: int = Field(default=0)
    sent_at: datetime | None = _ts()
    message_id: int | None = Field(default=None, sa_type=BigInteger)
    error: str | None = Field(default=None, sa_type=String(200))
    # Which channel the row went by (or was last tried on): "telegram" or "email"; None for
    # a row skipped, or sent before 0011. One row is one message, on one channel.
    channel: str | None = Field(default=None, sa_type=String(16))


class ErasedRef(SQLModel, table=True):
    """A keyed hash of the school's student number of an erased graduate, so that a later
    roster import does not bring them back. The number itself is not kept."""

    __tablename__ = "erased_ref"
    __table_args__ = (UniqueConstraint("institution_id", "ref_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    institution_id: int = Field(foreign_key="institution.id", index=True)
    ref_hash: str = Field(sa_type=String(64))
    erased_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class BroadcastStatus(StrEnum):
    DRAFT = "draft"  # being composed
    SCHEDULED = "scheduled"  # waits for due_at
    SENDING = "sending"  # recipients chosen, deliveries going out
    DONE = "done"
    CANCELLED = "cancelled"


class Segment(SQLModel, table=True):
    """A saved audience: a filter over graduates (school, programme, year, language, wave)."""

    id: int | None = Field(default=None, primary_key=True)
    institution_id: int | None = Field(default=None, foreign_key="institution.id", index=True)
    name: str = Field(sa_type=String(100))
    filter: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Broadcast(SQLModel, table=True):
    """Alumni news to a segment of graduates: texts per language, when, and its report."""

    id: int | None = Field(default=None, primary_key=True)
    institution_id: int | None = Field(default=None, foreign_key="institution.id", index=True)
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    texts: dict[str, str] = Field(default_factory=dict, sa_type=JSON)  # language -> HTML text
    default_language: str = Field(sa_type=String(8), default="en")
    photo: str | None = Field(default=None, sa_type=String(200), description="Telegram file_id")
    link_url: str | None = Field(default=None, sa_type=String(500))
    link_labels: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    filter: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = Field(sa_type=String(16), default=BroadcastStatus.DRAFT.value, index=True)
    due_at: datetime | None = _ts(index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()
    cancelled_at: datetime | None = _ts()
    total: int = Field(default=0)
    sent: int = Field(default=0)
    blocked: int = Field(default=0)
    failed: int = Field(default=0)
    cancelled: int = Field(default=0)
    report_chat_id: int | None = Field(default=None, sa_type=BigInteger)
    report_message_id: int | None = Field(default=None, sa_type=BigInteger)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    BLOCKED = "blocked"  # 403: blocked the bot or deleted the account
    FAILED = "failed"
    CANCELLED = "cancelled"


class Delivery(SQLModel, table=True):
    """One recipient of one broadcast: written before sending, marked when sent."""

    __table_args__ = (UniqueConstraint("broadcast_id", "graduate_id"),)

    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: int = Field(foreign_key="broadcast.id", index=True)
    graduate_id: int = Field(foreign_key="graduate.id", index=True)
    status: str = Field(sa_type=String(16), default=DeliveryStatus.PENDING.value, index=True)
    due_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    claimed_at: datetime | None = _ts()
    attempts: int = Field(default=0)
    sent_at: datetime | None = _ts()
    message_id: int | None = Field(default=None, sa_type=BigInteger)
    error: str | None = Field(default=None, sa_type=String(200))


class StaffInvite(SQLModel, table=True):
    """A one-time link that makes whoever opens it a staff member (`/start t_<token>`)."""

    __tablename__ = "staff_invite"

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(sa_type=String(64), unique=True)
    role: str = Field(sa_type=String(16), default=StaffRole.OFFICER.value)
    institution_id: int | None = Field(default=None, foreign_key="institution.id")
    programme_ids: list[int] | None = Field(default=None, sa_type=JSON)
    school_ids: list[int] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = _ts()
    used_by: int | None = Field(default=None, sa_type=BigInteger)


class DashboardLogin(SQLModel, table=True):
    """A one-time dashboard login link sent by `/dashboard` in the chat, and then the session
    it opened. The link's token is stored only as a SHA-256 hash."""

    __tablename__ = "dashboard_login"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_type=String(64), unique=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, description="The link works until then")
    used_at: datetime | None = _ts()
    session_expires_at: datetime | None = _ts()
    ended_at: datetime | None = _ts()  # logged out


class WebMessage(SQLModel, table=True):
    """One message of a graduate's web chat (bot/web/chat.py), as the page shows it: what the
    bot said (with its buttons, changed in place as Telegram changes a message), what the
    person did, a notice answering a button, or a file (/mydata). Personal data: erased with
    the graduate, and files are deleted a day after they were made (cleanup job)."""

    __tablename__ = "web_message"

    #: Given by the channel (bot/web_channel.next_id: time-ordered), so that a message has its
    #: id before it is written: a turn's messages are written after its flow committed.
    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    chat_id: int = Field(sa_type=BigInteger, index=True)
    kind: str = Field(sa_type=String(8), description="bot, me, notice or file")
    text: str = Field(sa_type=Text, default="")
    buttons: list[list[list[str]]] = Field(default_factory=list, sa_type=JSON)
    file_name: str | None = Field(default=None, sa_type=String(100))
    file_data: bytes | None = Field(default=None, sa_type=LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RetiredLink(SQLModel, table=True):
    """A personal link that no longer works because it was replaced by a new one or its
    graduate was erased, kept as a SHA-256 hash only, so that opening it can say why."""

    __tablename__ = "retired_link"

    token_hash: str = Field(sa_type=String(64), primary_key=True)
    reason: str = Field(sa_type=String(16), description="replaced or erased")
    retired_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ActionStatus(StrEnum):
    """ProgrammeAction.status."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"


class ProgrammeAction(SQLModel, table=True):
    """Something the school decided to do about a programme (the quality cycle's "act"),
    with why (an EQAVET indicator and/or graduates' comments: free-text answers, by id), who,
    by when, and, once done, what was done; and the alumni news that told the programme's
    graduates ("you said, we did"). Written on the dashboard (bot/web/actions.py)."""

    __tablename__ = "programme_action"

    id: int | None = Field(default=None, primary_key=True)
    institution_id: int = Field(foreign_key="institution.id", index=True)
    programme_id: int = Field(foreign_key="programme.id", index=True)
    what: str = Field(sa_type=Text)
    why: str = Field(default="", sa_type=Text)
    indicator: str | None = Field(default=None, sa_type=String(16), description="e.g. 5b, 6a")
    # Answer ids (free-text answers of the programme's graduates). No foreign key: erasing a
    # graduate deletes their free text, and the action then simply shows one comment fewer.
    answer_ids: list[int] = Field(default_factory=list, sa_type=JSON)
    who: str = Field(default="", sa_type=String(200))
    due_on: date | None = None
    status: str = Field(sa_type=String(16), default=ActionStatus.OPEN.value, index=True)
    result: str | None = Field(default=None, sa_type=Text, description="What was done")
    created_by: int | None = Field(default=None, foreign_key="staff.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    closed_at: datetime | None = _ts()
    closed_by: int | None = Field(default=None, foreign_key="staff.id")
    broadcast_id: int | None = Field(default=None, foreign_key="broadcast.id")
    """The "you said, we did" news that told the programme's graduates."""


class FollowupEntry(SQLModel, table=True):
    """A staff member's handling of a graduate on a follow-up list (storage/followups.py):
    "handled", a note, when they last wrote to the graduate. Personal data: deleted when the
    graduate is erased. Who is on a list is read from the answers (U4, A7) each time."""

    __tablename__ = "followup_entry"
    __table_args__ = (UniqueConstraint("graduate_id", "list_name"),)

    id: int | None = Field(default=None, primary_key=True)
    graduate_id: int = Field(foreign_key="graduate.id", index=True)
    list_name: str = Field(sa_type=String(16), description="work or offer")
    handled_at: datetime | None = _ts()
    handled_by: int | None = Field(default=None, foreign_key="staff.id")
    note: str = Field(default="", sa_type=Text)
    contacted_at: datetime | None = _ts()
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CommentTag(SQLModel, table=True):
    """A theme a school's staff gave to a graduate's comment (a free-text answer meant as a
    comment, conversations/feedback.py), e.g. "work placement". A comment is the answer to
    `question` of response `response_id` (keyed so, not by the answer's row, which the
    questionnaire may rewrite); `theme_key` is the theme folded for comparison, `theme` as
    staff wrote it first. Deleted with the graduate's data (storage/erasure.py)."""

    __tablename__ = "comment_tag"
    __table_args__ = (UniqueConstraint("response_id", "question", "theme_key"),)

    id: int | None = Field(default=None, primary_key=True)
    institution_id: int = Field(foreign_key="institution.id", index=True)
    response_id: int = Field(foreign_key="survey_response.id", index=True)
    question: str = Field(sa_type=String(32))
    theme: str = Field(sa_type=String(60))
    theme_key: str = Field(sa_type=String(60))
    tagged_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SummaryCount(SQLModel, table=True):
    """One row of a statistics query (storage/stats.py) for one programme, as the scheduler
    leader last counted it (storage/summaries.py): `kind` names the query, `key` holds the
    row's fields other than the counts (a JSON list, as text, so that equal rows group), `n1`
    to `n4` its counts. The overview and `/stats` add these up instead of recounting."""

    __tablename__ = "summary_count"
    __table_args__ = (
        Index("ix_summary_count_kind_institution_id", "kind", "institution_id"),
        Index("ix_summary_count_programme_id", "programme_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_type=String(200))
    institution_id: int
    programme_id: int
    cohort: int
    key: str = Field(sa_type=Text)
    n1: int = 0
    n2: int = 0
    n3: int = 0
    n4: int = 0


class SummaryMark(SQLModel, table=True):
    """A programme whose counts changed since the summaries were counted: written by database
    triggers (migration 0022) in the transaction of the change, whichever code makes it;
    deleted by the refresh that counted it."""

    __tablename__ = "summary_mark"
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    programme_id: int


class SummaryState(SQLModel, table=True):
    """The one row (id 1) saying when the summaries were counted (None: never; read the
    counts live) and how many refreshes there were (a refresh writes only if no other one
    finished meanwhile)."""

    __tablename__ = "summary_state"

    id: int | None = Field(default=None, primary_key=True)
    refreshed_at: datetime | None = _ts()
    generation: int = 0
