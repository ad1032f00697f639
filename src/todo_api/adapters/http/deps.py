"""Dependencies shared by the routers: the bearer token, the caller behind it, the client's address.

All are `async def`: FastAPI runs a plain `def` dependency in a thread pool on every request.
Routers are built with the use-case registry and close over it, so no route pays a dependency
(one more level for FastAPI to solve) to look the registry up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import OAuth2PasswordBearer

from todo_api.domain.errors import Forbidden
from todo_api.domain.users import Principal
from todo_api.use_cases.auth import Authenticate

# auto_error=False: a missing token is the use case's 401, rendered in the one envelope.
_TOKEN_URL, _SCHEME = "/api/auth/token", "OAuth2PasswordBearer"
_bearer = OAuth2PasswordBearer(tokenUrl=_TOKEN_URL, scheme_name=_SCHEME, auto_error=False)

BearerToken = Annotated[str | None, Depends(_bearer)]


class OwnerOfPath(OAuth2PasswordBearer):
    """The caller, who must be the path's `{user_id}` (or `me`): 401 or 403 before any task is
    looked at. The security scheme itself does the check, so a task route solves one dependency
    instead of two (each level costs FastAPI a solve on every request); OpenAPI sees the same
    scheme as every other authenticated route."""

    def __init__(self, authenticate: Authenticate) -> None:
        super().__init__(tokenUrl=_TOKEN_URL, scheme_name=_SCHEME, auto_error=False)
        self._authenticate = authenticate

    async def __call__(  # type: ignore[override]
        self, request: Request, user_id: Annotated[str, Path(max_length=64)]
    ) -> str:
        principal = await self._authenticate.execute(await super().__call__(request))
        if user_id not in ("me", principal.user_id):
            raise Forbidden("You can only reach your own tasks.", code="not_your_tasks")
        return principal.user_id


def principal_of(authenticate: Authenticate) -> Callable[[str | None], Awaitable[Principal]]:
    """A dependency yielding the caller: 401 in the envelope without a valid bearer token."""

    async def principal(token: BearerToken) -> Principal:
        return await authenticate.execute(token)

    return principal


async def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


ClientAddress = Annotated[str, Depends(client_address)]
