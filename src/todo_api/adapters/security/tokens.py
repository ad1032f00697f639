"""Bearer tokens with python-jose: our own HS256 access tokens, and tokens from an external issuer
(Better Auth's JWT plugin, any OIDC-style issuer) verified against its JWKS.

Every decode passes an explicit algorithm allow-list and requires `exp`, `sub` and `iat`; anything
that proves nothing becomes one 401 kind, never a 500.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
from jose import jwt
from jose.exceptions import JOSEError

from todo_api.adapters.security.eddsa import register_eddsa
from todo_api.domain.errors import AuthenticationFailed, ServiceUnavailable
from todo_api.domain.users import Principal

MAX_TOKEN_BYTES = 8192
OWN_ALGORITHM = "HS256"
EXTERNAL_ALGORITHMS = ("EdDSA", "ES256", "RS256")
_REQUIRED = {"require_exp": True, "require_sub": True, "require_iat": True, "leeway": 10}
# What parsing or checking a hostile token can raise through python-jose: deeply nested JSON
# (RecursionError), `exp: Infinity` (OverflowError), odd shapes (TypeError, AttributeError ...).
_UNUSABLE = (JOSEError, ValueError, TypeError, AttributeError, KeyError, RecursionError, OverflowError)

register_eddsa()


def _invalid(message: str = "The bearer token is invalid or expired.") -> AuthenticationFailed:
    return AuthenticationFailed(message, code="invalid_token")


class JwtAccessTokens:
    """Issues and verifies our own short-lived access tokens (the `AccessTokens` port)."""

    def __init__(self, *, key: str, issuer: str, audience: str, lifetime_s: int = 900) -> None:
        self._key, self._issuer, self._audience, self._lifetime_s = key, issuer, audience, lifetime_s

    @property
    def lifetime_s(self) -> int:
        return self._lifetime_s

    @property
    def issuer(self) -> str:
        return self._issuer

    def issue(self, user_id: str, session_id: str) -> str:
        now = int(time.time())
        claims = {
            "sub": user_id,
            "sid": session_id,
            "iat": now,
            "exp": now + self._lifetime_s,
            "iss": self._issuer,
            "aud": self._audience,
            "jti": uuid.uuid4().hex,
            "type": "access",
        }
        return jwt.encode(claims, self._key, algorithm=OWN_ALGORITHM)

    def verify(self, token: str) -> tuple[Principal, float]:
        """The principal and the token's expiry (epoch seconds)."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[OWN_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options=_REQUIRED,
            )
        except _UNUSABLE as error:
            raise _invalid() from error
        if claims.get("type") != "access" or not isinstance(claims.get("sid"), str):
            raise _invalid("This is not an access token.")
        return Principal(user_id=str(claims["sub"]), session_id=claims["sid"]), float(claims["exp"])


class JwksKeys:
    """An issuer's signing keys: fetched asynchronously, cached, refetched on an unknown `kid` at
    most once per `min_refetch_s`, so forged `kid`s cannot make us hammer the issuer."""

    def __init__(self, url: str, *, ttl_s: float = 600, min_refetch_s: float = 30, timeout_s: float = 3) -> None:
        self._url, self._ttl_s, self._min_refetch_s = url, ttl_s, min_refetch_s
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> dict[str, Any] | None:
        now = time.monotonic()
        if kid not in self._keys or now - self._fetched_at > self._ttl_s:
            async with self._lock:
                stale = time.monotonic() - self._fetched_at
                if (kid not in self._keys and stale > self._min_refetch_s) or stale > self._ttl_s:
                    await self._fetch()
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        try:
            response = await self._client.get(self._url)
            response.raise_for_status()
            keys = response.json()["keys"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            self._fetched_at = time.monotonic()  # do not retry on every request while it is down
            if not self._keys:
                raise ServiceUnavailable("The identity provider's keys cannot be fetched.") from error
            return
        self._keys = {
            str(key["kid"]): dict(key) for key in keys if isinstance(key, Mapping) and isinstance(key.get("kid"), str)
        }
        self._fetched_at = time.monotonic()

    async def close(self) -> None:
        await self._client.aclose()


class ExternalTokens:
    def __init__(self, keys: JwksKeys, *, issuer: str, audience: str) -> None:
        self._keys, self._issuer, self._audience = keys, issuer, audience

    @property
    def issuer(self) -> str:
        return self._issuer

    async def verify(self, token: str, header: Mapping[str, Any]) -> tuple[Principal, float]:
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in EXTERNAL_ALGORITHMS or not isinstance(kid, str):
            raise _invalid()
        key = await self._keys.get(kid)
        if key is None or key.get("alg", alg) != alg:
            raise _invalid("The token is signed with an unknown key.")
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=self._audience, issuer=self._issuer, options=_REQUIRED
            )
        except _UNUSABLE as error:
            raise _invalid() from error
        email, name = claims.get("email"), claims.get("name")
        principal = Principal(
            user_id=str(claims["sub"]),
            email=email.strip().lower() if isinstance(email, str) and email.strip() else None,
            name=name if isinstance(name, str) else None,
            external=True,
        )
        return principal, float(claims["exp"])


class BearerTokenVerifier:
    """The `TokenVerifier` port: routes a token to our verifier or the external one by its issuer,
    then each verifies fully with its own key and algorithms (so HS/RS confusion finds nothing).

    An SPA sends the same token for minutes on end, so verified tokens are remembered until they
    expire (a bounded map): the signature is checked once, not on every request.
    """

    def __init__(self, own: JwtAccessTokens | None, external: ExternalTokens | None, *, remember: int = 4096) -> None:
        self._own, self._external = own, external
        self._verified: dict[str, tuple[Principal, float]] = {}
        self._remember = max(1, remember)

    async def verify(self, token: str) -> Principal:
        if (known := self._verified.get(token)) is not None:
            if known[1] > time.time():
                return known[0]
            del self._verified[token]
        principal, expires_at = await self._verify(token)
        # The expiry travels with the principal: a live event stream ends when its token does.
        principal = replace(principal, expires_at=datetime.fromtimestamp(expires_at, UTC))
        if len(self._verified) >= self._remember:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (principal, expires_at)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        if len(token) > MAX_TOKEN_BYTES:
            raise _invalid("The bearer token is too large.")
        try:
            header = jwt.get_unverified_header(token)
            issuer = jwt.get_unverified_claims(token).get("iss")
        except _UNUSABLE as error:
            raise _invalid() from error
        if self._own is not None and issuer == self._own.issuer:
            return self._own.verify(token)
        if self._external is not None and issuer == self._external.issuer:
            return await self._external.verify(token, header)
        raise _invalid()
