"""lists, and tasks in a list, under a parent, in the person's order

Revision ID: 5d2e8c41a7b3
Revises: 792542178fcf
Create Date: 2026-12-04 04:10:00+00:00

Written to run on a live database: no statement makes a read or write of `tasks` wait for a lock
for more than a fraction of a second, and a run that stopped half-way can be run again.

- The changes that lock reads or writes out (the new columns, the NOT VALID constraints, SET NOT
  NULL) are catalogue-only, and `_briefly_locked` makes each one give up after LOCK_WAIT and try
  again, so that traffic never queues behind one for longer.
- The foreign keys and NOT NULLs are added NOT VALID and validated apart (validation blocks
  neither reads nor writes, and SET NOT NULL then skips its scan).
- Every user's Inbox and every task's list and position are backfilled BATCH rows per commit.
- The indexes are built CONCURRENTLY.
"""

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from todo_api.domain.ordering import key_between

revision: str = "5d2e8c41a7b3"
down_revision: str | None = "792542178fcf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Rows one backfill statement keeps locked until it commits. On a 2-core machine with both cores
# busy elsewhere, a batch of 1,000 took up to 1.05 s and 1.18 s (two runs), one of 500 up to 0.38 s
# and 0.77 s (0.05 s typically); the whole backfill took 120 s instead of 116 s.
BATCH = 500
# How long a catalogue change may keep reads and writes of tasks queued behind its lock request.
LOCK_WAIT = "200ms"
LOCK_RETRIES_FOR_S = 300.0
LOCK_NOT_AVAILABLE = "55P03"
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
# While the deploy rolls out, replicas of the release before lists still create tasks with no list
# and no position. This trigger places such a task as this release would: at the end of its
# owner's Inbox (made if the account is newer than the backfill). The new code always sends both,
# and the WHEN clause keeps the trigger from even running then. Drop it once no replica of that
# release can be left (the migration after the next release's).
_KEY_AFTER = """
CREATE OR REPLACE FUNCTION todo_key_after(last text) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
-- key_between(last, None) of todo_api/domain/ordering.py (the next integer, the fraction dropped)
-- for every key whose integer part can still grow; tests compare the two over thousands of keys.
DECLARE
  digits CONSTANT text := '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  head text;
  body text;
  len int;
  d int;
BEGIN
  IF last IS NULL THEN
    RETURN 'a0';
  END IF;
  head := substr(last, 1, 1);
  len := CASE WHEN ascii(head) BETWEEN 97 AND 122 THEN ascii(head) - 95 ELSE 92 - ascii(head) END;
  body := substr(last, 2, len - 1);
  FOR i IN REVERSE length(body)..1 LOOP
    d := strpos(digits, substr(body, i, 1));
    IF d < 62 THEN
      RETURN head || overlay(body PLACING substr(digits, d + 1, 1) FROM i FOR 1);
    END IF;
    body := overlay(body PLACING '0' FROM i FOR 1);
  END LOOP;
  IF head = 'Z' THEN
    RETURN 'a0';
  ELSIF head = 'z' THEN
    RAISE EXCEPTION 'no order key after %', last;
  END IF;
  head := chr(ascii(head) + 1);
  IF ascii(head) > 97 THEN
    RETURN head || body || '0';
  END IF;
  RETURN head || left(body, -1);
END
$$
"""
_PLACE_UNPLACED = """
CREATE OR REPLACE FUNCTION todo_place_unplaced_task() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.list_id IS NULL THEN
    SELECT id INTO NEW.list_id FROM lists WHERE user_id = NEW.user_id AND is_inbox;
    IF NEW.list_id IS NULL THEN
      INSERT INTO lists (user_id, name, position, is_inbox) VALUES (NEW.user_id, 'Inbox', 'a0', true)
      ON CONFLICT DO NOTHING RETURNING id INTO NEW.list_id;
      IF NEW.list_id IS NULL THEN  -- made by a concurrent insert meanwhile
        SELECT id INTO NEW.list_id FROM lists WHERE user_id = NEW.user_id AND is_inbox;
      END IF;
    END IF;
  END IF;
  IF NEW.position IS NULL THEN
    NEW.position := todo_key_after((
      SELECT position FROM tasks
      WHERE user_id = NEW.user_id AND list_id = NEW.list_id AND parent_id IS NOT DISTINCT FROM NEW.parent_id
      ORDER BY position DESC, id DESC LIMIT 1
    ));
  END IF;
  RETURN NEW;
END
$$
"""
_PLACE_TRIGGER = (
    "CREATE OR REPLACE TRIGGER tasks_placed BEFORE INSERT ON tasks FOR EACH ROW "
    "WHEN (NEW.list_id IS NULL OR NEW.position IS NULL) EXECUTE FUNCTION todo_place_unplaced_task()"
)

_TASKS_CONSTRAINTS = sa.text("SELECT conname FROM pg_constraint WHERE conrelid = 'tasks'::regclass")
_INVALID_INDEX = sa.text("SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(:name) AND NOT indisvalid")


def upgrade() -> None:
    op.execute("SET lock_timeout = '3s'")
    if op.get_bind().execute(sa.text("SELECT to_regclass('lists')")).scalar() is None:
        _create_lists()
    op.execute(_KEY_AFTER)
    op.execute(_PLACE_UNPLACED)
    _briefly_locked(
        "ALTER TABLE tasks ADD COLUMN IF NOT EXISTS list_id BIGINT, ADD COLUMN IF NOT EXISTS parent_id BIGINT, "
        'ADD COLUMN IF NOT EXISTS position VARCHAR(255) COLLATE "C"',
        _PLACE_TRIGGER,
        *_missing_constraints(
            fk_tasks_list_id_lists="FOREIGN KEY (list_id) REFERENCES lists (id) ON DELETE CASCADE",
            fk_tasks_parent_id_tasks="FOREIGN KEY (parent_id) REFERENCES tasks (id) ON DELETE CASCADE",
        ),
    )
    with op.get_context().autocommit_block():
        _backfill()
    # From here a task without a list is refused; the old version's creates get one from the
    # trigger, and a second pass places anything that slipped in before it.
    _briefly_locked(
        *_missing_constraints(
            ck_tasks_list_set="CHECK (list_id IS NOT NULL)", ck_tasks_position_set="CHECK (position IS NOT NULL)"
        )
    )
    with op.get_context().autocommit_block():
        _backfill()
        # Stored first outcomes (24 hours of them) replay tasks as they are now.
        op.execute(
            "UPDATE idempotency_keys SET task = task || jsonb_build_object("
            "'list_id', tasks.list_id, 'parent_id', tasks.parent_id, 'position', tasks.position) "
            "FROM tasks WHERE tasks.id = (idempotency_keys.task->>'id')::bigint AND NOT idempotency_keys.task ? 'list_id'"
        )
        _create_index_concurrently(
            "ix_tasks_user_list_position", "tasks (user_id, list_id, position, id) WHERE parent_id IS NULL"
        )
        _create_index_concurrently("ix_tasks_list", "tasks (list_id)")
        # A list belongs to one user: without this the planner multiplies the two selectivities,
        # expects one row of a list, and sorts instead of reading the position index in order.
        op.execute("CREATE STATISTICS IF NOT EXISTS st_tasks_user_list (dependencies) ON user_id, list_id FROM tasks")
        _create_index_concurrently("ix_tasks_parent_position", "tasks (parent_id, position, id)")
        # Validation takes a lock that lets reads and writes go on.
        for constraint in (
            "fk_tasks_list_id_lists",
            "fk_tasks_parent_id_tasks",
            "ck_tasks_list_set",
            "ck_tasks_position_set",
        ):
            op.execute(f"ALTER TABLE tasks VALIDATE CONSTRAINT {constraint}")
    # A valid CHECK (x IS NOT NULL) lets SET NOT NULL skip its scan of the table.
    _briefly_locked(
        "ALTER TABLE tasks ALTER COLUMN list_id SET NOT NULL, ALTER COLUMN position SET NOT NULL",
        "ALTER TABLE tasks DROP CONSTRAINT ck_tasks_list_set, DROP CONSTRAINT ck_tasks_position_set",
    )


def _create_lists() -> None:
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


def _briefly_locked(*statements: str) -> None:
    """Run `statements` (catalogue changes to `tasks`) in a transaction of their own. A lock request
    waits in line and every later read and write waits behind it, so each attempt gives up after
    LOCK_WAIT and the next comes once that queue has drained.

    The SHARE UPDATE EXCLUSIVE lock taken first lets reads and writes go on, however long it waits:
    it is what ends an autovacuum of the table (PostgreSQL cancels one blocking a lock request after
    deadlock_timeout, 1 s: measured, that is how long traffic queued behind an ALTER TABLE waiting
    for one) and keeps the next one out, so the attempts only wait for the app's own statements.
    """
    if not statements:
        return
    context = op.get_context()
    with context.autocommit_block():
        pass  # commit what came before: nothing else is held while `tasks` is locked
    bind = op.get_bind()
    bind.execute(sa.text("SET LOCAL lock_timeout = '1min'"))
    bind.execute(sa.text("LOCK TABLE tasks IN SHARE UPDATE EXCLUSIVE MODE"))
    give_up_at, pause_s = time.monotonic() + LOCK_RETRIES_FOR_S, 0.1
    while True:
        try:
            with bind.begin_nested():
                bind.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'"))
                for statement in statements:
                    bind.execute(sa.text(statement))
            break
        except sa.exc.DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE or time.monotonic() > give_up_at:
                raise
        time.sleep(pause_s)
        pause_s = min(pause_s * 2, 5.0)
    with context.autocommit_block():
        pass  # commit: the locks go


def _missing_constraints(**definitions: str) -> list[str]:
    """NOT VALID: only new rows are checked now; validation comes later and blocks no one. Those a
    stopped run added already are left out."""
    present = set(op.get_bind().execute(_TASKS_CONSTRAINTS).scalars())
    return [
        f"ALTER TABLE tasks ADD CONSTRAINT {name} {definition} NOT VALID"
        for name, definition in definitions.items()
        if name not in present
    ]


def _create_index_concurrently(name: str, definition: str) -> None:
    """A build that failed (a lock timeout, a stopped run) leaves an invalid index behind, which
    IF NOT EXISTS would then keep: drop it and build again."""
    if op.get_bind().execute(_INVALID_INDEX, {"name": name}).first() is not None:
        op.execute(f"DROP INDEX CONCURRENTLY {name}")
    op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {definition}")


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
                last.update((row.user_id, row.position) for row in bind.execute(_LAST_KEYS, {"users": new_users}))
            positions = []
            for row in rows:
                last[row.user_id] = key_between(last.get(row.user_id), None)
                positions.append(last[row.user_id])
            bind.execute(_PLACE, {"ids": [row.id for row in rows], "positions": positions})
            placed, after = placed + len(rows), rows[-1].id
        if not placed:
            return


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS tasks_placed ON tasks")
    op.execute("DROP FUNCTION IF EXISTS todo_place_unplaced_task()")
    op.execute("DROP FUNCTION IF EXISTS todo_key_after(text)")
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
