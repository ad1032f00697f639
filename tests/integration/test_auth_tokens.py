"""Bearer tokens end to end, on `GET /api/auth/me`: our own HS256 access tokens, tokens of an external
issuer verified against a real JWKS endpoint (EdDSA, ES256, RS256, key rotation), a real Better Auth
server, and the forged-token suite: every bad token is a 401 `invalid_token` problem, never a 500.

The forged-token suite runs on an app with the external issuer enabled, so a token that is routed to
the wrong verifier is caught too. Own tokens in it name a user that exists, and external ones would
create their user on first sight: had the defect gone unnoticed, the answer would be a 200, not a 401.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import select
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from jose import jwk, jwt
from jose.backends.base import Key

from tests.integration.conftest import TEST_SECRET, make_settings
from tests.integration.jwks_server import JwksServer, serving_jwks
from todo_api.adapters.security.eddsa import Ed25519Key
from todo_api.main import create_app

ME = "/api/auth/me"
OWN_ISSUER = OWN_AUDIENCE = "todo-api"
EXTERNAL_ISSUER = "https://id.example.test"
EXTERNAL_AUDIENCE = "todo-api-external"
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "code", "request_id"}
PASSWORD = "correct-horse-battery-staple-42"
MAX_TOKEN_BYTES = 8192  # the documented limit; tokens.MAX_TOKEN_BYTES
BETTER_AUTH_DIR = Path(__file__).parent / "better_auth"
BETTER_AUTH_READY_TIMEOUT_S = 60  # a safeguard against a hung `npm` install, not a timing assertion


# --- keys and tokens --------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value).encode())


@dataclass(frozen=True)
class SigningKey:
    """An issuer's key pair: signs tokens under `kid`, and publishes `public_jwk` in the JWKS."""

    kid: str
    alg: str
    signer: str | bytes | Key
    public_jwk: dict[str, Any]
    public_pem: bytes

    def mint(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return jwt.encode(claims, self.signer, algorithm=self.alg, headers={"kid": kid or self.kid})


def _pem_pair(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def ed25519_key(kid: str) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signer = Ed25519Key(private)
    return SigningKey(kid, "EdDSA", signer, {**signer.to_dict(), "kid": kid}, public_pem)


def es256_key(kid: str) -> SigningKey:
    private_pem, public_pem = _pem_pair(ec.generate_private_key(ec.SECP256R1()))
    public_jwk = {**jwk.construct(public_pem, "ES256").to_dict(), "kid": kid}
    return SigningKey(kid, "ES256", private_pem, public_jwk, public_pem)


def rs256_key(kid: str) -> SigningKey:
    private_pem, public_pem = _pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    public_jwk = {**jwk.construct(public_pem, "RS256").to_dict(), "kid": kid}
    return SigningKey(kid, "RS256", private_pem, public_jwk, public_pem)


ED_KEY = ed25519_key("ed25519-2025-01")
ES_KEY = es256_key("es256-2025-01")
RS_KEY = rs256_key("rs256-2025-01")
PUBLISHED = (ED_KEY, ES_KEY, RS_KEY)


def own_claims(sub: str, **overrides: Any) -> dict[str, Any]:
    """The claims `JwtAccessTokens.issue` puts in our access tokens."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "sid": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 900,
        "iss": OWN_ISSUER,
        "aud": OWN_AUDIENCE,
        "jti": uuid.uuid4().hex,
        "type": "access",
    }
    claims.update(overrides)
    return claims


def external_claims(**overrides: Any) -> dict[str, Any]:
    """An external issuer's claims for a subject never seen before (ids are unique per call)."""
    sub = "ext" + uuid.uuid4().hex
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": sub,
        "email": f"{sub}@idp.example.test",
        "name": "Grace Hopper",
        "iat": now,
        "exp": now + 900,
        "iss": EXTERNAL_ISSUER,
        "aud": EXTERNAL_AUDIENCE,
    }
    claims.update(overrides)
    return claims


def without(claims: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {name: value for name, value in claims.items() if name not in names}


def own_token(claims: dict[str, Any], *, secret: str = TEST_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def compact(header: object, payload: str, signature: bytes = b"") -> str:
    """A JWS in compact form built by hand, for what `jose.jwt.encode` refuses to produce."""
    return f"{b64url_json(header)}.{payload}.{b64url(signature)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token(response: httpx.Response, code: str = "invalid_token") -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == 401
    assert body["code"] == code
    assert body["type"] == f"https://todo-api.dev/problems/{code}"
    assert body["instance"] == ME


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def jwks() -> Iterator[JwksServer]:
    with serving_jwks(key.public_jwk for key in PUBLISHED) as server:
        yield server


@pytest.fixture(autouse=True)
def _published_keys(jwks: JwksServer) -> None:
    """Every test starts with the three published keys (the rotation test adds one)."""
    jwks.set_keys(key.public_jwk for key in PUBLISHED)


@pytest.fixture(scope="module")
async def external_app(database_url: str, jwks: JwksServer) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        auth_jwks_url=jwks.url,
        auth_issuer=EXTERNAL_ISSUER,
        auth_audience=EXTERNAL_AUDIENCE,
        auth_jwks_min_refetch_s=0,
    )
    app = create_app(settings, database_url=database_url)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def http(external_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=external_app), base_url="http://test") as client:
        yield client


@dataclass(frozen=True)
class LocalUser:
    id: str
    email: str
    access_token: str


async def sign_up(http: httpx.AsyncClient, email: str) -> LocalUser:
    response = await http.post("/api/auth/signup", json={"email": email, "password": PASSWORD, "name": "Ada"})
    assert response.status_code == 201, response.text
    body = response.json()
    return LocalUser(body["user"]["id"], body["user"]["email"], body["access_token"])


@pytest.fixture
async def local_user(http: httpx.AsyncClient) -> LocalUser:
    """A signed-up user: own tokens in the forged suite name it, so only the defect can refuse them."""
    return await sign_up(http, "ada@example.com")


# --- no token, or not a JWT -------------------------------------------------------------------------


async def test_request_without_a_token_gets_401_missing_token(http: httpx.AsyncClient) -> None:
    assert_invalid_token(await http.get(ME), code="missing_token")


async def test_basic_credentials_instead_of_a_bearer_token_get_401_missing_token(http: httpx.AsyncClient) -> None:
    response = await http.get(ME, headers={"Authorization": "Basic " + b64url(b"ada@example.com:secret")})
    assert_invalid_token(response, code="missing_token")


async def test_malformed_token_gets_401(http: httpx.AsyncClient) -> None:
    assert_invalid_token(await http.get(ME, headers=bearer("not-a-jwt")))


async def test_token_with_segments_that_are_not_base64_json_gets_401(http: httpx.AsyncClient) -> None:
    assert_invalid_token(await http.get(ME, headers=bearer("e30.!!!not-base64!!!.c2ln")))


async def test_token_whose_claims_are_not_a_json_object_gets_401(http: httpx.AsyncClient) -> None:
    token = compact({"alg": "HS256", "typ": "JWT"}, b64url_json(["sub", "iss"]), b"sig")
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_token_with_a_deeply_nested_json_header_gets_401_not_500(http: httpx.AsyncClient) -> None:
    token = f"{b64url(b'[' * 3000)}.{b64url_json({'iss': OWN_ISSUER})}.{b64url(b'sig')}"
    assert len(token) < MAX_TOKEN_BYTES
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_token_with_deeply_nested_json_claims_gets_401_not_500(http: httpx.AsyncClient) -> None:
    token = compact({"alg": "HS256", "typ": "JWT"}, b64url(b"[" * 3000), b"sig")
    assert len(token) < MAX_TOKEN_BYTES
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_oversized_token_gets_401_even_when_validly_signed(
    http: httpx.AsyncClient, local_user: LocalUser
) -> None:
    token = own_token(own_claims(local_user.id, padding="x" * MAX_TOKEN_BYTES))
    assert len(token) > MAX_TOKEN_BYTES
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


# --- our own tokens ---------------------------------------------------------------------------------


async def test_own_token_minted_like_the_api_does_is_accepted(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    """The baseline of the forged suite: the same construction with no defect is a 200."""
    response = await http.get(ME, headers=bearer(own_token(own_claims(local_user.id))))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == local_user.id


async def test_own_access_token_still_works_while_an_external_issuer_is_enabled(
    http: httpx.AsyncClient, local_user: LocalUser
) -> None:
    response = await http.get(ME, headers=bearer(local_user.access_token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["email"], body["name"]) == (local_user.id, "ada@example.com", "Ada")


async def test_expired_own_token_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    now = int(time.time())
    token = own_token(own_claims(local_user.id, iat=now - 7200, exp=now - 3600))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_not_yet_valid_own_token_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = own_token(own_claims(local_user.id, nbf=int(time.time()) + 3600))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_own_token_signed_with_the_wrong_secret_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = own_token(own_claims(local_user.id), secret="not-the-" + TEST_SECRET)
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_expired_own_token_with_its_exp_rewritten_gets_401(
    http: httpx.AsyncClient, local_user: LocalUser
) -> None:
    now = int(time.time())
    header, _, signature = own_token(own_claims(local_user.id, iat=now - 7200, exp=now - 3600)).split(".")
    forged_claims = b64url_json(own_claims(local_user.id, iat=now - 7200, exp=now + 3600))
    assert_invalid_token(await http.get(ME, headers=bearer(f"{header}.{forged_claims}.{signature}")))


async def test_token_from_an_unknown_issuer_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = own_token(own_claims(local_user.id, iss="https://evil.example.test"))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_own_token_for_another_audience_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = own_token(own_claims(local_user.id, aud="another-api"))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_alg_none_token_claiming_our_issuer_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = compact({"alg": "none", "typ": "JWT"}, b64url_json(own_claims(local_user.id)))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_rs256_token_claiming_our_issuer_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = RS_KEY.mint(own_claims(local_user.id))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_own_token_without_sub_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = own_token(without(own_claims(local_user.id), "sub"))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_own_token_without_iat_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = own_token(without(own_claims(local_user.id), "iat"))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_own_token_without_exp_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = own_token(without(own_claims(local_user.id), "exp"))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_own_token_with_a_non_numeric_exp_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = own_token(own_claims(local_user.id, exp="tomorrow"))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_own_token_with_an_infinite_exp_gets_401_not_500(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = own_token(own_claims(local_user.id, exp=float("inf")))  # JSON `Infinity`, which json.loads accepts
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_refresh_type_token_of_ours_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = own_token(own_claims(local_user.id, type="refresh"))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_own_token_without_a_type_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = own_token(without(own_claims(local_user.id), "type"))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_own_token_without_a_session_id_gets_401(http: httpx.AsyncClient, local_user: LocalUser) -> None:
    token = own_token(without(own_claims(local_user.id), "sid"))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


# --- the external issuer: accepted tokens -----------------------------------------------------------


async def assert_accepted_as_its_subject(http: httpx.AsyncClient, token: str, claims: Mapping[str, Any]) -> None:
    response = await http.get(ME, headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["email"], body["name"]) == (claims["sub"], claims["email"], claims["name"])


async def test_eddsa_token_of_the_external_issuer_is_accepted_as_its_subject(http: httpx.AsyncClient) -> None:
    claims = external_claims()
    await assert_accepted_as_its_subject(http, ED_KEY.mint(claims), claims)


async def test_es256_token_of_the_external_issuer_is_accepted_as_its_subject(http: httpx.AsyncClient) -> None:
    claims = external_claims()
    await assert_accepted_as_its_subject(http, ES_KEY.mint(claims), claims)


async def test_rs256_token_of_the_external_issuer_is_accepted_as_its_subject(http: httpx.AsyncClient) -> None:
    claims = external_claims()
    await assert_accepted_as_its_subject(http, RS_KEY.mint(claims), claims)


async def test_external_subject_gets_a_user_row_on_first_sight(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    claims = external_claims(email="  Grace@Navy.Example.TEST ")
    assert await db.fetchrow("select * from users where id=$1", claims["sub"]) is None

    response = await http.get(ME, headers=bearer(ED_KEY.mint(claims)))

    assert response.status_code == 200, response.text
    row = await db.fetchrow("select * from users where id=$1", claims["sub"])
    assert row is not None
    assert (row["email"], row["name"], row["password_hash"]) == ("grace@navy.example.test", "Grace Hopper", None)
    assert response.json()["email"] == "grace@navy.example.test"


async def test_external_subject_is_stored_once_however_often_it_calls(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    claims = external_claims()
    for _ in range(3):
        assert (await http.get(ME, headers=bearer(ED_KEY.mint(claims)))).status_code == 200
    assert await db.fetchval("select count(*) from users where id=$1", claims["sub"]) == 1


async def test_external_email_of_an_existing_local_user_is_stored_as_null(
    http: httpx.AsyncClient, db: asyncpg.Connection, local_user: LocalUser
) -> None:
    claims = external_claims(email=local_user.email)

    response = await http.get(ME, headers=bearer(ES_KEY.mint(claims)))

    assert response.status_code == 200, response.text
    assert (response.json()["id"], response.json()["email"]) == (claims["sub"], None)
    external_row = await db.fetchrow("select * from users where id=$1", claims["sub"])
    assert external_row is not None
    assert external_row["email"] is None
    local_row = await db.fetchrow("select * from users where id=$1", local_user.id)
    assert local_row is not None
    assert local_row["email"] == local_user.email
    assert (await http.get(ME, headers=bearer(local_user.access_token))).json()["email"] == local_user.email


async def test_key_published_later_under_a_new_kid_is_picked_up(http: httpx.AsyncClient, jwks: JwksServer) -> None:
    first = external_claims()
    assert (await http.get(ME, headers=bearer(ED_KEY.mint(first)))).status_code == 200  # keys now cached
    rotated = ed25519_key("ed25519-2025-02")
    jwks.set_keys([rotated.public_jwk, *(key.public_jwk for key in PUBLISHED)])

    claims = external_claims()
    await assert_accepted_as_its_subject(http, rotated.mint(claims), claims)


async def test_external_issuer_token_is_refused_by_an_app_without_an_external_issuer(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    claims = external_claims()
    assert_invalid_token(await client.get(ME, headers=bearer(ED_KEY.mint(claims))))
    assert await db.fetchrow("select * from users where id=$1", claims["sub"]) is None


# --- the external issuer: forged and unacceptable tokens --------------------------------------------


async def test_external_token_with_an_unknown_kid_gets_401(http: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    claims = external_claims()
    token = ed25519_key("never-published").mint(claims)
    assert_invalid_token(await http.get(ME, headers=bearer(token)))
    assert await db.fetchrow("select * from users where id=$1", claims["sub"]) is None


async def test_external_token_without_a_kid_gets_401(http: httpx.AsyncClient) -> None:
    token = jwt.encode(external_claims(), ED_KEY.signer, algorithm="EdDSA")
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_external_token_signed_by_another_key_under_a_published_kid_gets_401(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    claims = external_claims()
    token = ed25519_key(ED_KEY.kid).mint(claims)
    assert_invalid_token(await http.get(ME, headers=bearer(token)))
    assert await db.fetchrow("select * from users where id=$1", claims["sub"]) is None


async def test_expired_external_token_gets_401(http: httpx.AsyncClient) -> None:
    now = int(time.time())
    token = ED_KEY.mint(external_claims(iat=now - 7200, exp=now - 3600))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_not_yet_valid_external_token_gets_401(http: httpx.AsyncClient) -> None:
    token = ED_KEY.mint(external_claims(nbf=int(time.time()) + 3600))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_external_token_for_another_audience_gets_401(http: httpx.AsyncClient) -> None:
    token = ED_KEY.mint(external_claims(aud="another-api"))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_external_token_without_exp_gets_401(http: httpx.AsyncClient) -> None:
    token = ED_KEY.mint(without(external_claims(), "exp"))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_external_token_without_sub_gets_401(http: httpx.AsyncClient) -> None:
    token = ED_KEY.mint(without(external_claims(), "sub"))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


async def test_alg_none_token_claiming_the_external_issuer_gets_401(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    claims = external_claims()
    token = compact({"alg": "none", "typ": "JWT", "kid": ED_KEY.kid}, b64url_json(claims))
    assert_invalid_token(await http.get(ME, headers=bearer(token)))
    assert await db.fetchrow("select * from users where id=$1", claims["sub"]) is None


async def test_hs256_token_keyed_with_the_external_issuers_rsa_public_key_pem_gets_401(
    http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The classic HS/RS confusion: the public key, which anyone can fetch, used as the HMAC secret."""
    claims = external_claims()
    header = b64url_json({"alg": "HS256", "typ": "JWT", "kid": RS_KEY.kid})
    payload = b64url_json(claims)
    signature = hmac.new(RS_KEY.public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()

    response = await http.get(ME, headers=bearer(f"{header}.{payload}.{b64url(signature)}"))

    assert_invalid_token(response)
    assert await db.fetchrow("select * from users where id=$1", claims["sub"]) is None


async def test_token_whose_alg_differs_from_its_published_keys_alg_gets_401(http: httpx.AsyncClient) -> None:
    token = ES_KEY.mint(external_claims(), kid=RS_KEY.kid)  # an ES256 token naming the RS256 key
    assert_invalid_token(await http.get(ME, headers=bearer(token)))


# --- a real Better Auth server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def better_auth() -> Iterator[dict[str, Any]]:
    """A real Better Auth server (tests/integration/better_auth/server.mjs); its ready line as a dict."""
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "Node.js is missing: the real Better Auth test did not run; "
            "install nodejs and run npm ci in tests/integration/better_auth"
        )
    if not (BETTER_AUTH_DIR / "node_modules").is_dir():
        pytest.fail(
            f"{BETTER_AUTH_DIR / 'node_modules'} is missing: run `npm ci` in tests/integration/better_auth "
            "(CI and `make` install it) so the real Better Auth test can run"
        )
    with tempfile.TemporaryFile(mode="w+") as stderr:
        process = subprocess.Popen(
            [node, "server.mjs", "--port", "0"],
            cwd=BETTER_AUTH_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            assert process.stdout is not None
            readable, _, _ = select.select([process.stdout], [], [], BETTER_AUTH_READY_TIMEOUT_S)
            line = process.stdout.readline() if readable else ""
            if not line:
                stderr.seek(0)
                pytest.fail(f"the Better Auth server did not start (exit code {process.poll()}):\n{stderr.read()}")
            ready: dict[str, Any] = json.loads(line)
            assert ready["ready"] is True
            yield ready
        finally:
            if process.stdin is not None:
                process.stdin.close()
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
async def better_auth_http(database_url: str, better_auth: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """An app trusting the Better Auth server; a new one per test, as it remembers which subjects it stored."""
    settings = make_settings(
        auth_jwks_url=better_auth["jwks_url"],
        auth_issuer=better_auth["issuer"],
        auth_audience=better_auth["audience"],
        auth_jwks_min_refetch_s=0,
    )
    app = create_app(settings, database_url=database_url)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client


async def test_better_auth_token_is_accepted_as_its_user(
    better_auth_http: httpx.AsyncClient, better_auth: dict[str, Any], db: asyncpg.Connection
) -> None:
    response = await better_auth_http.get(ME, headers=bearer(better_auth["token"]))

    assert response.status_code == 200, response.text
    assert (response.json()["id"], response.json()["email"]) == (better_auth["user_id"], better_auth["email"])
    row = await db.fetchrow("select * from users where id=$1", better_auth["user_id"])
    assert row is not None
    assert (row["email"], row["password_hash"]) == (better_auth["email"], None)


async def test_better_auth_token_of_a_user_who_signed_up_there_later_is_accepted(
    better_auth_http: httpx.AsyncClient, better_auth: dict[str, Any]
) -> None:
    email = f"later-{uuid.uuid4().hex[:12]}@example.com"
    async with httpx.AsyncClient(base_url=better_auth["base_url"]) as idp:
        signed_up = await idp.post(
            "/api/auth/sign-up/email", json={"email": email, "password": PASSWORD, "name": "Later User"}
        )
        assert signed_up.status_code == 200, signed_up.text
        token = (await idp.get("/api/auth/token")).json()["token"]

    response = await better_auth_http.get(ME, headers=bearer(token))

    assert response.status_code == 200, response.text
    assert (response.json()["email"], response.json()["name"]) == (email, "Later User")
    assert response.json()["id"] == jwt.get_unverified_claims(token)["sub"]


async def test_better_auth_token_with_rewritten_claims_gets_401(
    better_auth_http: httpx.AsyncClient, better_auth: dict[str, Any]
) -> None:
    header, _, signature = better_auth["token"].split(".")
    claims = {**jwt.get_unverified_claims(better_auth["token"]), "sub": "someone-else", "email": "else@example.com"}
    response = await better_auth_http.get(ME, headers=bearer(f"{header}.{b64url_json(claims)}.{signature}"))
    assert_invalid_token(response)
