"""A small OpenAI-compatible chat-completions server for tests: it answers from a script the test
writes (tool calls, malformed calls, plain answers, failures, or the same call for ever) and keeps
every request it was sent, since no real model is reachable here."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def tool_call(name: str, arguments: str | dict[str, Any], call_id: str | None = None) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id or f"call_{name}_{abs(hash(text)) % 10_000}", "type": "function",
            "function": {"name": name, "arguments": text}}  # fmt: skip


def calls(*tool_calls: dict[str, Any]) -> dict[str, Any]:
    """A reply that asks for these tool calls."""
    return {"role": "assistant", "content": None, "tool_calls": list(tool_calls)}


def answer(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


FAIL = {"fail": 500}
"""A reply slot that answers HTTP 500."""


@dataclass
class ScriptedModel:
    script: list[dict[str, Any]] = field(default_factory=list)
    forever: dict[str, Any] | None = None
    """Once the script is spent: this reply again and again (a model that never stops), else `done`."""
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""

    def reset(self, *script: dict[str, Any], forever: dict[str, Any] | None = None) -> None:
        self.script, self.forever, self.requests = list(script), forever, []

    def next_reply(self) -> dict[str, Any]:
        if self.script:
            return self.script.pop(0)
        return self.forever or answer("done")


@contextmanager
def scripted_model() -> Iterator[ScriptedModel]:
    model = ScriptedModel()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            model.requests.append(body)
            reply = model.next_reply()
            if "fail" in reply:
                self._send(reply["fail"], {"error": {"message": "scripted failure", "type": "server_error"}})
                return
            finish = "tool_calls" if reply.get("tool_calls") else "stop"
            completion = {
                "id": f"chatcmpl-{len(model.requests)}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "message": reply, "finish_reason": finish}],
            }
            self._send(200, completion)

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    model.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield model
    finally:
        server.shutdown()
        server.server_close()
