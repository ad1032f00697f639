"""The refresh token as an httpOnly cookie scoped to /api/auth, so an SPA never keeps it in readable storage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import Response

from todo_api.use_cases.auth import AuthResult

COOKIE = "refresh_token"
COOKIE_PATH = "/api/auth"


@dataclass(frozen=True, slots=True)
class RefreshCookie:
    secure: bool
    samesite: Literal["lax", "strict", "none"]

    def set(self, response: Response, result: AuthResult) -> None:
        response.set_cookie(
            COOKIE,
            result.session.refresh_token,
            expires=result.session.refresh_expires_at,
            path=COOKIE_PATH,
            secure=self._secure,
            httponly=True,
            samesite=self.samesite,
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path=COOKIE_PATH, secure=self._secure, httponly=True, samesite=self.samesite)

    @property
    def _secure(self) -> bool:
        """Browsers drop a `SameSite=None` cookie that is not `Secure`."""
        return self.secure or self.samesite == "none"
