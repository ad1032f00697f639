# todo-api: `make run` serves the API, `make test` runs every check. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := $(UV) run --locked
m ?= change

.PHONY: help install node-deps run test lint fmt typecheck contracts unit integration openapi migrate revision db-up db-down bench load clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(if $(findstring .tools,$(UV)),.tools/bin/uv) ## create .venv from uv.lock
	$(UV) sync --locked

run: install migrate ## migrate and serve on http://127.0.0.1:8000 (embedded PostgreSQL unless DATABASE_URL)
	$(RUN) python -m todo_api

test: install lint typecheck contracts unit integration ## everything CI runs

lint: install ## ruff lint and format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

fmt: install ## apply ruff fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

typecheck: install ## mypy --strict
	$(RUN) mypy

contracts: install ## import-linter: the core stays framework-free, adapters stay apart
	$(RUN) lint-imports

unit: install ## fast tests, no I/O
	$(RUN) pytest tests/unit -q

# Node packages for the suites that use a real Better Auth server, the TypeScript client check and
# the real-browser CORS test, and clients/typescript (its tests run against a live server).
NODE_DIRS := tests/integration/better_auth tests/integration/openapi_client tests/integration/browser clients/typescript
node-deps: ## npm ci where a suite needs Node packages (says so when npm is missing)
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "!! npm is missing: the Better Auth and TypeScript-client tests will not run (install nodejs and npm)"; \
	else for d in $(NODE_DIRS); do \
	  if [ -f $$d/package-lock.json ] && [ ! $$d/node_modules/.package-lock.json -nt $$d/package-lock.json ]; then \
	    (cd $$d && npm ci --no-audit --no-fund --loglevel=error) || exit 1; \
	  fi; done; fi

integration: install node-deps ## tests against a real PostgreSQL
	$(RUN) pytest tests/integration -q

openapi: install ## write openapi.json (the committed contract) from the app; `make test` fails while it differs
	$(RUN) python -m todo_api openapi openapi.json

migrate: install ## apply migrations to DATABASE_URL (or the embedded server)
	$(RUN) alembic upgrade head

revision: install ## autogenerate a migration: make revision m="add things"
	$(RUN) alembic revision --autogenerate -m "$(m)"

db-up: install ## start the embedded PostgreSQL in the background and print its URL
	$(RUN) python -m todo_api.adapters.sql.embedded start $(EMBEDDED_DATA_DIR)

db-down: install ## stop the embedded PostgreSQL
	$(RUN) python -m todo_api.adapters.sql.embedded stop $(EMBEDDED_DATA_DIR)

bench: install ## API vs a bare asyncpg baseline, same run: req/s, p50/p99, ratios, RSS (workers=N)
	$(RUN) python -m bench $(if $(workers),--workers $(workers))
	$(RUN) python -m bench.recurring
	$(RUN) python -m bench mcp $(if $(workers),--workers $(workers))

load: install ## 60 s of mixed traffic on 2 workers: errors, p50/p99, memory before/after
	$(RUN) python -m bench load $(if $(workers),--workers $(workers))

clean: ## remove the environment, caches and the embedded database's data
	-$(RUN) python -m todo_api.adapters.sql.embedded stop $(EMBEDDED_DATA_DIR) 2>/dev/null
	rm -rf .venv .tools .data .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
