"""The basement: the only package that imports asyncpg.

Repositories build `Statement`s from Core (and `CopyIn`s from tables) and run them on a
`Connection`; the composition root builds a `ConnectionPool` from `PoolOptions`. A driver failure
leaves every call here as a domain error (errors.py), so nothing above this package sees the
driver. A feature never needs to touch this package: a new column is a table definition, a
migration, a repository mapping and a test.
"""

from todo_api.adapters.sql.engine.connection import Connection
from todo_api.adapters.sql.engine.copy import CopyIn
from todo_api.adapters.sql.engine.listener import ChannelListener, ListenerOptions
from todo_api.adapters.sql.engine.pool import ConnectionPool, PoolOptions, PoolTimeout
from todo_api.adapters.sql.engine.statement import Row, Statement
from todo_api.adapters.sql.engine.target import DatabaseTarget, database_target

__all__ = [
    "ChannelListener",
    "Connection",
    "ConnectionPool",
    "CopyIn",
    "DatabaseTarget",
    "ListenerOptions",
    "PoolOptions",
    "PoolTimeout",
    "Row",
    "Statement",
    "database_target",
]
