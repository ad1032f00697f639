"""Schemathesis against the app's own OpenAPI document, in-process over ASGI, on the real PostgreSQL.

Alice and Bob sign up through the API. Every generated request is Alice's (a bearer token); Bob is
her peer, so the `object_level_authorization` check replays Alice's successful reads with Bob's
token and fails if he gets her object. Every built-in check is on (ENABLED_CHECKS, asserted against
Schemathesis' registry), with its default settings: no server errors, documented status codes,
content types, response schemas and headers, schema-valid data accepted and invalid data rejected
(generation mode `all`: every phase also sends negative data), `ignored_auth`, `use_after_free`,
`ensure_resource_availability`, `missing_required_header`, `unsupported_method`, `Allow`, and
`max_response_time`, which only a limit turns on (a generous one: it catches a hang, not slowness).
One check of ours rides along: a path naming another user's tasks never succeeds.

Runs: each operation on its own (the examples, coverage and fuzzing phases), then stateful
scenarios along the links Schemathesis infers between operations (create a task -> read, replace,
patch, complete, delete it; list -> read; sign up -> the new user's tasks...), each scenario from the
same database state, once with `/api/me/...` paths and once with Alice's id in them. Generation is
deterministic and Hypothesis' example database is off, so CI runs the same cases every time; the
last test checks the budget (at least MIN_TOTAL_CASES cases, Bob's token used), and the counts are
printed in the terminal summary.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.generation.stateful import APIStateMachine
from schemathesis.python import asgi

from tests.integration.conftest import make_settings
from tests.integration.schemathesis_support import (
    Account,
    CaseCounter,
    RequestCounter,
    ScenarioReset,
    other_users_paths_refused,
    sign_up,
)
from tests.integration.scripted_model import ScriptedModel, scripted_model
from todo_api.main import create_app

pytestmark = pytest.mark.integration

SEED = 20_251_122
# Fuzzing examples per operation, on top of the schema's examples and the coverage phase's cases.
MAX_EXAMPLES_PER_OPERATION = 50
STATEFUL_SCENARIOS = 100  # per path form, see test_stateful_scenarios_conform
STATEFUL_MAX_STEPS = 10
MIN_TOTAL_CASES = 1_000
OWN_PATH_PROBABILITY = 0.9
MAX_RESPONSE_TIME_S = 30.0
CHECKS_CONFIG: dict[str, Any] = {"enabled": True, "max_response_time": MAX_RESPONSE_TIME_S}

ALICE, BOB = "alice", "bob"
# GET /events answers an endless text/event-stream, which Schemathesis' ASGI transport would wait on
# for ever: test_events_stream.py and test_events_scale_out.py test it on a real server. (POST
# /events/tickets stays in, like every other operation.)
NOT_STREAMED: dict[str, Any] = {"include-operation-id": "streamEvents", "enabled": False}

COUNTER = CaseCounter()


@pytest.fixture(scope="module")
def access_log_quiet() -> Iterator[None]:
    """Thousands of requests: keep the access log out of failure reports, but not warnings and crashes."""
    access_log = logging.getLogger("todo_api.access")
    level = access_log.level
    access_log.setLevel(logging.WARNING)
    yield
    access_log.setLevel(level)


@pytest.fixture(scope="module")
def requests_seen() -> RequestCounter:
    """Counts every request the apps receive, by the identity it carries (the checks' probes included)."""
    return RequestCounter()


@pytest.fixture(scope="module")
def chat_model() -> Iterator[ScriptedModel]:
    """The chat routes' model: a scripted one that answers every turn at once (test_chat.py scripts tools)."""
    with scripted_model() as model:
        yield model


@pytest.fixture
def st_app(
    database_url: str, requests_seen: RequestCounter, access_log_quiet: None, chat_model: ScriptedModel
) -> Iterator[RequestCounter]:
    """A fresh app per test. Schemathesis serves it from its own event loop (which the connection pool must not
    share with the session's `app`) and ends its lifespan after each test, which closes what create_app opened."""
    settings = make_settings(chat_base_url=chat_model.base_url, chat_model="scripted")
    requests_seen.app = create_app(settings, database_url=database_url)
    try:
        yield requests_seen
    finally:
        asgi.shutdown_lifespans()
        requests_seen.app = None


@pytest.fixture
def accounts(st_app: RequestCounter) -> tuple[Account, Account]:
    """Alice and Bob, signed up through the API (every table is emptied after each test, so per test)."""
    alice, bob = sign_up(st_app, ALICE), sign_up(st_app, BOB)
    st_app.identities = {f"Bearer {user.access_token}": user.name for user in (alice, bob)}
    return alice, bob


# Rejections of schema-valid input that depend on server state no JSON Schema can describe; the
# check still holds every other status of these operations (and every status of the others).
_DEFAULT_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
STATEFUL_REJECTIONS = [
    # If-Match names a version the task is not at: 412 is RFC 9110's answer.
    *(
        {
            "include-operation-id": operation,
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "412"]}},
        }
        for operation in ("deleteTask", "toggleTaskCompletion", "updateList", "deleteList")
    ),
    # The same, or a recurrence or reminder the schema cannot judge: a rule part outside what is
    # supported, an unknown zone, a rule without `due_at`, a reminder before no due date (422); a
    # skip of a task that does not recur (422 not_recurring).
    *(
        {
            "include-operation-id": operation,
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "412", "422"]}},
        }
        for operation in ("replaceTask", "updateTask", "skipOccurrence")
    ),
    # A cursor the API did not issue (400), a window whose `to` is not after `from` (422 invalid_window).
    {
        "include-operation-id": "listReminders",
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "400", "422"]}},
    },
    # A snooze of no time at all (PT0S) or past P366D: 422 invalid_duration.
    {
        "include-operation-id": "snoozeReminder",
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "422"]}},
    },
    # A cursor the API did not issue (or issued for another sort): 400 invalid_cursor.
    {
        "include-operation-id": "listLists",
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "400"]}},
    },
    # The same, or `sort=position` without one group of siblings to order (422 position_needs_group:
    # which parameters must come together is more than the schema says).
    {
        "include-operation-id": "listTasks",
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "400", "422"]}},
    },
    # A move the tasks' places forbid (under its own subtask, past four levels, next to a task of
    # another parent than the one named), or a stale If-Match.
    # A list placed next to itself (422 invalid_move: the schema cannot say "not this path's id").
    *(
        {
            "include-operation-id": operation,
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "412", "422"]}},
        }
        for operation in ("moveTask", "moveList")
    ),
    # Tasks that do not exist (422 bulk_not_applied), more than 100 tasks over all operations
    # (too_many_tasks: JSON Schema cannot bound a sum), or a reused Idempotency-Key.
    {
        "include-operation-id": "bulkChangeTasks",
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "422"]}},
    },
    # A sync token past the feed's position (a token this feed never issued) or older than what
    # retention kept: 410 sync_token_expired, whatever digits the schema allows.
    {
        "include-operation-id": "listChanges",
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "410"]}},
    },
    # Restores only find something after a delete, but the links Schemathesis infers send them after
    # every create, where they 404 and crowd out the reads the object-level authorization check
    # replays as Bob. They keep every other phase (and test_change_feed.py restores for real).
    *(
        {"include-operation-id": operation, "phases": {"stateful": {"enabled": False}}}
        for operation in ("restoreTask", "restoreList")
    ),
    # The same for what only works on state the links cannot build (a recurring task to skip, a
    # reminder to snooze), what ends Alice's own session or account mid-scenario (every later step
    # is a 401), and the writes over all her tasks and the chat, which every create links to: they
    # crowd the replayed reads out of a scenario. Every other phase still runs them with every check.
    *(
        {"include-operation-id": operation, "phases": {"stateful": {"enabled": False}}}
        for operation in (
            "skipOccurrence",
            "snoozeReminder",
            "completeAllTasks",
            "clearCompletedTasks",
            "endSession",
            "deleteCurrentUser",
            "chat",
        )
    ),
    # A list restored past the cap on lists: 422 too_many_lists.
    {
        "include-operation-id": "restoreList",
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "422"]}},
    },
    # A webhook target the schema cannot judge: a host that does not resolve or resolves to a private
    # address (422 invalid_webhook_url, unsafe_webhook_url), or an 11th webhook (too_many_webhooks).
    {
        "include-operation-id": "createWebhook",
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "422"]}},
    },
    # A delivery-log, conversation or message cursor the API did not issue: 400 invalid_cursor.
    *(
        {
            "include-operation-id": operation,
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "400"]}},
        }
        for operation in ("listWebhookDeliveries", "listConversations", "listConversationMessages")
    ),
    # An Idempotency-Key already used with another body: 422 idempotency_key_reused.
    {
        "include-operation-id": "createTask",
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "422"]}},
    },
    # A time zone name the schema cannot judge (any string of 1-64 characters): 422 unknown_time_zone.
    {
        "include-operation-id": "getSummary",
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "422"]}},
    },
    # Ending a session or the account for real would end the accounts the run acts as: the links
    # Schemathesis infers (listSessions' ids -> endSession) stay off; every other phase keeps them,
    # where a drawn session id is no one's (404) and a drawn password is wrong (403).
    *(
        {"include-operation-id": operation, "phases": {"stateful": {"enabled": False}}}
        for operation in ("endSession", "deleteCurrentUser")
    ),
    # A password on the 20,000-entry common list: 422 weak_password.
    *(
        {
            "include-operation-id": operation,
            "checks": {"positive_data_acceptance": {"expected-statuses": [*_DEFAULT_ACCEPTED, "422"]}},
        }
        for operation in ("signUp", "changePassword")
    ),
]


def load_schema(
    app: RequestCounter, accounts: tuple[Account, Account], directory: Path, *, owners: list[str], own_path: float
) -> schemathesis.BaseSchema:
    """The app's OpenAPI document, configured: `user_id` is drawn from `owners` with probability `own_path`."""
    # Web Fuzzing Commons auth: each user's bearer token as a fixed header.
    wfc = directory / "auth.json"
    entries = [
        {"name": user.name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {user.access_token}"}]}
        for user in accounts
    ]
    wfc.write_text(json.dumps({"auth": entries}))
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "dictionaries": {"owner": {"values": owners}},
            "parameters": {"path.user_id": {"dictionary": "owner", "probability": own_path}},
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES_PER_OPERATION,
                # The same cases locally and in CI (where Hypothesis' `ci` profile would derandomize anyway).
                "deterministic": True,
                "database": "none",
            },
            "checks": CHECKS_CONFIG,
            "operations": [*STATEFUL_REJECTIONS, NOT_STREAMED],
            # Reproductions show the real values; the tokens are throwaway test credentials.
            "output": {"sanitization": {"enabled": False}},
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": STATEFUL_MAX_STEPS},
            },
            # Every generated request is Alice's; Bob's token only replays her reads.
            "auth": {"wfc": {"path": str(wfc), "user": ALICE, "peers": [ALICE, BOB]}},
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    COUNTER.attach(schema)
    return schema


@pytest.fixture
def api_schema(st_app: RequestCounter, accounts: tuple[Account, Account], tmp_path: Path) -> schemathesis.BaseSchema:
    # Alice's own tasks, by alias or by id, most of the time; any other user's (a 403) the rest of it.
    alice, _ = accounts
    return load_schema(st_app, accounts, tmp_path, owners=["me", alice.user_id], own_path=OWN_PATH_PROBABILITY)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """Schemathesis' lazy loader (4.32) reads and rewrites `node._nodeid`, which pytest 9.2 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        setattr(request.node, "_nodeid", request.node.nodeid)  # noqa: B010 - a private name mypy cannot see


@pytest.fixture
def path_guard(accounts: tuple[Account, Account]) -> schemathesis.CheckFunction:
    alice, _ = accounts
    return other_users_paths_refused(own={"me", alice.user_id})


@schema.parametrize()
def test_every_operation_conforms(case: schemathesis.Case[Any], path_guard: schemathesis.CheckFunction) -> None:
    COUNTER.stateless_ran = True
    case.call_and_validate(additional_checks=[path_guard])


@pytest.mark.parametrize("path_owner", ["me", "id"])
def test_stateful_scenarios_conform(
    st_app: RequestCounter,
    accounts: tuple[Account, Account],
    path_guard: schemathesis.CheckFunction,
    tmp_path: Path,
    database_url: str,
    path_owner: str,
) -> None:
    """Once with `/api/me/...` and once with `/api/{alice's id}/...`: the object-level check replays one read per
    run as Bob, and the two forms reach different guards (the task query's owner filter, the path's user check)."""
    COUNTER.stateful_ran = True
    alice, _ = accounts
    owner = "me" if path_owner == "me" else alice.user_id
    machine = load_schema(st_app, accounts, tmp_path, owners=[owner], own_path=1.0).as_state_machine()
    with ScenarioReset(database_url, keep_user_ids=[user.user_id for user in accounts]) as reset:

        def setup(self: APIStateMachine) -> None:
            reset()
            machine.setup(self)

        def validate_response(
            self: APIStateMachine,
            response: schemathesis.Response,
            case: schemathesis.Case[Any],
            additional_checks: list[schemathesis.CheckFunction] | None = None,
            **kwargs: Any,
        ) -> None:
            checks = [*(additional_checks or []), path_guard]
            machine.validate_response(self, response, case, additional_checks=checks, **kwargs)

        steps = {"setup": setup, "validate_response": validate_response}
        scenario = cast(type[APIStateMachine], type("FromAFreshDatabase", (machine,), steps))
        scenario.run(
            settings=hypothesis.settings(
                max_examples=STATEFUL_SCENARIOS,
                stateful_step_count=STATEFUL_MAX_STEPS,
                deadline=None,
                derandomize=True,
                database=None,
                # Generation only, as Schemathesis runs its state machines: shrinking replays a failing
                # scenario against the state it left behind.
                phases=[hypothesis.Phase.generate],
                suppress_health_check=list(hypothesis.HealthCheck),
            )
        )


class _Summary:
    """Prints the counts in pytest's terminal summary, whatever the outcome and the capture mode."""

    def __init__(self, requests_seen: RequestCounter) -> None:
        self.requests_seen = requests_seen

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if COUNTER.total:
            terminalreporter.write_sep("-", "schemathesis")
            for line in [f"checks: {', '.join(enabled_checks())}", *COUNTER.summary(), *self.requests_seen.summary()]:
                terminalreporter.write_line(line)


@pytest.fixture(scope="module", autouse=True)
def _report_counts(requests_seen: RequestCounter, pytestconfig: pytest.Config) -> None:
    if not pytestconfig.pluginmanager.has_plugin(__name__):
        pytestconfig.pluginmanager.register(_Summary(requests_seen), name=__name__)


def enabled_checks() -> list[str]:
    load_all_checks()
    checks = schemathesis.Config.from_dict({"checks": CHECKS_CONFIG}).projects.default.checks
    names = [name for name in sorted(CHECKS.get_all_names()) if checks.get_by_name(name=name).enabled]
    return [*names, *(["max_response_time"] if checks.max_response_time.enabled else [])]


def test_every_check_schemathesis_has_is_enabled() -> None:
    load_all_checks()
    assert set(enabled_checks()) == {*CHECKS.get_all_names(), "max_response_time"}


def test_generated_enough_cases(requests_seen: RequestCounter) -> None:
    if not (COUNTER.stateless_ran and COUNTER.stateful_ran):
        pytest.skip("the generated runs were deselected")
    report = "\n".join([*COUNTER.summary(), *requests_seen.summary()])
    assert COUNTER.total >= MIN_TOTAL_CASES, report
    assert COUNTER.per_mode["negative"] > 0, f"no negative data was sent\n{report}"
    # Bob's token went out: the object-level authorization check replayed Alice's reads as him.
    assert requests_seen.by_identity[BOB] > 0, (
        f"No read of Alice's was replayed as Bob (did a run stop early?)\n{report}"
    )
