"""/api/auth: sign up, log in (JSON or the OAuth2 form for Swagger's Authorize button), refresh, log out, me."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Form, Request, Response, status

from todo_api.adapters.http.deps import Anonymous, Authenticated
from todo_api.adapters.http.problems import problem_responses
from todo_api.adapters.http.refresh_cookie import COOKIE
from todo_api.adapters.http.schemas import (
    ChangePasswordRequest,
    LogInRequest,
    RefreshRequest,
    SessionOut,
    SignUpRequest,
    TokenForm,
    TokenOut,
    UserOut,
)
from todo_api.domain.errors import AuthenticationFailed
from todo_api.use_cases.auth import AuthResult, ChangePasswordInput, LogInInput, SignUpInput

router = APIRouter(prefix="/api/auth", tags=["auth"])

RefreshCookieValue = Annotated[str | None, Cookie(alias=COOKIE, include_in_schema=False)]

# RFC 6749 5.1: a response carrying tokens must not be stored by any cache (Pragma for HTTP/1.0 ones).
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_NO_STORE_HEADERS: dict[str, Any] = {
    name: {"description": "Tokens are never cached (RFC 6749 5.1).", "required": True, "schema": {"const": value}}
    for name, value in _NO_STORE.items()
}


def _token_responses(success: int, *errors: int) -> dict[int | str, dict[str, Any]]:
    return {success: {"headers": _NO_STORE_HEADERS}, **problem_responses(*errors)}


def _session_out(result: AuthResult, response: Response) -> SessionOut:
    response.headers.update(_NO_STORE)
    return SessionOut(
        user=UserOut.of(result.user),
        access_token=result.session.access_token,
        expires_in=result.session.expires_in,
        refresh_token=result.session.refresh_token,
    )


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    operation_id="signUp",
    summary="Create an account and start a session",
    description="409 `email_taken` when the address has an account (see docs/security.md for why).",
    responses=_token_responses(201, 409, 422, 429),
)
async def sign_up(
    body: SignUpRequest,
    request: Request,
    response: Response,
    ctx: Anonymous,
) -> SessionOut:
    result = await ctx.use_cases.sign_up.execute(
        SignUpInput(body.email, body.password, body.name, ctx.client_address, request.headers.get("user-agent"))
    )
    ctx.services.refresh_cookie.set(response, result)
    return _session_out(result, response)


@router.post(
    "/login",
    operation_id="logIn",
    summary="Start a session with e-mail and password",
    responses=_token_responses(200, 401, 422, 429),
)
async def log_in(
    body: LogInRequest,
    request: Request,
    response: Response,
    ctx: Anonymous,
) -> SessionOut:
    result = await ctx.use_cases.log_in.execute(
        LogInInput(body.email, body.password, ctx.client_address, request.headers.get("user-agent"))
    )
    ctx.services.refresh_cookie.set(response, result)
    return _session_out(result, response)


@router.post(
    "/token",
    operation_id="issueToken",
    summary="OAuth2 password grant (form), for Swagger UI's Authorize button",
    responses=_token_responses(200, 401, 422, 429),
)
async def issue_token(
    form: Annotated[TokenForm, Form()],
    request: Request,
    response: Response,
    ctx: Anonymous,
) -> TokenOut:
    result = await ctx.use_cases.log_in.execute(
        LogInInput(form.username, form.password, ctx.client_address, request.headers.get("user-agent"))
    )
    response.headers.update(_NO_STORE)
    return TokenOut(access_token=result.session.access_token, expires_in=result.session.expires_in)


@router.post(
    "/refresh",
    operation_id="refreshSession",
    summary="Rotate the refresh token and get a new access token",
    description="Send the refresh token in the body or let the browser send the cookie. Each token "
    "works once; presenting a spent one revokes the whole session (`refresh_token_reused`).",
    responses=_token_responses(200, 401, 422),
)
async def refresh(
    response: Response,
    ctx: Anonymous,
    refresh_cookie: RefreshCookieValue = None,
    body: RefreshRequest | None = None,
) -> SessionOut:
    presented = (body.refresh_token if body else None) or refresh_cookie
    if not presented:
        raise AuthenticationFailed("Send a refresh token in the body or the cookie.", code="missing_refresh_token")
    result = await ctx.use_cases.refresh_session.execute(presented)
    ctx.services.refresh_cookie.set(response, result)
    return _session_out(result, response)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    operation_id="logOut",
    summary="End the session: its refresh tokens stop at once, its access tokens within seconds",
    responses=problem_responses(422),
)
async def log_out(
    response: Response,
    ctx: Anonymous,
    refresh_cookie: RefreshCookieValue = None,
    body: RefreshRequest | None = None,
) -> None:
    presented = (body.refresh_token if body else None) or refresh_cookie
    await ctx.use_cases.log_out.execute(refresh_token=presented)
    ctx.services.refresh_cookie.clear(response)


@router.get("/me", operation_id="getCurrentUser", summary="The signed-in user", responses=problem_responses(401))
async def me(caller: Authenticated) -> UserOut:
    return UserOut.of(await caller.use_cases.get_current_user.execute(caller.principal))


@router.post(
    "/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    operation_id="changePassword",
    summary="Change the password; every other session is revoked",
    responses=problem_responses(401, 403, 409, 422, 429),
)
async def change_password(body: ChangePasswordRequest, caller: Authenticated) -> None:
    await caller.use_cases.change_password.execute(
        ChangePasswordInput(caller.principal, body.current_password, body.new_password)
    )
