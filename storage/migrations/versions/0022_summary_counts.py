"""summary counts: the statistics kept per programme instead of recounted (issue 20)

Revision ID: 0022_summary_counts
Revises: 0019_comment_tags
Create Date: 2026-12-03 18:00:00.000000

Three new tables (storage/summaries.py explains them) and, on the tables whose rows the
statistics count, triggers that mark the programme a change concerns. The state row says the
summaries were never counted: the pages count live until the scheduler leader's first refresh.
No existing data changes.

A later migration that alters one of the MARKS tables with Alembic's batch mode re-creates it
on SQLite without its triggers: it must create them again (`_sqlite_triggers`);
tests/test_summaries.py checks that every one exists at the head revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0022_summary_counts"
down_revision: str | None = "0019_comment_tags"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# -WEB_CHAT_BASE - graduate id is a graduate's web chat (storage/queries.py).
_WEB_CHAT = "-9007199254740992 - {row}.chat_id"

# table -> (the events, the programmes one row concerns as a SELECT over {row} (NEW or OLD),
# the column whose change moves the row to other programmes)
MARKS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "graduate": (
        ("INSERT", "UPDATE", "DELETE"),
        "SELECT {row}.programme_id",
        "programme_id",
    ),
    "survey_response": (
        ("INSERT", "UPDATE", "DELETE"),
        "SELECT programme_id FROM graduate WHERE id = {row}.graduate_id",
        "graduate_id",
    ),
    "invitation": (
        ("INSERT", "UPDATE", "DELETE"),
        "SELECT programme_id FROM graduate WHERE id = {row}.graduate_id",
        "graduate_id",
    ),
    "answer": (
        ("INSERT", "UPDATE", "DELETE"),
        "SELECT g.programme_id FROM survey_response r JOIN graduate g ON g.id = r.graduate_id"
        " WHERE r.id = {row}.response_id",
        "response_id",
    ),
    # Only whether a web chat exists counts (the reach), not what it says.
    "chat_state": (
        ("INSERT", "DELETE"),
        f"SELECT programme_id FROM graduate WHERE id = {_WEB_CHAT}",
        "chat_id",
    ),
    # The programme's EQF level, pathway, kind and ISCO groups, the school's country.
    "programme": (("UPDATE",), "SELECT {row}.id", "id"),
    "institution": (("UPDATE",), "SELECT id FROM programme WHERE institution_id = {row}.id", "id"),
}


def _insert(table: str, row: str) -> str:
    return f"INSERT INTO summary_mark (programme_id) {MARKS[table][1].format(row=row)}"


def _sqlite_triggers(table: str) -> list[str]:
    events, _select, moved = MARKS[table]
    found = []
    for event in events:
        name = f"summary_mark_{table}_{event.lower()}"
        if event == "INSERT":
            body = _insert(table, "NEW") + ";"
        elif event == "DELETE":
            body = _insert(table, "OLD") + ";"
        else:
            old = _insert(table, "OLD")
            where = " AND " if " WHERE " in old else " WHERE "
            body = f"{old}{where}OLD.{moved} IS NOT NEW.{moved}; {_insert(table, 'NEW')};"
        found.append(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {body} END")
    return found


def _postgresql_trigger(table: str) -> list[str]:
    events, _select, moved = MARKS[table]
    old = _insert(table, "OLD")
    where = " AND " if " WHERE " in old else " WHERE "
    function = f"""
CREATE FUNCTION summary_mark_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        {old};
    ELSIF TG_OP = 'UPDATE' THEN
        {old}{where}OLD.{moved} IS DISTINCT FROM NEW.{moved};
    END IF;
    IF TG_OP <> 'DELETE' THEN
        {_insert(table, "NEW")};
    END IF;
    RETURN NULL;
END
$$"""
    trigger = (
        f"CREATE TRIGGER summary_mark_{table} AFTER {' OR '.join(events)} ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION summary_mark_{table}()"
    )
    return [function, trigger]


def upgrade() -> None:
    op.create_table(
        "summary_count",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=200), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("cohort", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("n1", sa.Integer(), nullable=False),
        sa.Column("n2", sa.Integer(), nullable=False),
        sa.Column("n3", sa.Integer(), nullable=False),
        sa.Column("n4", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_summary_count")),
    )
    op.create_index(
        "ix_summary_count_kind_institution_id",
        "summary_count",
        ["kind", "institution_id"],
        unique=False,
    )
    op.create_index(
        "ix_summary_count_programme_id", "summary_count", ["programme_id"], unique=False
    )
    op.create_table(
        "summary_mark",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_summary_mark")),
        sqlite_autoincrement=True,
    )
    state = op.create_table(
        "summary_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_summary_state")),
    )
    op.bulk_insert(state, [{"id": 1, "refreshed_at": None, "generation": 0}])
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in MARKS:
        statements = _postgresql_trigger(table) if postgresql else _sqlite_triggers(table)
        for statement in statements:
            op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, (events, _select, _moved) in MARKS.items():
        if postgresql:
            op.execute(f"DROP TRIGGER IF EXISTS summary_mark_{table} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS summary_mark_{table}()")
        else:
            for event in events:
                op.execute(f"DROP TRIGGER IF EXISTS summary_mark_{table}_{event.lower()}")
    op.drop_table("summary_state")
    op.drop_table("summary_mark")
    op.drop_index("ix_summary_count_programme_id", table_name="summary_count")
    op.drop_index("ix_summary_count_kind_institution_id", table_name="summary_count")
    op.drop_table("summary_count")
