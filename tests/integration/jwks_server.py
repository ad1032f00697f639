"""A real JWKS endpoint on 127.0.0.1 for the external-issuer tests: `ThreadingHTTPServer` on a free port,
in a daemon thread, serving `{"keys": [...]}` at `/jwks`; the test may swap the key set at any time
(to publish a new `kid`, as an issuer rotating its keys does)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JWKS_PATH = "/jwks"


class JwksServer:
    def __init__(self, keys: Iterable[Mapping[str, Any]] = ()) -> None:
        self._lock = threading.Lock()
        self._keys: list[dict[str, Any]] = [dict(key) for key in keys]
        self._requests = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="jwks-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{JWKS_PATH}"

    @property
    def requests(self) -> int:
        """How many times the key set was served."""
        with self._lock:
            return self._requests

    def set_keys(self, keys: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            self._keys = [dict(key) for key in keys]

    def _body(self) -> bytes:
        with self._lock:
            self._requests += 1
            return json.dumps({"keys": self._keys}).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != JWKS_PATH:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                body = server._body()
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test output is no place for an access log."""

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@contextmanager
def serving_jwks(keys: Iterable[Mapping[str, Any]] = ()) -> Iterator[JwksServer]:
    server = JwksServer(keys)
    server.start()
    try:
        yield server
    finally:
        server.stop()
