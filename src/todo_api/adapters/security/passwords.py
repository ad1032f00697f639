"""bcrypt behind a keyed pre-hash, off the event loop on a small dedicated thread pool.

bcrypt reads at most 72 bytes (bcrypt 5 raises beyond), and 128 characters of some scripts are
512 bytes. OWASP's answer when bcrypt stays: bcrypt(base64(HMAC-SHA384(password, pepper))). The
HMAC is keyed with a pepper kept in settings, not the database, so a leaked table cannot be
"shucked" against other sites' plain SHA hashes; its 64 base64 bytes fit bcrypt whole.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources

import bcrypt


class BcryptPasswordHasher:
    def __init__(self, *, pepper: bytes, cost: int = 12, threads: int = 2) -> None:
        self._pepper = pepper
        self._cost = cost
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bcrypt")
        # Verifying an unknown e-mail against this costs what a real verification costs.
        self._dummy = bcrypt.hashpw(b"dummy-password-for-unknown-accounts", bcrypt.gensalt(cost))

    def _prehash(self, password: str) -> bytes:
        return base64.b64encode(hmac.new(self._pepper, password.encode(), hashlib.sha384).digest())

    async def hash(self, password: str) -> str:
        prehashed = self._prehash(password)
        salt = bcrypt.gensalt(self._cost)
        hashed = await asyncio.get_running_loop().run_in_executor(self._pool, bcrypt.hashpw, prehashed, salt)
        return hashed.decode()

    async def verify(self, password: str, password_hash: str | None) -> bool:
        target = password_hash.encode() if password_hash else self._dummy
        try:
            ok = await asyncio.get_running_loop().run_in_executor(
                self._pool, bcrypt.checkpw, self._prehash(password), target
            )
        except ValueError:  # a malformed stored hash verifies nothing
            return False
        return ok and password_hash is not None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@cache
def common_passwords() -> frozenset[str]:
    """The 20,000 most common passwords (Django's list, BSD licence, from Royce Williams' corpus)."""
    data = resources.files(__package__).joinpath("common-passwords.txt.gz").read_bytes()
    return frozenset(line.strip() for line in gzip.decompress(data).decode().splitlines() if line.strip())
