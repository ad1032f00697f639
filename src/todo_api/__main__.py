"""`python -m todo_api`: serve with uvicorn; with no DATABASE_URL, on an embedded PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
from contextlib import ExitStack

import uvicorn
from pydantic import ValidationError

from todo_api.adapters.sql.embedded import embedded_postgres
from todo_api.config import Settings
from todo_api.logging import configure_logging


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as error:
        reason = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())
        print(f"todo-api: refusing to start: {reason}", file=sys.stderr)
        return 2
    configure_logging(json_logs=settings.json_logs, level=settings.log_level)
    if settings.secret_key is None:
        # Development: one random key shared by every worker (tokens and cursors verify anywhere).
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(32)
    workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
    with ExitStack() as stack:
        if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            # Each worker writes its metrics to files here; a scrape of any worker sums them all.
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="todo-metrics-")
            )
        if settings.database_url is None:
            os.environ["DATABASE_URL"] = stack.enter_context(embedded_postgres(settings.embedded_data_dir))
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how you stop it: exit 0
            uvicorn.run(
                "todo_api.main:create_app",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=workers,
                log_config=None,
                access_log=False,
                proxy_headers=True,
                timeout_graceful_shutdown=20,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
