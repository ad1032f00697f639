"""change feed and restorable deletes

Revision ID: b7e4d2a9c1f0
Revises: a3f9c2d1e8b4
Create Date: 2026-12-04 09:15:00+00:00

New tables only, so nothing here waits on or blocks the live ones: the per-person change
counters, the outbox (`events`, in Debezium's Outbox Event Router layout) and the places deleted
tasks and lists wait to be restored. Existing accounts get their counter on their first change.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b7e4d2a9c1f0"
down_revision: str | None = "a3f9c2d1e8b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_feeds",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("pruned_through", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_change_feeds_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_change_feeds")),
    )
    op.create_table(
        "deleted_lists",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("color", sa.String(length=32), nullable=True),
        sa.Column("position", sa.String(length=255, collation="C"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_deleted_lists_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deleted_lists")),
    )
    op.create_index("ix_deleted_lists_deleted_at", "deleted_lists", ["deleted_at"], unique=False)
    op.create_index("ix_deleted_lists_user_deleted", "deleted_lists", ["user_id", "deleted_at", "id"], unique=False)
    op.create_table(
        "deleted_tasks",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("list_id", sa.BigInteger(), nullable=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=True),
        sa.Column("position", sa.String(length=255, collation="C"), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("root_id", sa.BigInteger(), nullable=False),
        sa.Column("deleted_list_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_deleted_tasks_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deleted_tasks")),
    )
    op.create_index("ix_deleted_tasks_deleted_at", "deleted_tasks", ["deleted_at"], unique=False)
    op.create_index(
        "ix_deleted_tasks_deleted_list",
        "deleted_tasks",
        ["deleted_list_id"],
        unique=False,
        postgresql_where=sa.text("deleted_list_id IS NOT NULL"),
    )
    op.create_index("ix_deleted_tasks_root", "deleted_tasks", ["root_id"], unique=False)
    op.create_index(
        "ix_deleted_tasks_user_roots",
        "deleted_tasks",
        ["user_id", sa.literal_column("deleted_at DESC"), sa.literal_column("id DESC")],
        unique=False,
        postgresql_where=sa.text("root_id = id AND deleted_list_id IS NULL"),
    )
    op.create_table(
        "events",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("aggregate_type", sa.String(length=16), nullable=False),
        sa.Column("aggregate_id", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_events_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "position", name=op.f("pk_events")),
    )
    op.create_index("ix_events_created_at", "events", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_created_at", table_name="events")
    op.drop_table("events")
    op.drop_index(
        "ix_deleted_tasks_user_roots",
        table_name="deleted_tasks",
        postgresql_where=sa.text("root_id = id AND deleted_list_id IS NULL"),
    )
    op.drop_index("ix_deleted_tasks_root", table_name="deleted_tasks")
    op.drop_index(
        "ix_deleted_tasks_deleted_list",
        table_name="deleted_tasks",
        postgresql_where=sa.text("deleted_list_id IS NOT NULL"),
    )
    op.drop_index("ix_deleted_tasks_deleted_at", table_name="deleted_tasks")
    op.drop_table("deleted_tasks")
    op.drop_index("ix_deleted_lists_user_deleted", table_name="deleted_lists")
    op.drop_index("ix_deleted_lists_deleted_at", table_name="deleted_lists")
    op.drop_table("deleted_lists")
    op.drop_table("change_feeds")
