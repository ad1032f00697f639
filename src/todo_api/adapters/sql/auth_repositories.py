"""Users, refresh tokens and throttling counters: Core statements, bound parameters, rows mapped by hand."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import Row, and_, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from todo_api.adapters.sql.tables import rate_limits, refresh_tokens, users
from todo_api.domain.sessions import RefreshToken
from todo_api.domain.users import User


def _user(row: Row[tuple[object, ...]]) -> User:
    return User(
        id=row.id,
        email=row.email,
        name=row.name,
        password_hash=row.password_hash,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlUserRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def get(self, user_id: str) -> User | None:
        row = (await self._db.execute(select(users).where(users.c.id == user_id))).first()
        return _user(row) if row else None

    async def get_by_email(self, email: str) -> User | None:
        row = (await self._db.execute(select(users).where(users.c.email == email))).first()
        return _user(row) if row else None

    async def add(self, user: User) -> None:
        await self._db.execute(
            insert(users).values(
                id=user.id,
                email=user.email,
                name=user.name,
                password_hash=user.password_hash,
                created_at=user.created_at,
                updated_at=user.updated_at,
            )
        )

    async def add_external(self, user: User) -> None:
        values = {"id": user.id, "name": user.name, "created_at": user.created_at, "updated_at": user.updated_at}
        if user.email is not None:
            inserted = await self._db.execute(
                insert(users).values(email=user.email, **values).on_conflict_do_nothing().returning(users.c.id)
            )
            if inserted.first() is not None:
                return
        # The id exists already (nothing to do) or the e-mail belongs to another account (keep none).
        await self._db.execute(insert(users).values(email=None, **values).on_conflict_do_nothing(index_elements=["id"]))

    async def set_password_hash(self, user_id: str, password_hash: str, at: datetime) -> None:
        await self._db.execute(
            update(users).where(users.c.id == user_id).values(password_hash=password_hash, updated_at=at)
        )


class SqlRefreshTokenRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def add(self, token: RefreshToken) -> None:
        await self._db.execute(
            insert(refresh_tokens).values(
                token_hash=token.token_hash,
                family_id=token.family_id,
                user_id=token.user_id,
                created_at=token.created_at,
                expires_at=token.expires_at,
            )
        )

    async def get_for_update(self, token_hash: str) -> RefreshToken | None:
        row = (
            await self._db.execute(
                select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash).with_for_update()
            )
        ).first()
        if row is None:
            return None
        return RefreshToken(
            token_hash=row.token_hash,
            family_id=row.family_id,
            user_id=row.user_id,
            created_at=row.created_at,
            expires_at=row.expires_at,
            rotated_at=row.rotated_at,
            revoked_at=row.revoked_at,
        )

    async def mark_rotated(self, token_hash: str, at: datetime) -> None:
        await self._db.execute(
            update(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash).values(rotated_at=at)
        )

    async def revoke_family(self, family_id: str, at: datetime) -> None:
        await self._db.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def revoke_user_families(self, user_id: str, at: datetime, *, keep_family: str | None) -> None:
        condition = and_(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
        if keep_family is not None:
            condition = and_(condition, refresh_tokens.c.family_id != keep_family)
        await self._db.execute(update(refresh_tokens).where(condition).values(revoked_at=at))


class SqlRateLimiter:
    """Fixed windows in one row per key. The upsert takes the row lock, so concurrent attempts
    from any number of workers are counted one after another and each sees the true count."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._db = connection

    async def acquire(self, key: str, *, limit: int, window_s: int) -> int | None:
        window = timedelta(seconds=window_s)
        expired = rate_limits.c.window_started_at <= func.now() - window
        row = (
            await self._db.execute(
                insert(rate_limits)
                .values(key=key, hits=1, window_started_at=func.now())
                .on_conflict_do_update(
                    index_elements=[rate_limits.c.key],
                    set_={
                        "hits": case((expired, 1), else_=rate_limits.c.hits + 1),
                        "window_started_at": case((expired, func.now()), else_=rate_limits.c.window_started_at),
                    },
                )
                .returning(rate_limits.c.hits, rate_limits.c.window_started_at + window - func.now())
            )
        ).one()
        if row[0] <= limit:
            return None
        remaining: timedelta = row[1]
        return max(1, math.ceil(remaining.total_seconds()))

    async def release(self, key: str) -> None:
        await self._db.execute(
            update(rate_limits)
            .where(rate_limits.c.key == key, rate_limits.c.hits > 0)
            .values(hits=rate_limits.c.hits - 1)
        )

    async def reset(self, key: str) -> None:
        await self._db.execute(delete(rate_limits).where(rate_limits.c.key == key))
