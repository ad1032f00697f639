"""/api/auth: sign up, log in (JSON or the OAuth2 form for Swagger's Authorize), refresh, log out, me.

No `from __future__ import annotations` here: routes close over the registry and a local alias
(`CurrentPrincipal`), which FastAPI can only resolve from annotations evaluated at definition.
"""

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Cookie, Depends, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from todo_api.adapters.http.deps import ClientAddress, principal_of
from todo_api.adapters.http.problems import problem_responses
from todo_api.adapters.http.schemas import (
    ChangePasswordRequest,
    LogInRequest,
    RefreshRequest,
    SessionOut,
    SignUpRequest,
    TokenOut,
    UserOut,
)
from todo_api.domain.errors import AuthenticationFailed
from todo_api.domain.users import Principal
from todo_api.use_cases.auth import AuthResult, ChangePasswordInput, LogInInput, SignUpInput
from todo_api.use_cases.registry import UseCases

COOKIE = "refresh_token"
COOKIE_PATH = "/api/auth"
RefreshCookieValue = Annotated[str | None, Cookie(alias=COOKIE, include_in_schema=False)]


@dataclass(frozen=True, slots=True)
class RefreshCookie:
    """The refresh token as an httpOnly cookie, so an SPA never keeps it in readable storage."""

    secure: bool
    samesite: Literal["lax", "strict", "none"]

    def set(self, response: Response, result: AuthResult) -> None:
        response.set_cookie(
            COOKIE,
            result.session.refresh_token,
            expires=result.session.refresh_expires_at,
            path=COOKIE_PATH,
            secure=self.secure or self.samesite == "none",
            httponly=True,
            samesite=self.samesite,
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            COOKIE,
            path=COOKIE_PATH,
            secure=self.secure or self.samesite == "none",
            httponly=True,
            samesite=self.samesite,
        )


def _session_out(result: AuthResult) -> SessionOut:
    return SessionOut(
        user=UserOut.of(result.user),
        access_token=result.session.access_token,
        expires_in=result.session.expires_in,
        refresh_token=result.session.refresh_token,
    )


def build_router(use_cases: UseCases, cookie: RefreshCookie) -> APIRouter:
    router = APIRouter(prefix="/api/auth", tags=["auth"])
    CurrentPrincipal = Annotated[Principal, Depends(principal_of(use_cases.authenticate))]  # noqa: N806

    @router.post(
        "/signup",
        status_code=status.HTTP_201_CREATED,
        operation_id="signUp",
        summary="Create an account and start a session",
        description="409 `email_taken` when the address has an account (see docs/security.md for why).",
        responses=problem_responses(409, 422, 429),
    )
    async def sign_up(body: SignUpRequest, response: Response, address: ClientAddress) -> SessionOut:
        result = await use_cases.sign_up.execute(SignUpInput(body.email, body.password, body.name, address))
        cookie.set(response, result)
        return _session_out(result)

    @router.post(
        "/login",
        operation_id="logIn",
        summary="Start a session with e-mail and password",
        responses=problem_responses(401, 422, 429),
    )
    async def log_in(body: LogInRequest, response: Response, address: ClientAddress) -> SessionOut:
        result = await use_cases.log_in.execute(LogInInput(body.email, body.password, address))
        cookie.set(response, result)
        return _session_out(result)

    @router.post(
        "/token",
        operation_id="issueToken",
        summary="OAuth2 password grant (form), for Swagger UI's Authorize button",
        responses=problem_responses(401, 422, 429),
    )
    async def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], address: ClientAddress) -> TokenOut:
        result = await use_cases.log_in.execute(LogInInput(form.username, form.password, address))
        return TokenOut(access_token=result.session.access_token, expires_in=result.session.expires_in)

    @router.post(
        "/refresh",
        operation_id="refreshSession",
        summary="Rotate the refresh token and get a new access token",
        description="Send the refresh token in the body or let the browser send the cookie. Each token "
        "works once; presenting a spent one revokes the whole session (`refresh_token_reused`).",
        responses=problem_responses(401, 422),
    )
    async def refresh(
        response: Response,
        refresh_cookie: RefreshCookieValue = None,
        body: RefreshRequest | None = None,
    ) -> SessionOut:
        presented = (body.refresh_token if body else None) or refresh_cookie
        if not presented:
            raise AuthenticationFailed("Send a refresh token in the body or the cookie.", code="missing_refresh_token")
        result = await use_cases.refresh_session.execute(presented)
        cookie.set(response, result)
        return _session_out(result)

    @router.post(
        "/logout",
        status_code=status.HTTP_204_NO_CONTENT,
        operation_id="logOut",
        summary="End the session: its refresh tokens stop working at once",
        responses=problem_responses(422),
    )
    async def log_out(
        response: Response,
        refresh_cookie: RefreshCookieValue = None,
        body: RefreshRequest | None = None,
    ) -> None:
        presented = (body.refresh_token if body else None) or refresh_cookie
        await use_cases.log_out.execute(refresh_token=presented)
        cookie.clear(response)

    @router.get("/me", operation_id="getCurrentUser", summary="The signed-in user", responses=problem_responses(401))
    async def me(principal: CurrentPrincipal) -> UserOut:
        return UserOut.of(await use_cases.get_current_user.execute(principal))

    @router.post(
        "/password",
        status_code=status.HTTP_204_NO_CONTENT,
        operation_id="changePassword",
        summary="Change the password; every other session is revoked",
        responses=problem_responses(401, 403, 409, 422, 429),
    )
    async def change_password(body: ChangePasswordRequest, principal: CurrentPrincipal) -> None:
        await use_cases.change_password.execute(
            ChangePasswordInput(principal, body.current_password, body.new_password)
        )

    return router
