"""staff removal: a removed staff member's row stays as a tombstone (removed_at, no Telegram id)

Revision ID: 0008_staff_removal
Revises: 0007
Create Date: 2026-12-03 08:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0008_staff_removal"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("removed_at", storage.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.alter_column("telegram_user_id", existing_type=sa.BigInteger(), nullable=True)


def downgrade() -> None:
    # Tombstones cannot exist without a Telegram id: the news and segments of removed staff
    # lose their creator, and the tombstones go.
    removed = "SELECT id FROM staff WHERE removed_at IS NOT NULL OR telegram_user_id IS NULL"
    op.execute(f"UPDATE broadcast SET created_by = NULL WHERE created_by IN ({removed})")
    op.execute(f"UPDATE segment SET created_by = NULL WHERE created_by IN ({removed})")
    op.execute(f"DELETE FROM dashboard_login WHERE staff_id IN ({removed})")
    op.execute("DELETE FROM staff WHERE removed_at IS NOT NULL OR telegram_user_id IS NULL")
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.alter_column("telegram_user_id", existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_column("removed_at")
