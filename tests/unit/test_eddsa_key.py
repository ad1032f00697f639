"""EdDSA tokens of the shape Better Auth issues verify with python-jose, and forged or altered ones do not."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jose import jws, jwt
from jose.constants import ALGORITHMS
from jose.exceptions import JWKError, JWSError, JWTError

from todo_api.adapters.security.eddsa import Ed25519Key, register_eddsa

PEM, SPKI = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
CLAIMS = {"sub": "user-1", "iss": "https://auth.example.test", "aud": "todo-api"}

# RFC 8037, appendix A.1 and A.4.
RFC_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
OTHER_X = "C9hKfUn9w46hXdLLm3tDm66ZaTKTE_jNTw_X20atb44"  # some other Ed25519 public key
RFC_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


@pytest.fixture(autouse=True)
def _registered() -> None:
    register_eddsa()


@pytest.fixture
def private() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def better_auth_jwk(private: Ed25519PrivateKey) -> dict[str, Any]:
    x = b64url(private.public_key().public_bytes_raw())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "key-1", "alg": "EdDSA"}


def mint(private: Ed25519PrivateKey) -> str:
    return jwt.encode(dict(CLAIMS), Ed25519Key(private), algorithm="EdDSA", headers={"kid": "key-1"})


def decode(token: str, key: Any) -> dict[str, Any]:
    return jwt.decode(token, key, algorithms=["EdDSA"], audience="todo-api", issuer="https://auth.example.test")


def public_pem(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(PEM, SPKI)


KEY_FORMS: dict[str, Callable[[Ed25519PrivateKey], Any]] = {
    "jwk": better_auth_jwk,
    "jwk-json": lambda private: json.dumps(better_auth_jwk(private)),
    "jwks": lambda private: {"keys": [better_auth_jwk(private)]},
    "pem-str": lambda private: public_pem(private).decode(),
    "pem-bytes": public_pem,
    "public-key-object": lambda private: private.public_key(),
    "ed25519-key": lambda private: Ed25519Key(private.public_key()),
}


def test_a_minted_token_round_trips(private: Ed25519PrivateKey) -> None:
    token = mint(private)
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": "key-1", "typ": "JWT"}
    assert decode(token, Ed25519Key(private)) == CLAIMS


@pytest.mark.parametrize("form", KEY_FORMS.values(), ids=KEY_FORMS.keys())
def test_every_public_key_form_verifies(private: Ed25519PrivateKey, form: Callable[[Ed25519PrivateKey], Any]) -> None:
    assert decode(mint(private), form(private)) == CLAIMS


def test_a_private_jwk_signs() -> None:
    private_jwk = {"kty": "OKP", "crv": "Ed25519", "d": RFC_D, "x": RFC_X}
    token = jwt.encode(dict(CLAIMS), private_jwk, algorithm="EdDSA")
    assert decode(token, {"kty": "OKP", "crv": "Ed25519", "x": RFC_X}) == CLAIMS


def test_the_rfc_8037_example_verifies_and_signing_is_deterministic() -> None:
    public_jwk = {"kty": "OKP", "crv": "Ed25519", "x": RFC_X}
    assert jws.verify(RFC_JWS, public_jwk, algorithms=["EdDSA"]) == b"Example of Ed25519 signing"
    signing_input, signature = RFC_JWS.rsplit(".", 1)
    key = Ed25519Key({**public_jwk, "d": RFC_D})
    assert b64url(key.sign(signing_input.encode())) == signature
    assert key.to_dict() == {**public_jwk, "alg": "EdDSA"}


def test_a_token_signed_by_another_key_is_rejected(private: Ed25519PrivateKey) -> None:
    token = mint(Ed25519PrivateKey.generate())
    with pytest.raises(JWTError, match="Signature verification failed"):
        decode(token, better_auth_jwk(private))


def test_a_tampered_payload_is_rejected(private: Ed25519PrivateKey) -> None:
    header, _, signature = mint(private).split(".")
    forged = b64url(json.dumps({**CLAIMS, "sub": "admin"}).encode())
    with pytest.raises(JWTError, match="Signature verification failed"):
        decode(f"{header}.{forged}.{signature}", better_auth_jwk(private))


def test_an_hs256_token_keyed_with_the_public_key_is_rejected(private: Ed25519PrivateKey) -> None:
    public_bytes = private.public_key().public_bytes_raw()
    forged = jwt.encode(dict(CLAIMS), public_bytes, algorithm="HS256")
    for key in (better_auth_jwk(private), public_bytes, better_auth_jwk(private)["x"]):
        with pytest.raises(JWTError, match="alg value is not allowed"):
            decode(forged, key)


def test_verify_returns_false_rather_than_raising(private: Ed25519PrivateKey) -> None:
    key = Ed25519Key(private.public_key())
    signature = Ed25519Key(private).sign(b"message")
    assert key.verify(b"message", signature) is True
    assert key.verify(b"messagE", signature) is False
    assert key.verify(b"message", signature[:-1]) is False
    assert key.verify(b"message", b"") is False


@pytest.mark.parametrize(
    "bad_jwk",
    [
        {"kty": "EC", "crv": "P-256", "x": RFC_X, "y": RFC_X},
        {"kty": "oct", "k": RFC_X},
        {"kty": "OKP", "crv": "X25519", "x": RFC_X},
        {"kty": "OKP", "crv": "Ed448", "x": RFC_X},
        {"kty": "OKP", "x": RFC_X},
        {"kty": "OKP", "crv": "Ed25519"},
        {"kty": "OKP", "crv": "Ed25519", "x": RFC_X[:-2]},
        {"kty": "OKP", "crv": "Ed25519", "x": "not base64url!"},
        {"kty": "OKP", "crv": "Ed25519", "x": RFC_X, "alg": "RS256"},
        {"kty": "OKP", "crv": "Ed25519", "x": OTHER_X, "d": RFC_D},
    ],
    ids=["ec", "oct", "x25519", "ed448", "no-crv", "no-x", "short-x", "bad-base64", "other-alg", "d-x-mismatch"],
)
def test_a_jwk_that_is_not_an_ed25519_key_is_refused(bad_jwk: dict[str, Any]) -> None:
    with pytest.raises(JWKError):
        Ed25519Key(bad_jwk)


def test_keys_that_are_not_ed25519_are_refused() -> None:
    ec_private = ec.generate_private_key(ec.SECP256R1())
    ec_pem = ec_private.public_key().public_bytes(PEM, SPKI)
    for key in (ec_pem, ec_pem.decode(), "a shared secret", b"\x00" * 32):
        with pytest.raises(JWKError):
            Ed25519Key(key)
    with pytest.raises(JWKError):
        Ed25519Key(ec_private)  # type: ignore[arg-type]
    with pytest.raises(JWKError):
        Ed25519Key(Ed25519PrivateKey.generate(), "ES256")


def test_a_public_key_cannot_sign_and_exposes_only_public_members(private: Ed25519PrivateKey) -> None:
    full = Ed25519Key(private)
    public = full.public_key()
    assert isinstance(public, Ed25519Key)
    assert public.is_public()
    assert not full.is_public()
    assert full.to_dict() == public.to_dict() == {k: v for k, v in better_auth_jwk(private).items() if k != "kid"}
    with pytest.raises(JWKError):
        public.sign(b"message")
    with pytest.raises(JWSError, match="cannot sign"):
        jwt.encode(dict(CLAIMS), better_auth_jwk(private), algorithm="EdDSA")


def test_registering_twice_is_harmless(private: Ed25519PrivateKey) -> None:
    register_eddsa()
    register_eddsa()
    assert ALGORITHMS.KEYS["EdDSA"] is Ed25519Key
    assert "EdDSA" in ALGORITHMS.SUPPORTED
    assert decode(mint(private), better_auth_jwk(private)) == CLAIMS
