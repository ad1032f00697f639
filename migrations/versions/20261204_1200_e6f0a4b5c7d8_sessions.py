"""sessions (one per login, for the list of devices) and revoked_sessions (what every replica's
access-token check reads)

Revision ID: e6f0a4b5c7d8
Revises: d5e9f3a4b6c7
Create Date: 2026-12-04 12:00:00+00:00

New tables only, filled from the live refresh-token families: nothing here blocks the live tables
beyond the read of `refresh_tokens`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e6f0a4b5c7d8"
down_revision: str | None = "d5e9f3a4b6c7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"], unique=False)
    op.create_table(
        "revoked_sessions",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_revoked_sessions")),
    )
    op.create_index(op.f("ix_revoked_sessions_revoked_at"), "revoked_sessions", ["revoked_at"], unique=False)
    # The sessions logged in before this release: one per family still live, device unknown.
    op.execute(
        "INSERT INTO sessions (id, user_id, user_agent, created_at, last_used_at, expires_at) "
        "SELECT family_id, min(user_id), NULL, min(created_at), max(created_at), max(expires_at) "
        "FROM refresh_tokens GROUP BY family_id "
        "HAVING bool_or(revoked_at IS NULL AND rotated_at IS NULL AND expires_at > now())"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_revoked_sessions_revoked_at"), table_name="revoked_sessions")
    op.drop_table("revoked_sessions")
    op.drop_index(op.f("ix_sessions_user_id"), table_name="sessions")
    op.drop_table("sessions")
