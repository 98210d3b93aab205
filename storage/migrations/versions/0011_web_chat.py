"""web chat: the messages of graduates' web chats, and retired personal links

Revision ID: 0011_web_chat
Revises: 0010_response_language
Create Date: 2026-12-03 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0011_web_chat"
down_revision: str | None = "0010_response_language"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_message",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("buttons", sa.JSON(), nullable=False),
        sa.Column("file_name", sa.String(length=100), nullable=True),
        sa.Column("file_data", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_message")),
    )
    with op.batch_alter_table("web_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_message_chat_id"), ["chat_id"], unique=False)
    op.create_table(
        "retired_link",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("retired_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_retired_link")),
    )


def downgrade() -> None:
    op.drop_table("retired_link")
    with op.batch_alter_table("web_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_message_chat_id"))
    op.drop_table("web_message")
