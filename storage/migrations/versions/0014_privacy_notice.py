"""privacy notice: the controller's details of a school (legal name, privacy contact, DPO)

Revision ID: 0014_privacy_notice
Revises: 0013_response_channel
Create Date: 2026-12-03 12:45:00.000000

The privacy notice (GDPR Art. 13) names the controller and how to reach it. Existing schools
get NULL: the notice then uses the school's name and points to the school's office until the
school fills in its details with `gradtrack school set`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_privacy_notice"
down_revision: str | None = "0013_response_channel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("institution", schema=None) as batch_op:
        batch_op.add_column(sa.Column("legal_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("privacy_contact", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("dpo_contact", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("institution", schema=None) as batch_op:
        batch_op.drop_column("dpo_contact")
        batch_op.drop_column("privacy_contact")
        batch_op.drop_column("legal_name")
