"""invitation channel: which channel an invitation or reminder went by

Revision ID: 0012_invitation_channel
Revises: 0011_web_chat
Create Date: 2026-12-03 12:00:00.000000

Invitations and reminders go by Telegram or, to graduates not reachable in a chat, by e-mail
(issue 16). Rows sent before stay NULL (they all went by Telegram).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_invitation_channel"
down_revision: str | None = "0011_web_chat"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invitation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invitation", schema=None) as batch_op:
        batch_op.drop_column("channel")
