"""Accounts and sessions over HTTP against a real PostgreSQL: signup, login (JSON and the OAuth2 form),
`/me`, refresh-token rotation with reuse detection, the httpOnly cookie, logout, password change,
password byte lengths and scripts, strict input, what the database keeps, and throttling shared by
two app instances on one database."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.conftest import two_instances
from tests.integration.live_server import free_port, live_server, server_env

SIGNUP = "/api/auth/signup"
LOGIN = "/api/auth/login"
TOKEN = "/api/auth/token"
REFRESH = "/api/auth/refresh"
LOGOUT = "/api/auth/logout"
ME = "/api/auth/me"
PASSWORD_CHANGE = "/api/auth/password"

EMAIL = "ada@example.com"
PASSWORD = "correct-horse-battery-staple-42"
NEW_PASSWORD = "a-brand-new-and-long-passphrase-7"
PROBLEM = "application/problem+json"
WWW_AUTHENTICATE = 'Bearer error="invalid_token"'


# --- helpers ----------------------------------------------------------------------------------------


def stored_hash(refresh_token: str) -> str:
    """What the database keeps for a refresh token (sessions.hash_refresh_token)."""
    return hashlib.sha256(refresh_token.encode()).hexdigest()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_up(
    client: httpx.AsyncClient, email: str = EMAIL, password: str = PASSWORD, name: str | None = "Ada"
) -> dict[str, Any]:
    response = await client.post(SIGNUP, json={"email": email, "password": password, "name": name})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def log_in(client: httpx.AsyncClient, email: str = EMAIL, password: str = PASSWORD) -> httpx.Response:
    return await client.post(LOGIN, json={"email": email, "password": password})


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(REFRESH, json={"refresh_token": token})


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    return body


def assert_session(body: dict[str, Any]) -> None:
    assert body.keys() == {"user", "access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["access_token"]
    assert body["refresh_token"]


def refresh_set_cookie(response: httpx.Response) -> str:
    """The one `Set-Cookie` header for the refresh token."""
    headers = [value for value in response.headers.get_list("set-cookie") if value.startswith("refresh_token=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0]


def cookie_attributes(set_cookie: str) -> dict[str, str]:
    """`name=value; Attr=x; Flag` -> {"refresh_token": value, "attr": "x", "flag": ""} (names lower-cased)."""
    first, *rest = (part.strip() for part in set_cookie.split(";"))
    name, _, value = first.partition("=")
    attributes = {name: value}
    for part in rest:
        key, _, attr_value = part.partition("=")
        attributes[key.lower()] = attr_value
    return attributes


# --- the whole flow ---------------------------------------------------------------------------------


async def test_whole_flow_signup_me_refresh_reuse_revokes_family_logout_then_refresh_fails(
    client: httpx.AsyncClient,
) -> None:
    signed_up = await sign_up(client)
    first_refresh = signed_up["refresh_token"]

    me = await client.get(ME, headers=bearer(signed_up["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == signed_up["user"]["id"]
    assert me.json()["email"] == EMAIL

    rotated = await refresh(client, first_refresh)
    assert rotated.status_code == 200, rotated.text
    assert_session(rotated.json())
    second_refresh = rotated.json()["refresh_token"]
    assert second_refresh != first_refresh
    assert (await client.get(ME, headers=bearer(rotated.json()["access_token"]))).status_code == 200

    assert_problem(await refresh(client, first_refresh), 401, "refresh_token_reused")
    assert_problem(await refresh(client, second_refresh), 401, "invalid_refresh_token")

    logged_in = await log_in(client)
    assert logged_in.status_code == 200, logged_in.text
    third_refresh = logged_in.json()["refresh_token"]
    assert (await client.post(LOGOUT, json={"refresh_token": third_refresh})).status_code == 204
    assert_problem(await refresh(client, third_refresh), 401, "invalid_refresh_token")


# --- signup -----------------------------------------------------------------------------------------


async def test_signup_returns_201_with_the_user_and_a_session(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, json={"email": EMAIL, "password": PASSWORD, "name": "Ada Lovelace"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert_session(body)
    assert body["user"].keys() == {"id", "email", "name", "created_at"}
    assert (body["user"]["email"], body["user"]["name"]) == (EMAIL, "Ada Lovelace")


async def test_signup_without_a_name_is_201(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, json={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 201, response.text
    assert response.json()["user"]["name"] is None


async def test_signup_normalises_the_email_so_login_with_lower_case_works(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = await sign_up(client, email="  Ada@Example.COM ")
    assert body["user"]["email"] == "ada@example.com"
    assert await db.fetchval("SELECT email FROM users WHERE id = $1", body["user"]["id"]) == "ada@example.com"

    response = await log_in(client, email="ada@example.com")
    assert response.status_code == 200, response.text
    assert response.json()["user"]["id"] == body["user"]["id"]


async def test_signup_with_an_email_taken_in_another_case_is_409_email_taken(client: httpx.AsyncClient) -> None:
    await sign_up(client, email="ada@example.com")
    response = await client.post(SIGNUP, json={"email": "ADA@example.com", "password": PASSWORD})
    assert_problem(response, 409, "email_taken")


async def test_signup_with_an_invalid_email_is_422_pointing_at_the_email(client: httpx.AsyncClient) -> None:
    """The schema carries the address pattern, so the refusal comes from validation, on the field."""
    response = await client.post(SIGNUP, json={"email": "not-an-address", "password": PASSWORD})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"] == [
        {"loc": ["body", "email"], "code": "invalid_email", "message": "This is not a valid e-mail address."}
    ]


async def test_signup_with_an_unknown_field_is_422(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    response = await client.post(SIGNUP, json={"email": EMAIL, "password": PASSWORD, "is_admin": True})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "is_admin"]
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_signup_with_a_numeric_password_is_422_not_coerced(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post(SIGNUP, json={"email": EMAIL, "password": 12345678})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "password"]
    assert await db.fetchval("SELECT count(*) FROM users") == 0


async def test_signup_with_a_common_password_is_422_weak_password(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, json={"email": EMAIL, "password": "Password123"})
    assert_problem(response, 422, "weak_password")


async def test_signup_with_a_7_character_password_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, json={"email": EMAIL, "password": "kq8#Zr!"})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "password"]


async def test_signup_with_a_129_character_password_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, json={"email": EMAIL, "password": "kq8#Zr!v" * 16 + "x"})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "password"]


async def test_signup_with_an_8_character_password_is_201(client: httpx.AsyncClient) -> None:
    response = await client.post(SIGNUP, json={"email": EMAIL, "password": "kq8#Zr!v"})
    assert response.status_code == 201, response.text


async def test_password_length_counts_characters_not_bytes(client: httpx.AsyncClient) -> None:
    """Seven 4-byte characters are 28 bytes but still too short."""
    response = await client.post(SIGNUP, json={"email": EMAIL, "password": "\U0001f600" * 7})
    assert_problem(response, 422, "validation_failed")


# --- what the database keeps ------------------------------------------------------------------------


async def test_database_stores_a_bcrypt_hash_not_the_password(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = await sign_up(client)
    stored = await db.fetchval("SELECT password_hash FROM users WHERE id = $1", body["user"]["id"])
    assert stored.startswith("$2b$")
    assert PASSWORD not in stored


async def test_database_stores_a_hash_of_the_refresh_token_not_the_token(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = await sign_up(client)
    token = body["refresh_token"]
    hashes = [row["token_hash"] for row in await db.fetch("SELECT token_hash FROM refresh_tokens")]
    assert len(hashes) == 1
    assert hashes[0] != token
    assert hashes[0] == stored_hash(token)


# --- password byte lengths and scripts --------------------------------------------------------------

BYTE_LENGTHS = [71, 72, 73]
# One character of each UTF-8 width: 1, 2, 3 and 4 bytes.
WIDE_CHARACTERS = {1: "a", 2: "\u00e9", 3: "\u20ac", 4: "\U0001f600"}


def ascii_password(length: int) -> str:
    password = ("Tr0ub4dor&3-" * 10)[:length]
    assert len(password.encode()) == length
    return password


def with_last_character_changed(password: str) -> str:
    return password[:-1] + ("X" if password[-1] != "X" else "Y")


@pytest.mark.parametrize("length", BYTE_LENGTHS)
async def test_password_of_71_72_73_bytes_signs_up_and_logs_in(client: httpx.AsyncClient, length: int) -> None:
    await sign_up(client, password=ascii_password(length))
    response = await log_in(client, password=ascii_password(length))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("length", BYTE_LENGTHS)
async def test_password_of_71_72_73_bytes_with_its_last_byte_changed_fails_login(
    client: httpx.AsyncClient, length: int
) -> None:
    password = ascii_password(length)
    await sign_up(client, password=password)
    altered = with_last_character_changed(password)
    assert len(altered.encode()) == length
    assert_problem(await log_in(client, password=altered), 401, "invalid_credentials")


@pytest.mark.parametrize("width", sorted(WIDE_CHARACTERS))
async def test_password_of_128_characters_of_1_to_4_bytes_signs_up_and_logs_in(
    client: httpx.AsyncClient, width: int
) -> None:
    password = WIDE_CHARACTERS[width] * 127 + "z"
    assert len(password) == 128
    assert len(password.encode()) == width * 127 + 1
    await sign_up(client, password=password)
    response = await log_in(client, password=password)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("width", sorted(WIDE_CHARACTERS))
async def test_password_of_1_to_4_byte_characters_with_its_last_character_changed_fails_login(
    client: httpx.AsyncClient, width: int
) -> None:
    """The first 72 bytes are equal; only the last character, far beyond byte 72, differs."""
    password = WIDE_CHARACTERS[width] * 127 + "z"
    await sign_up(client, password=password)
    altered = with_last_character_changed(password)
    assert altered.encode()[:72] == password.encode()[:72]
    assert_problem(await log_in(client, password=altered), 401, "invalid_credentials")


async def test_password_mixing_1_to_4_byte_characters_across_byte_72_logs_in(client: httpx.AsyncClient) -> None:
    """A 4-byte character straddling byte 72 must be kept whole, not cut."""
    password = "a" * 70 + "\U0001f600" + "\u00e9\u20ac\U0001f601"
    assert len(password.encode()) == 70 + 4 + 2 + 3 + 4
    await sign_up(client, password=password)
    assert (await log_in(client, password=password)).status_code == 200
    altered = "a" * 70 + "\U0001f600" + "\u00e9\u20ac\U0001f602"
    assert_problem(await log_in(client, password=altered), 401, "invalid_credentials")


# --- login ------------------------------------------------------------------------------------------


async def test_login_returns_200_with_a_new_session(client: httpx.AsyncClient) -> None:
    signed_up = await sign_up(client)
    response = await log_in(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_session(body)
    assert body["user"]["id"] == signed_up["user"]["id"]
    assert body["refresh_token"] != signed_up["refresh_token"]


async def test_login_with_unknown_email_and_with_wrong_password_get_the_identical_401(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client)
    wrong_password = await log_in(client, password="not-the-" + PASSWORD)
    unknown_email = await log_in(client, email="nobody@example.com")
    for response in (wrong_password, unknown_email):
        assert_problem(response, 401, "invalid_credentials")
        assert response.headers["www-authenticate"] == WWW_AUTHENTICATE
        assert "set-cookie" not in response.headers

    def comparable(response: httpx.Response) -> dict[str, Any]:
        return {key: value for key, value in response.json().items() if key != "request_id"}

    assert comparable(wrong_password) == comparable(unknown_email)


async def test_login_with_a_malformed_email_is_the_same_401_invalid_credentials(client: httpx.AsyncClient) -> None:
    response = await log_in(client, email="not-an-address")
    assert_problem(response, 401, "invalid_credentials")
    assert response.headers["www-authenticate"] == WWW_AUTHENTICATE


async def test_login_with_an_unknown_field_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(LOGIN, json={"email": EMAIL, "password": PASSWORD, "remember": True})
    assert_problem(response, 422, "validation_failed")


# --- the OAuth2 form --------------------------------------------------------------------------------


async def test_oauth2_form_issues_an_access_token_that_works_on_me(client: httpx.AsyncClient) -> None:
    signed_up = await sign_up(client)
    response = await client.post(TOKEN, data={"username": EMAIL, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.keys() == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("bearer", 900)
    me = await client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == signed_up["user"]["id"]


async def test_oauth2_form_with_a_wrong_password_is_401_invalid_credentials(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    response = await client.post(TOKEN, data={"username": EMAIL, "password": "not-the-" + PASSWORD})
    assert_problem(response, 401, "invalid_credentials")
    assert response.headers["www-authenticate"] == WWW_AUTHENTICATE


# --- /me --------------------------------------------------------------------------------------------


async def test_me_returns_the_signed_in_user(client: httpx.AsyncClient) -> None:
    signed_up = await sign_up(client, name="Ada Lovelace")
    response = await client.get(ME, headers=bearer(signed_up["access_token"]))
    assert response.status_code == 200, response.text
    assert response.json() == signed_up["user"]


async def test_me_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(ME)
    assert_problem(response, 401, "missing_token")
    assert response.headers["www-authenticate"] == WWW_AUTHENTICATE


# --- the refresh cookie -----------------------------------------------------------------------------


async def test_refresh_cookie_is_httponly_scoped_to_api_auth_samesite_lax_and_not_secure_in_development(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(SIGNUP, json={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 201, response.text
    attributes = cookie_attributes(refresh_set_cookie(response))
    assert attributes["refresh_token"] == response.json()["refresh_token"]
    assert "httponly" in attributes
    assert attributes["path"] == "/api/auth"
    assert attributes["samesite"] == "lax"
    assert "secure" not in attributes
    assert "expires" in attributes


async def test_login_sets_the_refresh_cookie_to_the_new_token(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    response = await log_in(client)
    assert response.status_code == 200, response.text
    assert cookie_attributes(refresh_set_cookie(response))["refresh_token"] == response.json()["refresh_token"]
    assert client.cookies.get("refresh_token") == response.json()["refresh_token"]


async def test_oauth2_form_sets_no_refresh_cookie(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    client.cookies.clear()
    response = await client.post(TOKEN, data={"username": EMAIL, "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert "set-cookie" not in response.headers


async def test_refresh_with_the_cookie_alone_rotates_the_session_and_the_cookie(client: httpx.AsyncClient) -> None:
    signed_up = await sign_up(client)
    assert client.cookies.get("refresh_token") == signed_up["refresh_token"]

    response = await client.post(REFRESH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert_session(body)
    assert body["refresh_token"] != signed_up["refresh_token"]
    assert client.cookies.get("refresh_token") == body["refresh_token"]
    assert (await client.get(ME, headers=bearer(body["access_token"]))).status_code == 200

    again = await client.post(REFRESH)
    assert again.status_code == 200, again.text


async def test_logout_with_the_cookie_alone_revokes_the_session(client: httpx.AsyncClient) -> None:
    signed_up = await sign_up(client)
    assert (await client.post(LOGOUT)).status_code == 204
    assert_problem(await refresh(client, signed_up["refresh_token"]), 401, "invalid_refresh_token")


async def test_logout_clears_the_refresh_cookie(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    response = await client.post(LOGOUT)
    assert response.status_code == 204
    attributes = cookie_attributes(refresh_set_cookie(response))
    assert attributes["refresh_token"] in {"", '""'}
    assert attributes["max-age"] == "0"
    assert attributes["path"] == "/api/auth"
    assert "httponly" in attributes
    assert client.cookies.get("refresh_token") is None


async def test_refresh_cookie_is_not_sent_outside_api_auth(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    request = client.build_request("GET", "/api/me/tasks")
    assert "cookie" not in request.headers
    assert "refresh_token=" in client.build_request("POST", REFRESH).headers["cookie"]


# --- refresh ----------------------------------------------------------------------------------------


async def test_refresh_rotates_the_token_and_returns_a_working_access_token(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    signed_up = await sign_up(client)
    response = await refresh(client, signed_up["refresh_token"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refresh_token"] != signed_up["refresh_token"]
    assert body["user"] == signed_up["user"]
    assert (await client.get(ME, headers=bearer(body["access_token"]))).status_code == 200
    rows = await db.fetch("SELECT token_hash, family_id, rotated_at, revoked_at FROM refresh_tokens")
    assert len(rows) == 2
    assert len({row["family_id"] for row in rows}) == 1
    old = next(row for row in rows if row["token_hash"] == stored_hash(signed_up["refresh_token"]))
    assert old["rotated_at"] is not None
    assert all(row["revoked_at"] is None for row in rows)


async def test_reusing_a_spent_refresh_token_is_401_and_revokes_the_whole_family(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    signed_up = await sign_up(client)
    rotated = await refresh(client, signed_up["refresh_token"])
    assert rotated.status_code == 200, rotated.text

    reused = await refresh(client, signed_up["refresh_token"])
    assert_problem(reused, 401, "refresh_token_reused")
    assert reused.headers["www-authenticate"] == WWW_AUTHENTICATE
    assert_problem(await refresh(client, rotated.json()["refresh_token"]), 401, "invalid_refresh_token")
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL") == 0


async def test_reuse_revokes_only_its_own_family(client: httpx.AsyncClient) -> None:
    signed_up = await sign_up(client)
    other_session = await log_in(client)
    assert (await refresh(client, signed_up["refresh_token"])).status_code == 200
    assert_problem(await refresh(client, signed_up["refresh_token"]), 401, "refresh_token_reused")
    assert (await refresh(client, other_session.json()["refresh_token"])).status_code == 200


async def test_refresh_with_an_unknown_token_is_401_invalid_refresh_token(client: httpx.AsyncClient) -> None:
    response = await refresh(client, "x" * 43)
    assert_problem(response, 401, "invalid_refresh_token")
    assert response.headers["www-authenticate"] == WWW_AUTHENTICATE


async def test_refresh_without_any_token_is_401_missing_refresh_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post(REFRESH), 401, "missing_refresh_token")


async def test_refresh_with_an_unknown_field_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(REFRESH, json={"refresh_token": "x" * 43, "grant_type": "refresh_token"})
    assert_problem(response, 422, "validation_failed")


# --- logout -----------------------------------------------------------------------------------------


async def test_refresh_after_logout_is_401(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    signed_up = await sign_up(client)
    assert (await client.post(LOGOUT, json={"refresh_token": signed_up["refresh_token"]})).status_code == 204
    assert_problem(await refresh(client, signed_up["refresh_token"]), 401, "invalid_refresh_token")
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL") == 0


async def test_logout_revokes_only_its_own_session(client: httpx.AsyncClient) -> None:
    signed_up = await sign_up(client)
    other_session = await log_in(client)
    assert (await client.post(LOGOUT, json={"refresh_token": signed_up["refresh_token"]})).status_code == 204
    assert (await refresh(client, other_session.json()["refresh_token"])).status_code == 200


async def test_logout_without_any_token_is_204(client: httpx.AsyncClient) -> None:
    response = await client.post(LOGOUT)
    assert response.status_code == 204
    assert response.content == b""


async def test_logout_with_an_unknown_token_is_204(client: httpx.AsyncClient) -> None:
    assert (await client.post(LOGOUT, json={"refresh_token": "x" * 43})).status_code == 204


async def test_logout_twice_is_204_both_times(client: httpx.AsyncClient) -> None:
    signed_up = await sign_up(client)
    body = {"refresh_token": signed_up["refresh_token"]}
    assert (await client.post(LOGOUT, json=body)).status_code == 204
    assert (await client.post(LOGOUT, json=body)).status_code == 204


# --- password change --------------------------------------------------------------------------------


async def test_password_change_revokes_other_sessions_but_keeps_the_current_one(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    other = await sign_up(client)
    current = (await log_in(client)).json()
    response = await client.post(
        PASSWORD_CHANGE,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(current["access_token"]),
    )
    assert response.status_code == 204, response.text

    assert_problem(await refresh(client, other["refresh_token"]), 401, "invalid_refresh_token")
    assert (await refresh(client, current["refresh_token"])).status_code == 200
    other_hash = stored_hash(other["refresh_token"])
    assert await db.fetchval("SELECT revoked_at FROM refresh_tokens WHERE token_hash = $1", other_hash) is not None


async def test_password_change_makes_the_old_password_fail_and_the_new_one_work(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    signed_up = await sign_up(client)
    old_hash = await db.fetchval("SELECT password_hash FROM users")
    response = await client.post(
        PASSWORD_CHANGE,
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(signed_up["access_token"]),
    )
    assert response.status_code == 204, response.text
    new_hash = await db.fetchval("SELECT password_hash FROM users")
    assert new_hash != old_hash
    assert new_hash.startswith("$2b$")
    assert_problem(await log_in(client, password=PASSWORD), 401, "invalid_credentials")
    assert (await log_in(client, password=NEW_PASSWORD)).status_code == 200


async def test_password_change_with_a_wrong_current_password_is_403_and_revokes_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    signed_up = await sign_up(client)
    response = await client.post(
        PASSWORD_CHANGE,
        json={"current_password": "not-the-" + PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(signed_up["access_token"]),
    )
    assert_problem(response, 403, "current_password_incorrect")
    assert await db.fetchval("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL") == 0
    assert (await log_in(client)).status_code == 200


async def test_password_change_to_a_common_password_is_422_weak_password(client: httpx.AsyncClient) -> None:
    signed_up = await sign_up(client)
    response = await client.post(
        PASSWORD_CHANGE,
        json={"current_password": PASSWORD, "new_password": "password123"},
        headers=bearer(signed_up["access_token"]),
    )
    assert_problem(response, 422, "weak_password")
    assert (await log_in(client)).status_code == 200


async def test_password_change_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(PASSWORD_CHANGE, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert_problem(response, 401, "missing_token")


# --- throttling shared by two instances -------------------------------------------------------------


def assert_rate_limited(response: httpx.Response) -> None:
    assert_problem(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1


async def test_login_failures_spread_across_two_instances_trip_the_per_account_limit(database_url: str) -> None:
    async with two_instances(database_url, throttle_login_per_account=3) as (first, second):
        await sign_up(first)
        for instance in (first, second, first):
            assert_problem(await log_in(instance, password="not-the-" + PASSWORD), 401, "invalid_credentials")
        assert_rate_limited(await log_in(second, password="not-the-" + PASSWORD))


async def test_an_account_throttled_on_one_instance_refuses_the_right_password_on_the_other(
    database_url: str,
) -> None:
    async with two_instances(database_url, throttle_login_per_account=3) as (first, second):
        await sign_up(first)
        for _ in range(3):
            assert_problem(await log_in(first, password="not-the-" + PASSWORD), 401, "invalid_credentials")
        assert_rate_limited(await log_in(second))
        assert_rate_limited(await second.post(TOKEN, data={"username": EMAIL, "password": PASSWORD}))


async def test_per_account_limit_does_not_touch_other_accounts(database_url: str) -> None:
    async with two_instances(database_url, throttle_login_per_account=3) as (first, second):
        await sign_up(first)
        await sign_up(first, email="grace@example.com")
        for instance in (first, second, first):
            assert_problem(await log_in(instance, password="not-the-" + PASSWORD), 401, "invalid_credentials")
        assert (await log_in(second, email="grace@example.com")).status_code == 200


async def test_a_successful_login_resets_the_per_account_failures(database_url: str) -> None:
    async with two_instances(database_url, throttle_login_per_account=3) as (first, second):
        await sign_up(first)
        for instance in (first, second):
            assert_problem(await log_in(instance, password="not-the-" + PASSWORD), 401, "invalid_credentials")
        assert (await log_in(second)).status_code == 200
        for instance in (first, second, first):
            assert_problem(await log_in(instance, password="not-the-" + PASSWORD), 401, "invalid_credentials")


async def test_login_failures_from_one_address_across_accounts_and_instances_trip_the_per_address_limit(
    database_url: str,
) -> None:
    async with two_instances(database_url, throttle_login_per_address=3) as (first, second):
        await sign_up(first)
        for number, instance in enumerate((first, second, first)):
            response = await log_in(instance, email=f"nobody{number}@example.com")
            assert_problem(response, 401, "invalid_credentials")
        assert_rate_limited(await log_in(second))


async def test_signups_from_one_address_across_two_instances_trip_the_per_address_limit(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with two_instances(database_url, throttle_signup_per_address=3) as (first, second):
        for number, instance in enumerate((first, second, first)):
            await sign_up(instance, email=f"user{number}@example.com")
        response = await second.post(SIGNUP, json={"email": "user3@example.com", "password": PASSWORD})
        assert_rate_limited(response)
    assert await db.fetchval("SELECT count(*) FROM users") == 3


# --- the client address behind a proxy, as deployed: `python -m todo_api` under uvicorn -------------


def signups_with_forwarded_for(base_url: str, count: int) -> list[int]:
    """`count` sign-ups from this process (127.0.0.1), each claiming another client in X-Forwarded-For."""
    statuses = []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for number in range(count):
            response = http.post(
                SIGNUP,
                json={"email": f"spoof{number}@example.com", "password": PASSWORD},
                headers={"X-Forwarded-For": f"192.0.2.{number + 1}"},
            )
            statuses.append(response.status_code)
    return statuses


@pytest.mark.parametrize(
    ("trusted_proxies", "expected"),
    [
        # The report: uvicorn believed X-Forwarded-For from 127.0.0.1, so all 14 were accepted.
        ("", [201] * 10 + [429] * 4),
        # 127.0.0.1 is our proxy now: each sign-up comes from the client it names.
        ("127.0.0.1", [201] * 14),
    ],
    ids=["no-trusted-proxy", "trusting-127.0.0.1"],
)
def test_x_forwarded_for_moves_the_throttle_only_when_the_peer_is_a_trusted_proxy(
    database_url: str, tmp_path: Path, trusted_proxies: str, expected: list[int]
) -> None:
    env = server_env(
        DATABASE_URL=database_url,
        PORT=str(free_port()),
        SECRET_KEY="live-server-secret-key-that-is-long-enough-0123",
        BCRYPT_COST="4",
        THROTTLE_SIGNUP_PER_ADDRESS="10",
        TRUSTED_PROXIES=trusted_proxies,
    )
    with live_server(env, log_path=tmp_path / "server.log") as server:
        assert signups_with_forwarded_for(server.base_url, 14) == expected
