"""EdDSA (Ed25519, RFC 8037) for python-jose, which has none: Better Auth signs its JWTs with it.

`register_eddsa()` lets `jose.jwt` verify such tokens (and mint them, for tests).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Self

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from jose import jwk
from jose.backends.base import Key
from jose.constants import ALGORITHMS
from jose.exceptions import JWKError

EDDSA = "EdDSA"

KeyInput = Ed25519PrivateKey | Ed25519PublicKey | Mapping[str, Any] | str | bytes


def _b64url_decode(value: object, member: str) -> bytes:
    if not isinstance(value, str):
        raise JWKError(f"JWK member {member!r} must be a base64url string")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as error:
        raise JWKError(f"JWK member {member!r} is not valid base64url") from error


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _from_jwk(data: Mapping[str, Any]) -> Ed25519PrivateKey | Ed25519PublicKey:
    if data.get("kty") != "OKP":
        raise JWKError(f"Incorrect key type. Expected: 'OKP', Received: {data.get('kty')!r}")
    if data.get("crv") != "Ed25519":
        raise JWKError(f"Incorrect curve. Expected: 'Ed25519', Received: {data.get('crv')!r}")
    if data.get("alg", EDDSA) != EDDSA:
        raise JWKError(f"JWK is for {data.get('alg')!r}, not {EDDSA!r}")
    try:
        public = Ed25519PublicKey.from_public_bytes(_b64url_decode(data.get("x"), "x"))
        if "d" not in data:
            return public
        private = Ed25519PrivateKey.from_private_bytes(_b64url_decode(data["d"], "d"))
    except ValueError as error:
        raise JWKError(f"Invalid Ed25519 JWK: {error}") from error
    if private.public_key() != public:
        raise JWKError("JWK members 'd' and 'x' do not belong to the same key")
    return private


def _from_pem(data: bytes) -> Ed25519PrivateKey | Ed25519PublicKey:
    try:
        try:
            loaded: object = load_pem_public_key(data)
        except ValueError:
            loaded = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise JWKError(f"Unable to load an Ed25519 PEM key: {error}") from error
    if not isinstance(loaded, Ed25519PrivateKey | Ed25519PublicKey):
        raise JWKError(f"PEM key is {type(loaded).__name__}, not Ed25519")
    return loaded


class Ed25519Key(Key):
    """An Ed25519 key for the JWS algorithm "EdDSA", built from a key object, an OKP JWK or a PEM string.

    A private key signs and verifies; a public key only verifies. `to_dict()` always gives the public JWK.
    """

    def __init__(self, key: KeyInput, algorithm: str = EDDSA) -> None:
        if algorithm != EDDSA:
            raise JWKError(f"{algorithm!r} is not an Ed25519 algorithm; expected {EDDSA!r}")
        self._algorithm = algorithm
        self._key: Ed25519PrivateKey | Ed25519PublicKey
        if isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
            self._key = key
        elif isinstance(key, Mapping):
            self._key = _from_jwk(key)
        elif isinstance(key, str | bytes):
            self._key = _from_pem(key.encode() if isinstance(key, str) else key)
        else:
            raise JWKError(f"Unable to build an Ed25519 key from {type(key).__name__}")

    def _public(self) -> Ed25519PublicKey:
        return self._key.public_key() if isinstance(self._key, Ed25519PrivateKey) else self._key

    def is_public(self) -> bool:
        return isinstance(self._key, Ed25519PublicKey)

    def sign(self, msg: bytes) -> bytes:
        if not isinstance(self._key, Ed25519PrivateKey):
            raise JWKError("An Ed25519 public key cannot sign")
        return self._key.sign(msg)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        try:
            self._public().verify(sig, msg)
        except (InvalidSignature, TypeError):
            return False
        return True

    def public_key(self) -> Self:
        return type(self)(self._public(), self._algorithm)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _b64url_encode(self._public().public_bytes_raw()),
            "alg": self._algorithm,
        }


def register_eddsa() -> None:
    """Make `jose.jwt` / `jose.jws` sign and verify "EdDSA" with `Ed25519Key`; calling it again changes nothing."""
    if ALGORITHMS.KEYS.get(EDDSA) is Ed25519Key and EDDSA in ALGORITHMS.SUPPORTED:
        return
    jwk.register_key(EDDSA, Ed25519Key)
