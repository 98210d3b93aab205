"""choice labels: a school's own texts for questionnaire choices (VDAB in Flanders)

Revision ID: 0017_choice_labels
Revises: 0016_carried_answers
Create Date: 2026-12-03 14:30:00.000000

One row per school, choice list, choice code and language, set with `gradtrack school label`.
Shown to the school's graduates over the questionnaire's label and its country variant. No
existing data changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0017_choice_labels"
down_revision: str | None = "0016_carried_answers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "school_choice_label",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("list_name", sa.String(length=32), nullable=False),
        sa.Column("choice", sa.String(length=32), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_school_choice_label_institution_id_institution"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_school_choice_label")),
        sa.UniqueConstraint(
            "institution_id",
            "list_name",
            "choice",
            "language",
            name=op.f("uq_school_choice_label_institution_id_list_name_choice_language"),
        ),
    )
    with op.batch_alter_table("school_choice_label", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_school_choice_label_institution_id"), ["institution_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("school_choice_label", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_school_choice_label_institution_id"))
    op.drop_table("school_choice_label")
