"""Annotated dependencies, so route signatures read like prose: `user: CurrentPrincipal`.

All are `async def`: FastAPI runs a plain `def` dependency in a thread pool on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from todo_api.domain.users import Principal
from todo_api.use_cases.registry import UseCases

# auto_error=False: a missing token is the use case's 401, rendered in the one envelope.
_bearer = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


async def use_cases(request: Request) -> UseCases:
    registry: UseCases = request.app.state.use_cases
    return registry


UseCasesDep = Annotated[UseCases, Depends(use_cases)]


async def _principal(request: Request, token: Annotated[str | None, Depends(_bearer)]) -> Principal:
    registry: UseCases = request.app.state.use_cases
    return await registry.authenticate.execute(token)


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


async def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


ClientAddress = Annotated[str, Depends(client_address)]
