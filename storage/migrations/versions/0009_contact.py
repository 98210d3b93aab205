"""contact data: a graduate's e-mail address and mobile number (roster), and the e-mail status

Revision ID: 0009_contact
Revises: 0008_staff_removal
Create Date: 2026-12-03 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0009_contact"
down_revision: str | None = "0008_staff_removal"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("graduate", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("mobile", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("email_status", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("email_status_at", storage.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("graduate", schema=None) as batch_op:
        batch_op.drop_column("email_status_at")
        batch_op.drop_column("email_status")
        batch_op.drop_column("mobile")
        batch_op.drop_column("email")
