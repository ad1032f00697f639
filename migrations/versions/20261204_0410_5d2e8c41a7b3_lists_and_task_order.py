"""lists, and tasks in a list, under a parent, in the person's order

Revision ID: 5d2e8c41a7b3
Revises: 792542178fcf
Create Date: 2026-12-04 04:10:00+00:00

Written to run on a live database: nothing here holds a lock that blocks reads or writes of
`tasks` for longer than a catalogue update, and a run that stopped half-way can be run again. The new columns are added without a default (no
rewrite), the foreign keys and NOT NULLs are first added NOT VALID and validated afterwards
(validation blocks neither reads nor writes, and SET NOT NULL then skips its scan), every user's
Inbox and every task's list and position are backfilled in batches that each commit, and the
indexes are built CONCURRENTLY. `lock_timeout` makes a DDL statement give up rather than queue
behind a long transaction (and everything queued behind it): rerun the migration then.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from todo_api.domain.ordering import key_between

revision: str = "5d2e8c41a7b3"
down_revision: str | None = "792542178fcf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1_000  # rows locked by one backfill statement: short enough that a write to one of them waits ms
FIRST_KEY = key_between(None, None)

_INBOXES = sa.text(
    "INSERT INTO lists (user_id, name, position, is_inbox) "
    "SELECT id, 'Inbox', :position, true FROM users ON CONFLICT DO NOTHING"
).bindparams(position=FIRST_KEY)
_UNPLACED = sa.text("SELECT id, user_id FROM tasks WHERE position IS NULL AND id > :after ORDER BY id LIMIT :batch")
_LAST_KEYS = sa.text(
    "SELECT DISTINCT ON (user_id) user_id, position FROM tasks "
    "WHERE position IS NOT NULL AND parent_id IS NULL AND user_id = ANY(:users) "
    "ORDER BY user_id, position DESC"
)
_PLACE = sa.text(
    "UPDATE tasks SET list_id = lists.id, position = placed.position "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:positions AS text[])) AS placed(id, position), lists "
    "WHERE tasks.id = placed.id AND lists.user_id = tasks.user_id AND lists.is_inbox"
)


def upgrade() -> None:
    op.execute("SET lock_timeout = '3s'")
    op.create_table(
        "lists",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("color", sa.String(length=32), nullable=True),
        sa.Column("position", sa.String(length=255, collation="C"), nullable=False),
        sa.Column("is_inbox", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.CheckConstraint("char_length(name) BETWEEN 1 AND 100", name=op.f("ck_lists_name_length")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_lists_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lists")),
    )
    op.create_index("ix_lists_user_position", "lists", ["user_id", "position", "id"], unique=False)
    op.create_index("uq_lists_user_inbox", "lists", ["user_id"], unique=True, postgresql_where=sa.text("is_inbox"))
    op.create_index("uq_lists_user_name", "lists", ["user_id", sa.text("lower(name)")], unique=True)

    with op.get_context().autocommit_block():
        # Catalogue-only changes to `tasks`, each committed at once so its lock lasts milliseconds
        # (no rewrite, no scan), and each skipped when a stopped run got that far already.
        op.execute("ALTER TABLE tasks ADD COLUMN IF NOT EXISTS list_id BIGINT")
        op.execute("ALTER TABLE tasks ADD COLUMN IF NOT EXISTS parent_id BIGINT")
        op.execute('ALTER TABLE tasks ADD COLUMN IF NOT EXISTS position VARCHAR(255) COLLATE "C"')
        _add_constraint("fk_tasks_list_id_lists", "FOREIGN KEY (list_id) REFERENCES lists (id) ON DELETE CASCADE")
        _add_constraint("fk_tasks_parent_id_tasks", "FOREIGN KEY (parent_id) REFERENCES tasks (id) ON DELETE CASCADE")
        _backfill()
        # From here a task without a list is refused (so the old version's creates fail until the
        # new one runs: roll it out right after); a second pass places what was added meanwhile.
        _add_constraint("ck_tasks_list_set", "CHECK (list_id IS NOT NULL)")
        _add_constraint("ck_tasks_position_set", "CHECK (position IS NOT NULL)")
        _backfill()
        # Stored first outcomes (24 hours of them) replay tasks as they are now.
        op.execute(
            "UPDATE idempotency_keys SET task = task || jsonb_build_object("
            "'list_id', tasks.list_id, 'parent_id', tasks.parent_id, 'position', tasks.position) "
            "FROM tasks WHERE tasks.id = (idempotency_keys.task->>'id')::bigint AND NOT idempotency_keys.task ? 'list_id'"
        )
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_tasks_user_list_position "
            "ON tasks (user_id, list_id, position, id) WHERE parent_id IS NULL"
        )
        op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_tasks_list ON tasks (list_id)")
        # A list belongs to one user: without this the planner multiplies the two selectivities,
        # expects one row of a list, and sorts instead of reading the position index in order.
        op.execute("CREATE STATISTICS IF NOT EXISTS st_tasks_user_list (dependencies) ON user_id, list_id FROM tasks")
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_tasks_parent_position ON tasks (parent_id, position, id)"
        )
        # Validation takes a lock that lets reads and writes go on.
        for constraint in (
            "fk_tasks_list_id_lists",
            "fk_tasks_parent_id_tasks",
            "ck_tasks_list_set",
            "ck_tasks_position_set",
        ):
            op.execute(f"ALTER TABLE tasks VALIDATE CONSTRAINT {constraint}")
        # A valid CHECK (x IS NOT NULL) lets SET NOT NULL skip its scan of the table.
        op.execute("ALTER TABLE tasks ALTER COLUMN list_id SET NOT NULL, ALTER COLUMN position SET NOT NULL")
        op.execute("ALTER TABLE tasks DROP CONSTRAINT ck_tasks_list_set, DROP CONSTRAINT ck_tasks_position_set")


def _add_constraint(name: str, definition: str) -> None:
    """NOT VALID: only new rows are checked now; validation comes later and blocks no one."""
    exists = op.get_bind().execute(sa.text("SELECT 1 FROM pg_constraint WHERE conname = :name"), {"name": name})
    if exists.first() is None:
        op.execute(f"ALTER TABLE tasks ADD CONSTRAINT {name} {definition} NOT VALID")


def _backfill() -> None:
    """Every user gets an Inbox; every task goes into it, in creation order, one batch per commit.
    Loops until no task is left unplaced, so tasks the old version created meanwhile get one too."""
    bind = op.get_bind()
    last: dict[str, str | None] = {}  # each user's last key so far (from the table on a rerun)
    while True:
        bind.execute(_INBOXES)
        placed, after = 0, 0
        while rows := bind.execute(_UNPLACED, {"after": after, "batch": BATCH}).all():
            if new_users := sorted({row.user_id for row in rows} - last.keys()):
                last.update(dict.fromkeys(new_users))
                last.update(bind.execute(_LAST_KEYS, {"users": new_users}).tuples().all())
            positions = []
            for row in rows:
                last[row.user_id] = key_between(last.get(row.user_id), None)
                positions.append(last[row.user_id])
            bind.execute(_PLACE, {"ids": [row.id for row in rows], "positions": positions})
            placed, after = placed + len(rows), rows[-1].id
        if not placed:
            return


def downgrade() -> None:
    op.execute("DROP STATISTICS IF EXISTS st_tasks_user_list")
    op.drop_index("ix_tasks_parent_position", table_name="tasks")
    op.drop_index("ix_tasks_list", table_name="tasks")
    op.drop_index("ix_tasks_user_list_position", table_name="tasks", postgresql_where=sa.text("parent_id IS NULL"))
    op.drop_constraint("fk_tasks_parent_id_tasks", "tasks", type_="foreignkey")
    op.drop_constraint("fk_tasks_list_id_lists", "tasks", type_="foreignkey")
    op.drop_column("tasks", "position")
    op.drop_column("tasks", "parent_id")
    op.drop_column("tasks", "list_id")
    op.drop_index("uq_lists_user_name", table_name="lists")
    op.drop_index("uq_lists_user_inbox", table_name="lists", postgresql_where=sa.text("is_inbox"))
    op.drop_index("ix_lists_user_position", table_name="lists")
    op.drop_table("lists")
