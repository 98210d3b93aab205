"""response channel: where a graduate began a response (Telegram or the web chat)

Revision ID: 0013_response_channel
Revises: 0012_invitation_channel
Create Date: 2026-12-03 12:10:00.000000

New responses get the channel of the chat they begin in; older ones stay NULL (unknown: the
dashboard counts them as "channel unknown").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_response_channel"
down_revision: str | None = "0012_invitation_channel"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("survey_response", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("survey_response", schema=None) as batch_op:
        batch_op.drop_column("channel")
