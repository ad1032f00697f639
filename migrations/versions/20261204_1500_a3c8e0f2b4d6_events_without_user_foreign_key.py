"""events without a foreign key to users

Revision ID: a3c8e0f2b4d6
Revises: f7a2c9d1e3b4
Create Date: 2026-12-04 15:00:00+00:00

The key's check ran a query after every write's statement, the largest part of what the outbox
cost a toggle. Events are only written under the person's change_feeds row, which still references
users; deleting an account deletes its events explicitly (tables.py). Dropping the constraint
takes a brief lock on events and users and reads nothing; the downgrade first deletes any event
whose person is gone, then validates the key over the whole table.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a3c8e0f2b4d6"
down_revision: str | None = "f7a2c9d1e3b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("fk_events_user_id_users"), "events", type_="foreignkey")


def downgrade() -> None:
    op.execute("DELETE FROM events WHERE NOT EXISTS (SELECT FROM users WHERE users.id = events.user_id)")
    op.create_foreign_key(op.f("fk_events_user_id_users"), "events", "users", ["user_id"], ["id"], ondelete="CASCADE")
