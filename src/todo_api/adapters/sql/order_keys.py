"""What tasks and lists share as rows in a person's order: a rebalance writes fresh keys to many
rows in one statement (each row a new version)."""

from __future__ import annotations

from sqlalchemy import BigInteger, ColumnElement, Table, Text, bindparam, cast, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from todo_api.adapters.sql.engine import Statement


def set_positions(table: Table, *returning: Table | ColumnElement[object]) -> Statement:
    """`UPDATE table ... FROM unnest(:ids, :positions)` for the rows of `:owner`, returning what
    the caller records in the change feed."""
    placed = select(
        func.unnest(bindparam("ids", type_=ARRAY(BigInteger))).label("id"),
        func.unnest(bindparam("positions", type_=ARRAY(Text))).label("position"),
    ).subquery("placed")
    return Statement(
        update(table)
        .where(table.c.id == placed.c.id, table.c.user_id == bindparam("owner"))
        .values(
            position=cast(placed.c.position, table.c.position.type),
            updated_at=bindparam("updated_at"),
            version=table.c.version + 1,
        )
        .returning(*returning)
    )
