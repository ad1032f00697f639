"""Dependencies shared by the routers: the bearer token, the caller behind it, the client's address.

All are `async def`: FastAPI runs a plain `def` dependency in a thread pool on every request.
Routers are built with the use-case registry and close over it, so no route pays a dependency
(one more level for FastAPI to solve) to look the registry up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from todo_api.domain.users import Principal
from todo_api.use_cases.auth import Authenticate

# auto_error=False: a missing token is the use case's 401, rendered in the one envelope.
TOKEN_URL, SECURITY_SCHEME = "/api/auth/token", "OAuth2PasswordBearer"
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, scheme_name=SECURITY_SCHEME, auto_error=False)

BearerToken = Annotated[str | None, Depends(_bearer)]


def principal_of(authenticate: Authenticate) -> Callable[[str | None], Awaitable[Principal]]:
    """A dependency yielding the caller: 401 in the envelope without a valid bearer token."""

    async def principal(token: BearerToken) -> Principal:
        return await authenticate.execute(token)

    return principal


async def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


ClientAddress = Annotated[str, Depends(client_address)]
