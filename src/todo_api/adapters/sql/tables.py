"""Core Table objects: the schema as code, and alembic's `target_metadata`."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    # Normalised (lower-case) by the domain; NULL only for an external user whose e-mail is taken.
    Column("email", Text, nullable=True, unique=True),
    Column("name", Text, nullable=True),
    Column("password_hash", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(32), nullable=False),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("rotated_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Index(None, "family_id"),
    Index(None, "user_id"),
    Index(None, "expires_at"),  # retention, oldest first
)

# One row per login (a refresh-token family): what `GET /api/auth/sessions` lists. Ending a session
# deletes its row and records its id in `revoked_sessions`.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("user_agent", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index(None, "user_id"),
    Index(None, "expires_at"),  # retention, oldest first
)

# Sessions ended (logout, reuse, password change, account deletion): every replica reads the recent
# ones into memory every SESSION_REVOCATION_REFRESH_S, so a request checks its token's `sid` without
# a query. No foreign key: a deleted account's sessions must stay refused too.
revoked_sessions = Table(
    "revoked_sessions",
    metadata,
    Column("session_id", String(32), primary_key=True),
    Column("revoked_at", DateTime(timezone=True), nullable=False),
    Index(None, "revoked_at"),
)

# Fixed-window counters shared by every worker and replica (throttling must not live in memory).
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", Text, primary_key=True),
    Column("window_started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("hits", Integer, nullable=False, server_default=text("0")),
)

# Order keys compare byte by byte: under a linguistic collation `Zz` sorts after `a1` (ordering.py).
ORDER_KEY = String(255, collation="C")

# A person's lists; exactly one Inbox each (a partial unique index), names unique case-insensitively.
lists = Table(
    "lists",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("color", String(32), nullable=True),
    Column("position", ORDER_KEY, nullable=False),
    Column("is_inbox", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("version", Integer, nullable=False, server_default=text("1")),
    CheckConstraint("char_length(name) BETWEEN 1 AND 100", name="name_length"),
    Index("ix_lists_user_position", "user_id", "position", "id"),
    Index("uq_lists_user_inbox", "user_id", unique=True, postgresql_where=text("is_inbox")),
)
Index("uq_lists_user_name", lists.c.user_id, func.lower(lists.c.name), unique=True)

tasks = Table(
    "tasks",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # Deleting a list (with ?cascade=true) or a parent deletes what it holds, in the same statement.
    Column("list_id", BigInteger, ForeignKey("lists.id", ondelete="CASCADE"), nullable=False),
    Column("parent_id", BigInteger, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=True),
    Column("position", ORDER_KEY, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("completed", Boolean, nullable=False, server_default=text("false")),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("priority", SmallInteger, nullable=False, server_default=text("0")),
    Column("tags", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("due_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("version", Integer, nullable=False, server_default=text("1")),
    # Recurring tasks (domain/recurrence.py): the rule, all four parts or none; reminders as the
    # task states them (their schedule is the `reminders` table); the series' first task, and the
    # occurrence whose completion created this one.
    Column("recurrence_rule", Text, nullable=True),
    Column("recurrence_timezone", String(64), nullable=True),
    Column("recurrence_from", String(16), nullable=True),
    Column("recurrence_start", DateTime(timezone=True), nullable=True),
    Column("reminders", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("series_id", BigInteger, nullable=True),
    Column("previous_id", BigInteger, nullable=True),
    # The domain enforces these; the database refuses anything that slips past it.
    CheckConstraint("char_length(title) BETWEEN 1 AND 200", name="title_length"),
    CheckConstraint("char_length(description) <= 1000", name="description_length"),
    CheckConstraint("priority BETWEEN 0 AND 3", name="priority_range"),
    CheckConstraint("cardinality(tags) <= 20", name="tag_count"),
    CheckConstraint(
        "num_nulls(recurrence_rule, recurrence_timezone, recurrence_from, recurrence_start) IN (0, 4)",
        name="recurrence_whole",
    ),
    # One next occurrence per completed one: what makes a retried or concurrent completion safe.
    Index("uq_tasks_previous_id", "previous_id", unique=True, postgresql_where=text("previous_id IS NOT NULL")),
    # One keyset index per sort: owner, sort value, id (the tie-breaker).
    Index("ix_tasks_user_created", "user_id", "created_at", "id"),
    Index("ix_tasks_user_updated", "user_id", "updated_at", "id"),
    Index("ix_tasks_user_priority", "user_id", "priority", "id"),
    # The person's order: the top-level tasks of a list (partial: `parent_id IS NULL` is no
    # equality, so as a key column it would keep the index from giving `position` order), and the
    # subtasks of a parent. `list_id` alone serves the foreign key (deleting a list finds its tasks).
    Index(
        "ix_tasks_user_list_position",
        "user_id",
        "list_id",
        "position",
        "id",
        postgresql_where=text("parent_id IS NULL"),
    ),
    Index("ix_tasks_list", "list_id"),
    Index("ix_tasks_parent_position", "parent_id", "position", "id"),
    Index("ix_tasks_tags", "tags", postgresql_using="gin"),
    Index("ix_tasks_title_trgm", "title", postgresql_using="gin", postgresql_ops={"title": "gin_trgm_ops"}),
    Index(
        "ix_tasks_description_trgm",
        "description",
        postgresql_using="gin",
        postgresql_ops={"description": "gin_trgm_ops"},
    ),
)
# Tasks without a due date sort last either way. Sorting on a key with no NULLs (+/- infinity
# stands in for "none") keeps the keyset condition a plain row comparison, i.e. an index range.
DUE_LAST_ASC = func.coalesce(tasks.c.due_at, literal_column("'infinity'::timestamptz"))
DUE_LAST_DESC = func.coalesce(tasks.c.due_at, literal_column("'-infinity'::timestamptz"))
Index("ix_tasks_user_due", tasks.c.user_id, DUE_LAST_ASC, tasks.c.id)
Index("ix_tasks_user_due_desc", tasks.c.user_id, DUE_LAST_DESC.desc(), tasks.c.id.desc())
Index("ix_tasks_user_title", tasks.c.user_id, func.lower(tasks.c.title), tasks.c.id)

# A retried POST with the same Idempotency-Key gets the first outcome back (24 hours, per user):
# the task a create made, or the results of a bulk change.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("task", JSONB),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("bulk", JSONB),
    PrimaryKeyConstraint("user_id", "key"),
    CheckConstraint("num_nonnulls(task, bulk) = 1", name="one_outcome"),
)

# The change feed (domain/changes.py). `change_feeds` holds each person's last position: the
# write that bumps it holds its row lock until commit, so positions commit in order (no event
# with a lower position can become visible after a higher one was read).
change_feeds = Table(
    "change_feeds",
    metadata,
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("position", BigInteger, nullable=False, server_default=text("0")),
    # Retention removed every event at or below this position: a sync token below it is expired.
    Column("pruned_through", BigInteger, nullable=False, server_default=text("0")),
)

# The outbox. Column names follow Debezium's Outbox Event Router (aggregate type and id, type,
# payload), so change data capture can stream it to Kafka with configuration alone
# (docs/operations.md); `payload` is the whole CloudEvent, `data` included.
events = Table(
    "events",
    metadata,
    # No foreign key: its check is a trigger running a query after every write's statement, the
    # largest part of what the outbox cost a toggle (docs/performance.md). Events are only written
    # under the person's `change_feeds` row, which does reference `users`; deleting an account
    # deletes its events after the person (`SqlUserRepository.delete`), and retention the rest.
    Column("user_id", String(64), nullable=False),
    Column("position", BigInteger, nullable=False),
    # The CloudEvent's id: random, so unique by construction; an index on it would cost every
    # write a random page and serve no query (consumers de-duplicate by it, we never look it up).
    Column("id", UUID(as_uuid=False), nullable=False),
    Column("aggregate_type", String(16), nullable=False),
    Column("aggregate_id", String(32), nullable=False),
    Column("type", String(64), nullable=False),
    # `json`, not JSONB: written once and read whole, never queried inside, so JSONB's binary form
    # (keys sorted, offsets built on every insert) would be work no reader uses (docs/performance.md).
    Column("payload", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("user_id", "position"),
    Index("ix_events_created_at", "created_at"),
)

# Deleted tasks and lists, restorable for the retention window. Out of `tasks` and `lists`, so
# no query, count, search or index of the live rows ever meets them. A task deleted with its
# parent (or its list) names the task (or list) whose deletion took it: restoring that one
# brings it back too.
deleted_lists = Table(
    "deleted_lists",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("color", String(32), nullable=True),
    Column("position", ORDER_KEY, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
    Index("ix_deleted_lists_user_deleted", "user_id", "deleted_at", "id"),
    Index("ix_deleted_lists_deleted_at", "deleted_at"),
)

deleted_tasks = Table(
    "deleted_tasks",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("list_id", BigInteger, nullable=False),
    Column("parent_id", BigInteger, nullable=True),
    Column("position", ORDER_KEY, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("completed", Boolean, nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("priority", SmallInteger, nullable=False),
    Column("tags", ARRAY(Text), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("version", Integer, nullable=False),
    Column("recurrence_rule", Text, nullable=True),
    Column("recurrence_timezone", String(64), nullable=True),
    Column("recurrence_from", String(16), nullable=True),
    Column("recurrence_start", DateTime(timezone=True), nullable=True),
    Column("reminders", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("series_id", BigInteger, nullable=True),
    Column("previous_id", BigInteger, nullable=True),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
    # The task whose deletion took this one (itself when deleted on its own), and the list whose
    # deletion took it, if one did.
    Column("root_id", BigInteger, nullable=False),
    Column("deleted_list_id", BigInteger, nullable=True),
    # What `GET /tasks?deleted=true` pages: the tasks deleted on their own, latest first.
    Index(
        "ix_deleted_tasks_user_roots",
        "user_id",
        text("deleted_at DESC"),
        text("id DESC"),
        postgresql_where=text("root_id = id AND deleted_list_id IS NULL"),
    ),
    Index("ix_deleted_tasks_root", "root_id"),
    Index("ix_deleted_tasks_deleted_list", "deleted_list_id", postgresql_where=text("deleted_list_id IS NOT NULL")),
    Index("ix_deleted_tasks_deleted_at", "deleted_at"),
)

# Webhooks (domain/webhooks.py). Each row is also its own delivery cursor: `position` is the last
# event of its owner's feed it has dealt with (delivered, or skipped by its filter), so deliveries
# are ordered per webhook and survive restarts. A worker leases a due row (`leased_until`,
# `leased_by`) in a short transaction, sends outside any transaction and moves the cursor only
# while its lease still holds. The secret signs deliveries, so it is kept as is (HMAC needs it).
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("event_types", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("secret", Text, nullable=False),
    Column("state", String(16), nullable=False, server_default=text("'active'")),
    Column("disabled_reason", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("leased_until", DateTime(timezone=True), nullable=True),
    Column("leased_by", String(36), nullable=True),
    CheckConstraint("state IN ('active', 'disabled')", name="state"),
    Index("ix_webhooks_user_id", "user_id", "id"),
    Index("ix_webhooks_due", "next_attempt_at", postgresql_where=text("state = 'active'")),
)

# One row per delivery attempt (`GET .../webhooks/{id}/deliveries`), pruned by retention.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("webhook_id", BigInteger, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("delivered", Boolean, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_webhook_deliveries_webhook_id", "webhook_id", "id"),
    Index("ix_webhook_deliveries_at", "at"),
)

# The broker publisher's cursor per person (EVENT_PUBLISHER=dapr), leased like a webhook's.
publisher_cursors = Table(
    "publisher_cursors",
    metadata,
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("position", BigInteger, nullable=False, server_default=text("0")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("leased_until", DateTime(timezone=True), nullable=True),
    Column("leased_by", String(36), nullable=True),
)

# The reminders' schedule: one row per reminder of an open task, `fire_at` computed from the
# task's due date (or its own time). The scheduler claims due rows with SKIP LOCKED and marks them
# fired in the transaction that writes their `task.reminder_due` events; both partial indexes
# hold armed rows only, so neither the scheduler's scan nor `GET /reminders` reads fired ones.
reminders = Table(
    "reminders",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("task_id", BigInteger, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("ordinal", SmallInteger, nullable=False),
    Column("fire_at", DateTime(timezone=True), nullable=False),
    Column("fired_at", DateTime(timezone=True), nullable=True),
    Column("snoozed", Boolean, nullable=False, server_default=text("false")),
    Index("ix_reminders_task_id", "task_id"),
    Index("ix_reminders_due", "fire_at", "id", postgresql_where=text("fired_at IS NULL")),
    Index("ix_reminders_user_upcoming", "user_id", "fire_at", "id", postgresql_where=text("fired_at IS NULL")),
)

# Chat (docs/api.md#chat): a person's conversations with the assistant and their messages. Every
# row carries its owner, and every statement filters by it.
conversations = Table(
    "conversations",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("title", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_conversations_user_id", "user_id", "id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("conversation_id", BigInteger, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=True),
    # The assistant's tool calls: [{"id", "name", "arguments"}]; a tool message names the call it answers.
    Column("tool_calls", JSONB, nullable=True),
    Column("tool_call_id", Text, nullable=True),
    Column("is_error", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("role IN ('user', 'assistant', 'tool')", name="role"),
    Index("ix_messages_conversation_id", "conversation_id", "id"),
)
