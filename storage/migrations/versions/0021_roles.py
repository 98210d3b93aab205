"""roles: programme team, researcher and regional staff

Revision ID: 0021_roles
Revises: 0017_choice_labels
Create Date: 2026-12-03 15:00:00.000000

A programme team's programmes and a regional staff member's schools, on the staff member and
on the invitation that makes one (JSON lists of ids; NULL for the other roles). The roles
themselves are values of the existing `role` column. No existing data changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_roles"
down_revision: str | None = "0017_choice_labels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("staff", "staff_invite")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("programme_ids", sa.JSON(), nullable=True))
            batch_op.add_column(sa.Column("school_ids", sa.JSON(), nullable=True))


def downgrade() -> None:
    # The older schema knows no such roles: their staff lose access, as `gradtrack staff
    # remove` would end it (logins deleted; the row kept as a tombstone without anything that
    # identifies the person), and their unused invitations go.
    staff = sa.table(
        "staff",
        sa.column("id"),
        sa.column("role"),
        sa.column("telegram_user_id"),
        sa.column("name"),
        sa.column("language"),
        sa.column("removed_at"),
    )
    login = sa.table("dashboard_login", sa.column("staff_id"))
    invite = sa.table("staff_invite", sa.column("role"))
    new_roles = ("programme", "researcher", "regional")
    ids = sa.select(staff.c.id).where(staff.c.role.in_(new_roles))
    op.execute(login.delete().where(login.c.staff_id.in_(ids)))
    op.execute(
        staff.update()
        .where(staff.c.role.in_(new_roles), staff.c.removed_at.is_(None))
        .values(telegram_user_id=None, name=None, language=None, removed_at=sa.func.now())
    )
    op.execute(invite.delete().where(invite.c.role.in_(new_roles)))
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("school_ids")
            batch_op.drop_column("programme_ids")
