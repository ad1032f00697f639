"""indexes on sessions.expires_at and refresh_tokens.expires_at, for retention

Revision ID: f7a2c9d1e3b4
Revises: e5a1b2c3d4f6
Create Date: 2026-12-04 14:00:00+00:00

Retention deletes sessions and refresh tokens that expired before its window, a batch at a time,
oldest first: without these, each batch would read both tables whole. Building them reads the
tables once and blocks their writes (logins, refreshes) meanwhile: a few seconds at most for
a table of a million tokens.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f7a2c9d1e3b4"
down_revision: str | None = "e5a1b2c3d4f6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"], unique=False)
    op.create_index(op.f("ix_refresh_tokens_expires_at"), "refresh_tokens", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_refresh_tokens_expires_at"), table_name="refresh_tokens")
    op.drop_index(op.f("ix_sessions_expires_at"), table_name="sessions")
