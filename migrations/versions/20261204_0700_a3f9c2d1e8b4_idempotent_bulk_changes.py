"""idempotency keys also keep the outcome of a bulk change

Revision ID: a3f9c2d1e8b4
Revises: 5d2e8c41a7b3
Create Date: 2026-12-04 07:00:00+00:00

A key's row holds either the task a create made (`task`) or the results of a bulk change
(`bulk`), never both. The table holds a day of keys; the constraint is still added NOT VALID
and validated apart, so no step blocks writes for longer than a catalogue update.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a3f9c2d1e8b4"
down_revision: str | None = "5d2e8c41a7b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("SET lock_timeout = '3s'")
    op.add_column("idempotency_keys", sa.Column("bulk", postgresql.JSONB(), nullable=True))
    op.alter_column("idempotency_keys", "task", nullable=True)
    op.execute(
        "ALTER TABLE idempotency_keys ADD CONSTRAINT ck_idempotency_keys_one_outcome "
        "CHECK (num_nonnulls(task, bulk) = 1) NOT VALID"
    )
    op.execute("ALTER TABLE idempotency_keys VALIDATE CONSTRAINT ck_idempotency_keys_one_outcome")


def downgrade() -> None:
    op.execute("DELETE FROM idempotency_keys WHERE task IS NULL")
    op.execute("ALTER TABLE idempotency_keys DROP CONSTRAINT ck_idempotency_keys_one_outcome")
    op.alter_column("idempotency_keys", "task", nullable=False)
    op.drop_column("idempotency_keys", "bulk")
