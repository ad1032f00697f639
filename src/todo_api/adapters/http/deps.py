"""What a handler acts with, as one dependency: the use cases and HTTP services the app was built
with, the client's address and, on protected routes, the caller (or the owner of the task path).

Every handler takes exactly one of `Anonymous`, `Authenticated` or `TaskOwner`. Each dependency a
route declares costs FastAPI a solve on every request, cached or not (about 65 Python calls in
FastAPI 0.165; docs/performance.md measured one level at 9% of a hot request), so the services are
not a dependency of their own: each context reads them from the app's state (set by
`create_http_app`) and the two security schemes read the bearer token themselves. All are
`async def`: FastAPI runs a plain `def` dependency in a thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.openapi.models import OAuthFlowPassword, OAuthFlows
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param

from todo_api.adapters.http.cursors import CursorCodec
from todo_api.adapters.http.refresh_cookie import RefreshCookie
from todo_api.domain.errors import Forbidden
from todo_api.domain.users import Principal
from todo_api.use_cases.registry import UseCases

TOKEN_URL, SECURITY_SCHEME = "/api/auth/token", "OAuth2PasswordBearer"
MAX_USER_ID_CHARS = 64
UserIdPath = Annotated[
    str,
    Path(
        max_length=MAX_USER_ID_CHARS,
        # No `examples`: Schemathesis' examples phase then fills the route's headers with values the
        # document forbids (If-None-Match: 0) and reports their refusal as a failure.
        description="`me` (the bearer of the token), or your own user id; any other id is a 403 `not_your_tasks`.",
    ),
]


@dataclass(frozen=True, slots=True)
class HttpServices:
    """What the handlers need besides the request, built once per app."""

    use_cases: UseCases
    cursors: CursorCodec
    refresh_cookie: RefreshCookie
    metrics_token: str | None


def services_of(request: Request) -> HttpServices:
    services: HttpServices = request.app.state.services
    return services


def client_address(request: Request) -> str:
    """The peer, or the client behind a trusted proxy: the middleware has already resolved it."""
    return request.client.host if request.client else ""


def bearer_token(request: Request) -> str | None:
    """The token of `Authorization: Bearer <token>`, as FastAPI's OAuth2PasswordBearer reads it."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    return token if scheme.lower() == "bearer" else None


@dataclass(frozen=True, slots=True)
class Context:
    """A request's way into the app: the use cases, the HTTP services, the client's address."""

    services: HttpServices
    client_address: str

    @property
    def use_cases(self) -> UseCases:
        return self.services.use_cases


@dataclass(frozen=True, slots=True)
class CallerContext(Context):
    principal: Principal


@dataclass(frozen=True, slots=True)
class OwnerContext(Context):
    user_id: str
    """The caller's id, which the path named (or `me`): the owner of the tasks it reaches."""


async def _anonymous(request: Request) -> Context:
    return Context(services_of(request), client_address(request))


class _BearerScheme(SecurityBase):
    """In OpenAPI, the OAuth2 password flow against /api/auth/token (Swagger UI's Authorize button).

    A missing or bad token is the `Authenticate` use case's 401, rendered in the one envelope."""

    def __init__(self) -> None:
        self.model = OAuth2Model(flows=OAuthFlows(password=OAuthFlowPassword(tokenUrl=TOKEN_URL, scopes={})))
        self.scheme_name = SECURITY_SCHEME


class _Caller(_BearerScheme):
    async def __call__(self, request: Request) -> CallerContext:
        services = services_of(request)
        principal = await services.use_cases.authenticate.execute(bearer_token(request))
        return CallerContext(services, client_address(request), principal)


class _OwnerOfPath(_BearerScheme):
    """The caller, who must be the path's `{user_id}` (or `me`): 401 or 403 before any task is
    looked at. The scheme does the check itself, so a task route solves one dependency in all."""

    async def __call__(self, request: Request, user_id: UserIdPath) -> OwnerContext:
        services = services_of(request)
        principal = await services.use_cases.authenticate.execute(bearer_token(request))
        if user_id not in ("me", principal.user_id):
            raise Forbidden("You can only reach your own tasks.", code="not_your_tasks")
        return OwnerContext(services, client_address(request), principal.user_id)


Anonymous = Annotated[Context, Depends(_anonymous)]
"""Public routes."""
Authenticated = Annotated[CallerContext, Depends(_Caller())]
"""Routes for the bearer of a valid token: 401 otherwise."""
TaskOwner = Annotated[OwnerContext, Depends(_OwnerOfPath())]
"""Routes under `/api/{user_id}/tasks`: 401 without a valid token, 403 for another user's path."""
