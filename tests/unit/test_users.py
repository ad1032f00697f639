"""Domain rules for accounts: e-mail addresses, names, the password policy, user ids, refresh token hashes."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from todo_api.domain.errors import InvalidInput
from todo_api.domain.sessions import hash_refresh_token, new_refresh_token
from todo_api.domain.users import (
    MAX_EMAIL_CHARS,
    MAX_NAME_CHARS,
    MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
    PasswordPolicy,
    new_user_id,
    normalise_email,
    normalise_name,
)

COMMON = frozenset({"password", "12345678", "qwertyuiop", "iloveyou"})
policy = PasswordPolicy(COMMON)

# Addresses as people type them: any case, stray spaces around.
typed_emails = st.tuples(st.emails(), st.text(" \t\n", max_size=3), st.text(" \t\n", max_size=3), st.booleans()).map(
    lambda parts: parts[1] + (parts[0].upper() if parts[3] else parts[0]) + parts[2]
)


def email_of_length(length: int) -> str:
    domain = "@example.com"
    return "a" * (length - len(domain)) + domain


# --- E-mail addresses --------------------------------------------------------------------------------


def test_an_email_is_trimmed_and_lower_cased() -> None:
    assert normalise_email("  Ada.Lovelace@Example.COM \n") == "ada.lovelace@example.com"


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "ada", "ada@", "@example.com", "ada@example", "ada@@example.com", "ada lovelace@example.com", "a@b."],
)
def test_an_invalid_email_is_refused_with_code_invalid_email(raw: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise_email(raw)
    assert refused.value.code == "invalid_email"


def test_an_email_of_254_characters_is_accepted() -> None:
    email = email_of_length(MAX_EMAIL_CHARS)
    assert normalise_email(email) == email


def test_an_email_longer_than_254_characters_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise_email(email_of_length(MAX_EMAIL_CHARS + 1))
    assert refused.value.code == "invalid_email"


def test_the_length_limit_applies_after_trimming() -> None:
    email = email_of_length(MAX_EMAIL_CHARS)
    assert normalise_email(f"   {email}   ") == email


@given(typed_emails)
def test_normalising_an_email_is_idempotent(raw: str) -> None:
    once = normalise_email(raw)
    assert normalise_email(once) == once


@given(st.emails())
def test_an_address_typed_in_any_case_with_spaces_is_the_same_address(email: str) -> None:
    assert normalise_email(f"  {email.upper()} ") == normalise_email(email.lower())


# --- Names -------------------------------------------------------------------------------------------


def test_whitespace_in_a_name_is_collapsed_and_trimmed() -> None:
    assert normalise_name("  Ada \t\n  Lovelace  ") == "Ada Lovelace"


@pytest.mark.parametrize("raw", [None, "", "   \t\n"])
def test_a_missing_or_blank_name_is_no_name(raw: str | None) -> None:
    assert normalise_name(raw) is None


def test_a_name_of_100_characters_is_accepted() -> None:
    assert normalise_name("n" * MAX_NAME_CHARS) == "n" * MAX_NAME_CHARS


def test_a_name_longer_than_100_characters_is_refused_with_code_invalid_name() -> None:
    with pytest.raises(InvalidInput) as refused:
        normalise_name("n" * (MAX_NAME_CHARS + 1))
    assert refused.value.code == "invalid_name"


def test_a_name_is_measured_after_collapsing_whitespace() -> None:
    assert normalise_name("Ada" + " " * 200 + "Lovelace") == "Ada Lovelace"


@given(st.text(max_size=MAX_NAME_CHARS))
def test_a_normalised_name_has_no_stray_whitespace_and_normalising_again_changes_nothing(raw: str) -> None:
    name = normalise_name(raw)
    if name is not None:
        assert name == name.strip()
        assert "  " not in name
        assert name.split() == raw.split()
    assert normalise_name(name) == name


# --- The password policy -----------------------------------------------------------------------------


def test_a_password_of_8_characters_is_accepted() -> None:
    policy.check("tr0ub4d&")


def test_a_password_of_7_characters_is_refused_as_too_short() -> None:
    with pytest.raises(InvalidInput) as refused:
        policy.check("tr0ub4d")
    assert refused.value.code == "password_too_short"


def test_a_password_of_128_characters_is_accepted() -> None:
    policy.check("x" * MAX_PASSWORD_CHARS)


def test_a_password_of_129_characters_is_refused_as_too_long() -> None:
    with pytest.raises(InvalidInput) as refused:
        policy.check("x" * (MAX_PASSWORD_CHARS + 1))
    assert refused.value.code == "password_too_long"


def test_a_password_is_measured_in_characters_not_bytes() -> None:
    emoji = "\N{GRINNING FACE}" * MIN_PASSWORD_CHARS  # 8 characters, 32 bytes in UTF-8
    assert len(emoji.encode()) == 4 * MIN_PASSWORD_CHARS
    policy.check(emoji)


def test_128_characters_of_a_non_latin_script_are_accepted() -> None:
    policy.check("\N{CJK UNIFIED IDEOGRAPH-5BC6}" * MAX_PASSWORD_CHARS)  # 384 bytes in UTF-8


def test_129_four_byte_characters_are_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        policy.check("\N{GRINNING FACE}" * (MAX_PASSWORD_CHARS + 1))
    assert refused.value.code == "password_too_long"


@pytest.mark.parametrize("password", ["password", "PASSWORD", "PassWord", "  iloveyou  ", "12345678"])
def test_a_common_password_is_refused_whatever_its_case(password: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        policy.check(password)
    assert refused.value.code == "weak_password"


@given(st.text(min_size=MIN_PASSWORD_CHARS, max_size=MAX_PASSWORD_CHARS))
def test_any_password_of_8_to_128_characters_that_is_not_common_is_accepted(password: str) -> None:
    assume(password.strip().lower() not in COMMON)
    policy.check(password)


@given(st.one_of(st.text(max_size=MIN_PASSWORD_CHARS - 1), st.text(min_size=MAX_PASSWORD_CHARS + 1, max_size=300)))
def test_any_password_outside_8_to_128_characters_is_refused(password: str) -> None:
    with pytest.raises(InvalidInput):
        policy.check(password)


# --- User ids ----------------------------------------------------------------------------------------


def test_a_user_id_is_32_ascii_letters_and_digits() -> None:
    assert re.fullmatch(r"[A-Za-z0-9]{32}", new_user_id())


def test_user_ids_are_distinct() -> None:
    ids = {new_user_id() for _ in range(1000)}
    assert len(ids) == 1000


# --- Refresh tokens ----------------------------------------------------------------------------------


def test_a_new_refresh_token_comes_with_its_sha256_hex_digest() -> None:
    token, token_hash = new_refresh_token()
    assert token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", token_hash)


def test_a_new_refresh_token_is_not_its_hash() -> None:
    token, token_hash = new_refresh_token()
    assert token != token_hash


def test_refresh_tokens_are_distinct_and_carry_at_least_256_bits() -> None:
    tokens = {new_refresh_token()[0] for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(token) >= 43 for token in tokens)  # 32 random bytes in URL-safe base64


@given(st.text())
def test_hashing_a_refresh_token_is_stable(token: str) -> None:
    assert hash_refresh_token(token) == hash_refresh_token(token)
    assert hash_refresh_token(token) == hashlib.sha256(token.encode()).hexdigest()
