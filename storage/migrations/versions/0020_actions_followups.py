"""actions and follow-up lists: programme actions ("you said, we did") and the handling of
graduates who asked for help finding work or offered help to the school (issue 18)

Revision ID: 0020_actions_followups
Revises: 0021_roles
Create Date: 2026-12-03 15:10:00.000000

Two new tables; no existing data changes. Who is on a follow-up list is read from the answers
(U4, A7); `followup_entry` holds only the staff's handling (handled, note, contacted).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0020_actions_followups"
down_revision: str | None = "0021_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "programme_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("indicator", sa.String(length=16), nullable=True),
        sa.Column("answer_ids", sa.JSON(), nullable=False),
        sa.Column("who", sa.String(length=200), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.Integer(), nullable=True),
        sa.Column("broadcast_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["broadcast_id"],
            ["broadcast.id"],
            name=op.f("fk_programme_action_broadcast_id_broadcast"),
        ),
        sa.ForeignKeyConstraint(
            ["closed_by"], ["staff.id"], name=op.f("fk_programme_action_closed_by_staff")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["staff.id"], name=op.f("fk_programme_action_created_by_staff")
        ),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_programme_action_institution_id_institution"),
        ),
        sa.ForeignKeyConstraint(
            ["programme_id"],
            ["programme.id"],
            name=op.f("fk_programme_action_programme_id_programme"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programme_action")),
    )
    with op.batch_alter_table("programme_action", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_programme_action_institution_id"), ["institution_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_programme_action_programme_id"), ["programme_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_programme_action_status"), ["status"], unique=False)
    op.create_table(
        "followup_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("graduate_id", sa.Integer(), nullable=False),
        sa.Column("list_name", sa.String(length=16), nullable=False),
        sa.Column("handled_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("handled_by", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("contacted_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["graduate_id"], ["graduate.id"], name=op.f("fk_followup_entry_graduate_id_graduate")
        ),
        sa.ForeignKeyConstraint(
            ["handled_by"], ["staff.id"], name=op.f("fk_followup_entry_handled_by_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followup_entry")),
        sa.UniqueConstraint(
            "graduate_id", "list_name", name=op.f("uq_followup_entry_graduate_id_list_name")
        ),
    )
    with op.batch_alter_table("followup_entry", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_followup_entry_graduate_id"), ["graduate_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("followup_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_followup_entry_graduate_id"))
    op.drop_table("followup_entry")
    with op.batch_alter_table("programme_action", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_programme_action_status"))
        batch_op.drop_index(batch_op.f("ix_programme_action_programme_id"))
        batch_op.drop_index(batch_op.f("ix_programme_action_institution_id"))
    op.drop_table("programme_action")
