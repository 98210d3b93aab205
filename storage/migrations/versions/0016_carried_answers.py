"""carried answers: an answer kept from the graduate's previous wave (issue 17)

Revision ID: 0016_carried_answers
Revises: 0015_programme_isco
Create Date: 2026-12-03 14:45:00.000000

A later wave does not ask again what cannot have changed: a question whose `carry` holds keeps
the graduate's answer in their previous response. That answer is stored as an answer of the new
response (the indicators count it there) with `carried_from`, the response it came from.
Existing answers were all given where they are: NULL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_carried_answers"
down_revision: str | None = "0015_programme_isco"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("carried_from", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_answer_carried_from_survey_response", "survey_response", ["carried_from"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.drop_constraint("fk_answer_carried_from_survey_response", type_="foreignkey")
        batch_op.drop_column("carried_from")
