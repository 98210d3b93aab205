"""comment tags: themes staff give to graduates' comments (issue 18)

Revision ID: 0019_comment_tags
Revises: 0020_actions_followups
Create Date: 2026-12-03 15:00:00.000000

One row per comment (a response's free-text answer) and theme. A new table: no existing data
changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0019_comment_tags"
down_revision: str | None = "0020_actions_followups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "comment_tag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("question", sa.String(length=32), nullable=False),
        sa.Column("theme", sa.String(length=60), nullable=False),
        sa.Column("theme_key", sa.String(length=60), nullable=False),
        sa.Column("tagged_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"],
            ["institution.id"],
            name=op.f("fk_comment_tag_institution_id_institution"),
        ),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["survey_response.id"],
            name=op.f("fk_comment_tag_response_id_survey_response"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comment_tag")),
        sa.UniqueConstraint(
            "response_id",
            "question",
            "theme_key",
            name=op.f("uq_comment_tag_response_id_question_theme_key"),
        ),
    )
    with op.batch_alter_table("comment_tag", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_comment_tag_institution_id"), ["institution_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_comment_tag_response_id"), ["response_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("comment_tag", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_comment_tag_response_id"))
        batch_op.drop_index(batch_op.f("ix_comment_tag_institution_id"))
    op.drop_table("comment_tag")
