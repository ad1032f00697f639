# syntax=docker/dockerfile:1.7
# uv exactly as pinned in pyproject.toml ([tool.uv] required-version) and the Makefile (UV_VERSION):
# the uv that wrote uv.lock reads it here too (tests/unit/test_docker.py holds them equal).
FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# Build: resolve and install from uv.lock into /app/.venv (no dev tools, no embedded PostgreSQL).
FROM python:3.11-slim AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY src ./src
RUN uv sync --locked --no-dev

# Run: the virtualenv, the code and the migrations; an unprivileged user.
FROM python:3.11-slim
RUN useradd --system --uid 10001 app
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY --from=build /app/src /app/src
COPY alembic.ini ./
COPY migrations ./migrations
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=8000 ENVIRONMENT=production
USER app
EXPOSE 8000
# Liveness: the process answers (a database outage is /readyz's business, not a reason to restart).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["python", "-m", "todo_api"]
