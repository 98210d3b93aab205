"""programme kinds: the ISCO-08 major groups a programme trains for, its pathway and VET kind

Revision ID: 0015_programme_isco
Revises: 0014_privacy_notice
Create Date: 2026-12-03 14:40:00.000000

EQAVET 6a "working in the occupation trained for" compares the graduate's ISCO-08 major group
(tracking question E4b) with the groups their programme declares; the indicators are broken
down by pathway (school-based / work-based, e.g. BOL / BBL) and by IVET / CVET. Existing
programmes get NULL: nothing declared, until a school sets it with `gradtrack programme add`
or a roster column.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_programme_isco"
down_revision: str | None = "0014_privacy_notice"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("programme", schema=None) as batch_op:
        batch_op.add_column(sa.Column("isco_groups", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("pathway", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("vet_kind", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("programme", schema=None) as batch_op:
        batch_op.drop_column("vet_kind")
        batch_op.drop_column("pathway")
        batch_op.drop_column("isco_groups")
