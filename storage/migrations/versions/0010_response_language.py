"""response language: the language a graduate answered a questionnaire in

Revision ID: 0010_response_language
Revises: 0009_contact
Create Date: 2026-12-03 09:30:00.000000

New responses get the chat's language when they start; older ones stay NULL (unknown: their
exports leave the column empty).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_response_language"
down_revision: str | None = "0009_contact"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("survey_response", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("survey_response", schema=None) as batch_op:
        batch_op.drop_column("language")
