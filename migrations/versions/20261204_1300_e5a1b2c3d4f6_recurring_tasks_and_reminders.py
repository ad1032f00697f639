"""recurring tasks (rule, series links) and reminders (their schedule)

Revision ID: e5a1b2c3d4f6
Revises: e6f0a4b5c7d8
Create Date: 2026-12-04 13:00:00+00:00

Nullable columns (and one with a constant default) are catalogue-only changes on PostgreSQL 11+:
no table rewrite. The unique index on `previous_id` is built over an all-NULL column.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e5a1b2c3d4f6"
down_revision: str | None = "e6f0a4b5c7d8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SERIES = ("recurrence_rule", "recurrence_timezone", "recurrence_from", "recurrence_start")


def _series_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("recurrence_rule", sa.Text(), nullable=True),
        sa.Column("recurrence_timezone", sa.String(length=64), nullable=True),
        sa.Column("recurrence_from", sa.String(length=16), nullable=True),
        sa.Column("recurrence_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminders", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
        sa.Column("series_id", sa.BigInteger(), nullable=True),
        sa.Column("previous_id", sa.BigInteger(), nullable=True),
    ]


def upgrade() -> None:
    for table in ("tasks", "deleted_tasks"):
        for column in _series_columns():
            op.add_column(table, column)
    op.create_check_constraint(
        "ck_tasks_recurrence_whole",
        "tasks",
        "num_nulls(recurrence_rule, recurrence_timezone, recurrence_from, recurrence_start) IN (0, 4)",
    )
    op.create_index(
        "uq_tasks_previous_id",
        "tasks",
        ["previous_id"],
        unique=True,
        postgresql_where=sa.text("previous_id IS NOT NULL"),
    )
    op.create_table(
        "reminders",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("ordinal", sa.SmallInteger(), nullable=False),
        sa.Column("fire_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("snoozed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_reminders_task_id_tasks"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminders")),
    )
    op.create_index("ix_reminders_task_id", "reminders", ["task_id"])
    op.create_index("ix_reminders_due", "reminders", ["fire_at", "id"], postgresql_where=sa.text("fired_at IS NULL"))
    op.create_index(
        "ix_reminders_user_upcoming",
        "reminders",
        ["user_id", "fire_at", "id"],
        postgresql_where=sa.text("fired_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("reminders")
    op.drop_index("uq_tasks_previous_id", table_name="tasks")
    op.drop_constraint("ck_tasks_recurrence_whole", "tasks", type_="check")
    for table in ("tasks", "deleted_tasks"):
        for column in reversed(_series_columns()):
            op.drop_column(table, column.name)
