"""Users, refresh tokens and throttling counters: Core statements compiled once (engine),
bound parameters, rows mapped by hand."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import DateTime, Interval, String, any_, bindparam, case, delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert

from todo_api.adapters.sql.engine import Connection, ConnectionPool, Row, Statement
from todo_api.adapters.sql.tables import events, rate_limits, refresh_tokens, revoked_sessions, sessions, users
from todo_api.domain.errors import Conflict
from todo_api.domain.sessions import RefreshToken, Session
from todo_api.domain.users import User


def _user(row: Row) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        password_hash=row["password_hash"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


_USER_COLUMNS = ("id", "email", "name", "password_hash", "created_at", "updated_at")
_USER_BY_ID = Statement(select(users).where(users.c.id == bindparam("user_id")))
_USER_BY_EMAIL = Statement(select(users).where(users.c.email == bindparam("email")))
# A taken e-mail is an expected outcome: ON CONFLICT keeps the transaction usable after it.
_ADD_USER = Statement(
    insert(users)
    .values({name: bindparam(name) for name in _USER_COLUMNS})
    .on_conflict_do_nothing(index_elements=[users.c.email])
    .returning(users.c.id)
)
# An external user: with their e-mail unless another account holds it, then without one.
_ADD_EXTERNAL = Statement(
    insert(users)
    .values({name: bindparam(name) for name in _USER_COLUMNS if name != "password_hash"})
    .on_conflict_do_nothing()
    .returning(users.c.id)
)
_ADD_EXTERNAL_WITHOUT_EMAIL = Statement(
    insert(users)
    .values({name: bindparam(name) for name in ("id", "name", "created_at", "updated_at")})
    .on_conflict_do_nothing(index_elements=["id"])
)
_SET_PASSWORD_HASH = Statement(
    update(users)
    .where(users.c.id == bindparam("user_id"))
    .values(password_hash=bindparam("password_hash"), updated_at=bindparam("updated_at"))
)

_SET_NAME = Statement(
    update(users)
    .where(users.c.id == bindparam("user_id"))
    .values(name=bindparam("name"), updated_at=bindparam("updated_at"))
    .returning(users)
)
# Every table holding a person's rows references `users` with ON DELETE CASCADE (tables.py), but
# the outbox: its events go in a second statement, whose snapshot includes any write that held the
# person's feed counter while the first waited for it. After the first, no event can be written
# for the person: a new counter row would reference the deleted `users` row.
_DELETE_USER = Statement(delete(users).where(users.c.id == bindparam("user_id")).returning(users.c.id))
_DELETE_EVENTS = Statement(delete(events).where(events.c.user_id == bindparam("user_id")))


class SqlUserRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def get(self, user_id: str) -> User | None:
        row = await _USER_BY_ID.fetchrow(self._db, user_id=user_id)
        return _user(row) if row else None

    async def get_by_email(self, email: str) -> User | None:
        row = await _USER_BY_EMAIL.fetchrow(self._db, email=email)
        return _user(row) if row else None

    async def add(self, user: User) -> None:
        added = await _ADD_USER.fetchval(
            self._db,
            id=user.id,
            email=user.email,
            name=user.name,
            password_hash=user.password_hash,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )
        if added is None:
            raise Conflict("An account with this e-mail address already exists.", code="email_taken")

    async def add_external(self, user: User) -> None:
        values = {"id": user.id, "name": user.name, "created_at": user.created_at, "updated_at": user.updated_at}
        if user.email is not None and await _ADD_EXTERNAL.fetchval(self._db, email=user.email, **values) is not None:
            return
        # The id exists already (nothing to do) or the e-mail belongs to another account (keep none).
        await _ADD_EXTERNAL_WITHOUT_EMAIL.execute(self._db, **values)

    async def set_password_hash(self, user_id: str, password_hash: str, at: datetime) -> None:
        await _SET_PASSWORD_HASH.execute(self._db, user_id=user_id, password_hash=password_hash, updated_at=at)

    async def set_name(self, user_id: str, name: str | None, at: datetime) -> User | None:
        row = await _SET_NAME.fetchrow(self._db, user_id=user_id, name=name, updated_at=at)
        return _user(row) if row else None

    async def delete(self, user_id: str) -> bool:
        if await _DELETE_USER.fetchval(self._db, user_id=user_id) is None:
            return False
        await _DELETE_EVENTS.execute(self._db, user_id=user_id)
        return True


_TOKEN_COLUMNS = ("token_hash", "family_id", "user_id", "created_at", "expires_at")
_ADD_TOKEN = Statement(insert(refresh_tokens).values({name: bindparam(name) for name in _TOKEN_COLUMNS}))
_TOKEN_FOR_UPDATE = Statement(
    select(refresh_tokens).where(refresh_tokens.c.token_hash == bindparam("hash")).with_for_update()
)
_MARK_ROTATED = Statement(
    update(refresh_tokens).where(refresh_tokens.c.token_hash == bindparam("hash")).values(rotated_at=bindparam("at"))
)
_LIVE = refresh_tokens.c.revoked_at.is_(None)
_REVOKE_FAMILY = Statement(
    update(refresh_tokens)
    .where(refresh_tokens.c.family_id == bindparam("family"), _LIVE)
    .values(revoked_at=bindparam("at"))
)
_REVOKE_USER_FAMILIES = Statement(
    update(refresh_tokens)
    .where(refresh_tokens.c.user_id == bindparam("owner"), _LIVE)
    .values(revoked_at=bindparam("at"))
)
_REVOKE_USER_FAMILIES_BUT_ONE = Statement(
    update(refresh_tokens)
    .where(refresh_tokens.c.user_id == bindparam("owner"), _LIVE, refresh_tokens.c.family_id != bindparam("kept"))
    .values(revoked_at=bindparam("at"))
)

_FAMILY_LIVE = Statement(
    select(
        exists().where(
            refresh_tokens.c.family_id == bindparam("family"),
            _LIVE,
            refresh_tokens.c.expires_at > bindparam("at", type_=DateTime(timezone=True)),
        )
    )
)


class SqlRefreshTokenRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def add(self, token: RefreshToken) -> None:
        await _ADD_TOKEN.execute(
            self._db,
            token_hash=token.token_hash,
            family_id=token.family_id,
            user_id=token.user_id,
            created_at=token.created_at,
            expires_at=token.expires_at,
        )

    async def get_for_update(self, token_hash: str) -> RefreshToken | None:
        row = await _TOKEN_FOR_UPDATE.fetchrow(self._db, hash=token_hash)
        if row is None:
            return None
        return RefreshToken(
            token_hash=row["token_hash"],
            family_id=row["family_id"],
            user_id=row["user_id"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            rotated_at=row["rotated_at"],
            revoked_at=row["revoked_at"],
        )

    async def mark_rotated(self, token_hash: str, at: datetime) -> None:
        await _MARK_ROTATED.execute(self._db, hash=token_hash, at=at)

    async def revoke_family(self, family_id: str, at: datetime) -> None:
        await _REVOKE_FAMILY.execute(self._db, family=family_id, at=at)

    async def revoke_user_families(self, user_id: str, at: datetime, *, keep_family: str | None) -> None:
        if keep_family is None:
            await _REVOKE_USER_FAMILIES.execute(self._db, owner=user_id, at=at)
        else:
            await _REVOKE_USER_FAMILIES_BUT_ONE.execute(self._db, owner=user_id, kept=keep_family, at=at)

    async def family_live(self, family_id: str, at: datetime) -> bool:
        return bool(await _FAMILY_LIVE.fetchval(self._db, family=family_id, at=at))


_SESSION_COLUMNS = ("id", "user_id", "user_agent", "created_at", "last_used_at", "expires_at")
_START_SESSION = Statement(insert(sessions).values({name: bindparam(name) for name in _SESSION_COLUMNS}))
_TOUCH_SESSION = Statement(
    update(sessions)
    .where(sessions.c.id == bindparam("session_id"))
    .values(last_used_at=bindparam("at"), expires_at=bindparam("expires_at"))
)
_LIVE_SESSIONS = Statement(
    select(sessions)
    .where(sessions.c.user_id == bindparam("owner"), sessions.c.expires_at > bindparam("now", type_=DateTime(True)))
    .order_by(sessions.c.last_used_at.desc(), sessions.c.id)
)
_ended = bindparam("ended", type_=ARRAY(String()))
_at = bindparam("at", type_=DateTime(timezone=True))
# Which sessions end: one of the person's, or all of theirs but one (NULL: none kept). Their
# refresh-token families too, for the sessions started before the `sessions` table existed.
_END_ONE = Statement(
    delete(sessions)
    .where(sessions.c.user_id == bindparam("owner"), sessions.c.id == bindparam("session_id"))
    .returning(sessions.c.id)
)
_END_ALL_BUT = Statement(
    delete(sessions)
    .where(
        sessions.c.user_id == bindparam("owner"),
        sessions.c.id.is_distinct_from(bindparam("keep", type_=String())),
    )
    .returning(sessions.c.id)
)
_REVOKE_FAMILIES = Statement(
    update(refresh_tokens)
    .where(refresh_tokens.c.user_id == bindparam("owner"), refresh_tokens.c.family_id == any_(_ended), _LIVE)
    .values(revoked_at=_at)
)
_RECORD_ENDED = Statement(
    insert(revoked_sessions)
    .from_select(["session_id", "revoked_at"], select(func.unnest(_ended), _at))
    .on_conflict_do_nothing(index_elements=[revoked_sessions.c.session_id])
)
_REVOKED_SINCE = Statement(
    select(revoked_sessions.c.session_id).where(revoked_sessions.c.revoked_at > bindparam("since", DateTime(True)))
)


def _session(row: Row) -> Session:
    return Session(
        id=row["id"],
        user_id=row["user_id"],
        user_agent=row["user_agent"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        expires_at=row["expires_at"],
    )


class SqlSessionRepository:
    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def start(self, session: Session) -> None:
        await _START_SESSION.execute(
            self._db,
            id=session.id,
            user_id=session.user_id,
            user_agent=session.user_agent,
            created_at=session.created_at,
            last_used_at=session.last_used_at,
            expires_at=session.expires_at,
        )

    async def touch(self, session_id: str, at: datetime, expires_at: datetime) -> None:
        await _TOUCH_SESSION.execute(self._db, session_id=session_id, at=at, expires_at=expires_at)

    async def live(self, user_id: str, now: datetime) -> Sequence[Session]:
        return [_session(row) for row in await _LIVE_SESSIONS.fetch(self._db, owner=user_id, now=now)]

    async def end(
        self, user_id: str, at: datetime, *, session_id: str | None = None, keep: str | None = None
    ) -> Sequence[str]:
        if session_id is not None:
            rows = await _END_ONE.fetch(self._db, owner=user_id, session_id=session_id)
            families = await _FAMILY.fetch(self._db, owner=user_id, family=session_id)
        else:
            rows = await _END_ALL_BUT.fetch(self._db, owner=user_id, keep=keep)
            families = await _FAMILIES.fetch(self._db, owner=user_id, keep=keep)
        ended = sorted({row["id"] for row in rows} | {row["family_id"] for row in families})
        if not ended:
            return []
        await _REVOKE_FAMILIES.execute(self._db, owner=user_id, ended=ended, at=at)
        await _RECORD_ENDED.execute(self._db, ended=ended, at=at)
        return ended


# The live families of a person but one: the sessions that predate the `sessions` table.
_FAMILIES = Statement(
    select(refresh_tokens.c.family_id)
    .distinct()
    .where(
        refresh_tokens.c.user_id == bindparam("owner"),
        _LIVE,
        refresh_tokens.c.family_id.is_distinct_from(bindparam("keep", type_=String())),
    )
)

_FAMILY = Statement(
    select(refresh_tokens.c.family_id)
    .distinct()
    .where(refresh_tokens.c.user_id == bindparam("owner"), _LIVE, refresh_tokens.c.family_id == bindparam("family"))
)


class SqlRevokedSessions:
    """The `RevokedSessions` port: one short read on its own connection, outside any request."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    async def revoked_since(self, since: datetime) -> Sequence[str]:
        async with Connection(self._pool, read_only=True) as connection:
            return [row["session_id"] for row in await _REVOKED_SINCE.fetch(connection, since=since)]


_WINDOW = bindparam("window", type_=Interval)
_EXPIRED = rate_limits.c.window_started_at <= func.now() - _WINDOW
_ACQUIRE = Statement(
    insert(rate_limits)
    .values(key=bindparam("throttle_key"), hits=1, window_started_at=func.now())
    .on_conflict_do_update(
        index_elements=[rate_limits.c.key],
        set_={
            "hits": case((_EXPIRED, 1), else_=rate_limits.c.hits + 1),
            "window_started_at": case((_EXPIRED, func.now()), else_=rate_limits.c.window_started_at),
        },
    )
    .returning(rate_limits.c.hits, (rate_limits.c.window_started_at + _WINDOW - func.now()).label("remaining"))
)
_RELEASE = Statement(
    update(rate_limits)
    .where(rate_limits.c.key == bindparam("throttle_key"), rate_limits.c.hits > 0)
    .values(hits=rate_limits.c.hits - 1)
)
_RESET = Statement(delete(rate_limits).where(rate_limits.c.key == bindparam("throttle_key")))


class SqlRateLimiter:
    """Fixed windows in one row per key. The upsert takes the row lock, so concurrent attempts
    from any number of workers are counted one after another and each sees the true count."""

    def __init__(self, connection: Connection) -> None:
        self._db = connection

    async def acquire(self, key: str, *, limit: int, window_s: int) -> int | None:
        row = await _ACQUIRE.fetchrow(self._db, throttle_key=key, window=timedelta(seconds=window_s))
        assert row is not None  # noqa: S101 - an upsert with RETURNING always returns its row
        if row["hits"] <= limit:
            return None
        remaining: timedelta = row["remaining"]
        return max(1, math.ceil(remaining.total_seconds()))

    async def release(self, key: str) -> None:
        await _RELEASE.execute(self._db, throttle_key=key)

    async def reset(self, key: str) -> None:
        await _RESET.execute(self._db, throttle_key=key)
