"""events.payload as json instead of JSONB

Revision ID: b4d9f1a3c5e7
Revises: a3c8e0f2b4d6
Create Date: 2026-12-05 10:00:00+00:00

The outbox's payload is written once and read whole, never queried inside: JSONB's binary form
(parsed, keys sorted, offsets built on every insert, and rebuilt to add the position) was work no
reader used, and a third of what the outbox cost PostgreSQL (docs/performance.md). Debezium
reads `json` as it reads JSONB (a `io.debezium.data.Json` string).

Changing the type rewrites `events` under an exclusive lock, and every write appends to it: on a
large outbox (up to the retention window of events), expect writes to wait for the rewrite, or run
it in a quiet moment. Processes of the release before cannot read `json` (they have no codec for
it), and processes of this one cache the column's type per connection: stop the API and workers
for the migration, or restart them all right after it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b4d9f1a3c5e7"
down_revision: str | None = "a3c8e0f2b4d6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column(
        "events", "payload", type_=sa.JSON(), existing_type=postgresql.JSONB(), postgresql_using="payload::json"
    )


def downgrade() -> None:
    op.alter_column(
        "events", "payload", type_=postgresql.JSONB(), existing_type=sa.JSON(), postgresql_using="payload::jsonb"
    )
