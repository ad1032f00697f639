"""Pydantic's validation errors in our words: a stable `code` and a message a form can show.

A request schema refuses most bad input before the domain sees it, so the codes a client reads
for a field (`invalid_email`, `title_too_long`...) are decided here, by where the error is (`loc`)
and pydantic's error type; pydantic's own types and wording never leave. The domain's 422 codes
(`InvalidInput`) are listed too: every 422 carries `errors: [{loc, code, message}]` with codes from
FIELD_ERROR_CODES, the enum OpenAPI publishes and docs/api.md lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from todo_api.domain.chat import MAX_MESSAGE_CHARS
from todo_api.domain.lists import MAX_LIST_NAME_CHARS
from todo_api.domain.tasks import MAX_DESCRIPTION_CHARS, MAX_SEARCH_CHARS, MAX_TAG_CHARS, MAX_TAGS, MAX_TITLE_CHARS
from todo_api.domain.users import MAX_NAME_CHARS, MIN_PASSWORD_CHARS
from todo_api.domain.webhooks import MAX_URL_CHARS

# The codes the translator below produces: for a request's shape, whatever the field...
GENERIC_CODES: Final = (
    "missing_field",
    "unknown_field",
    "wrong_type",
    "too_long",
    "too_short",
    "too_many_items",
    "too_few_items",
    "out_of_range",
    "invalid_choice",
    "invalid_format",
    "invalid_datetime",
    "invalid_header",
    "invalid_value",
    "null_not_allowed",
)
# ...and for a field with rules of its own.
FIELD_CODES: Final = (
    "invalid_email",
    "password_too_short",
    "password_too_long",
    "invalid_name",
    "invalid_title",
    "title_too_long",
    "invalid_description",
    "invalid_tag",
    "too_many_tags",
    "invalid_priority",
    "invalid_sort",
    "invalid_limit",
    "invalid_search",
    "invalid_parent",
    "invalid_list_name",
    "invalid_color",
    "invalid_move",
    "invalid_message",
    "invalid_webhook_url",
    "unknown_event_type",
    "invalid_recurrence",
    "unknown_time_zone",
    "invalid_duration",
)
# The codes `InvalidInput` is raised with (domain/, use_cases/, adapters/): each is a 422's own
# `code` and the code of its one field error.
DOMAIN_CODES: Final = (
    "invalid_input",
    "invalid_value",
    "invalid_email",
    "invalid_name",
    "password_too_short",
    "password_too_long",
    "weak_password",
    "invalid_title",
    "invalid_description",
    "invalid_tag",
    "too_many_tags",
    "invalid_priority",
    "naive_datetime",
    "invalid_sort",
    "invalid_limit",
    "invalid_search",
    "invalid_parent",
    "invalid_filter",
    "position_needs_group",
    "null_not_allowed",
    "idempotency_key_reused",
    "invalid_list_name",
    "invalid_color",
    "too_many_lists",
    "list_mismatch",
    "too_deep",
    "cycle",
    "not_a_sibling",
    "invalid_move",
    "too_many_tasks",
    "invalid_bulk_operation",
    "invalid_message",
    "invalid_webhook_url",
    "unsafe_webhook_url",
    "unknown_event_type",
    "too_many_webhooks",
    "invalid_recurrence",
    "unknown_time_zone",
    "invalid_reminder",
    "too_many_reminders",
    "invalid_duration",
    "invalid_window",
    "not_recurring",
    "task_completed",
    "series_ended",
)
FIELD_ERROR_CODES: Final = tuple(dict.fromkeys((*GENERIC_CODES, *FIELD_CODES, *DOMAIN_CODES)))

_KINDS: Final[Mapping[str, str]] = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "none_required": "null",
}
_RANGE: Final[Mapping[str, str]] = {
    "greater_than_equal": "at least {ge}",
    "greater_than": "more than {gt}",
    "less_than_equal": "at most {le}",
    "less_than": "less than {lt}",
}
_DATETIME_ERRORS: Final = frozenset(
    {"datetime_type", "datetime_parsing", "datetime_from_date_parsing", "timezone_aware", "datetime_object_invalid"}
)
_DATETIME_FIELDS: Final = frozenset({"due_at", "due_before", "due_after"})
_TAG_FIELDS: Final = frozenset({"tags", "tag", "add_tags", "remove_tags"})
_BULK_OPS: Final = frozenset({"complete", "reopen", "delete", "move", "update"})  # the union's tags
_DATETIME_MESSAGE = "A date-time with a time zone, e.g. 2026-12-01T17:00:00Z."

FieldError = dict[str, Any]


def field_errors(raw: Sequence[Any], *, path: str) -> list[FieldError]:
    """One of ours per pydantic error; `path` tells a list's `name` from a person's."""
    return [translate(dict(error), path=path) for error in raw]


def translate(error: Mapping[str, Any], *, path: str) -> FieldError:
    loc: list[str | int] = []
    for part in error.get("loc", ()):
        if _is_union_branch(part) or (part in _BULK_OPS and loc and isinstance(loc[-1], int)):
            continue
        loc.append(part)
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    names = [part for part in loc if isinstance(part, str)]
    field = names[-1] if names else ""
    item = bool(loc) and isinstance(loc[-1], int)  # an element of a list (a tag), not the list
    decided = _by_field(field, kind, ctx, error.get("input"), item=item, where=str(loc[0]) if loc else "", path=path)
    code, message = decided or _by_kind(kind, ctx, where=str(loc[0]) if loc else "", field=field, loc=loc)
    return {"loc": loc, "code": code, "message": message}


def _is_union_branch(part: object) -> bool:
    """pydantic names the branch of a union it tried (`str`, `function-after[...]`, `complete`);
    a client knows its fields, not our types."""
    return isinstance(part, str) and (part in {"str", "int", "bool", "list[str]"} or "[" in part)


def _by_kind(kind: str, ctx: Mapping[str, Any], *, where: str, field: str, loc: list[Any]) -> tuple[str, str]:
    if kind == "missing":
        if loc == ["body"]:
            return "missing_field", "The request needs a JSON body."
        return "missing_field", "This field is required." if where != "header" else "This header is required."
    if kind == "extra_forbidden":
        return "unknown_field", "This field is not accepted here."
    if kind == "null_not_allowed":
        return "null_not_allowed", "This field cannot be null; leave it out instead."
    if where == "header":
        return "invalid_header", "This header's value is not valid."
    if kind in _KINDS:
        return "wrong_type", f"Expected {_KINDS[kind]}."
    if kind in _DATETIME_ERRORS:
        return "invalid_datetime", _DATETIME_MESSAGE
    if kind == "string_too_long":
        return "too_long", f"At most {ctx.get('max_length')} characters."
    if kind == "string_too_short":
        return "too_short", f"At least {ctx.get('min_length')} characters."
    if kind == "too_long":
        return "too_many_items", f"At most {ctx.get('max_length')} items."
    if kind == "too_short":
        return "too_few_items", f"At least {ctx.get('min_length')} item(s)."
    if kind in _RANGE:
        return "out_of_range", f"Must be {_RANGE[kind].format(**ctx)}."
    if kind in {"literal_error", "enum", "union_tag_invalid"}:
        return "invalid_choice", f"Expected one of {_choices(ctx)}."
    if kind == "union_tag_not_found":
        return "missing_field", f"This object needs `{ctx.get('discriminator', '').strip(chr(39))}`."
    if kind == "string_pattern_mismatch":
        return "invalid_format", "This value is not in the accepted format."
    if kind == "value_error" and field in _DATETIME_FIELDS:
        return "invalid_datetime", _DATETIME_MESSAGE
    return "invalid_value", "This value is not accepted."


def _choices(ctx: Mapping[str, Any]) -> str:
    return str(ctx.get("expected") or ctx.get("expected_tags") or "the documented values")


def _blank(value: object) -> bool:
    return isinstance(value, str) and not value.strip()


def _longer_than(value: object, limit: int) -> bool:
    return isinstance(value, str) and len(value.strip()) > limit


def _by_field(
    field: str, kind: str, ctx: Mapping[str, Any], value: object, *, item: bool, where: str, path: str
) -> tuple[str, str] | None:
    """A field's own code for the ways its value can be wrong; None: the generic one applies."""
    if kind in {"missing", "extra_forbidden", "null_not_allowed"} or kind in _KINDS:
        return None
    if field == "email":
        return "invalid_email", "This is not a valid e-mail address."
    if field in {"password", "new_password"} and kind in {"string_too_short", "string_too_long"}:
        if kind == "string_too_short":
            return "password_too_short", f"A password has at least {MIN_PASSWORD_CHARS} characters."
        return "password_too_long", f"A password has at most {ctx.get('max_length')} characters."
    if field == "title" and where == "body":
        if _longer_than(value, MAX_TITLE_CHARS):
            return "title_too_long", f"A title has at most {MAX_TITLE_CHARS} characters."
        if _blank(value):
            return "invalid_title", "A title may not be blank."
        return "invalid_title", "A title may not contain control characters."
    if field in _TAG_FIELDS:
        if not item and kind == "too_long":
            return "too_many_tags", f"A task has at most {MAX_TAGS} tags."
        if item:
            return "invalid_tag", f"A tag has 1 to {MAX_TAG_CHARS} characters, without control characters."
    if field == "description":
        limit = ctx.get("max_length", MAX_DESCRIPTION_CHARS)
        return "invalid_description", f"A description has at most {limit} characters, and no NUL."
    if field == "name" and where == "body":
        if "/lists" in path:
            return "invalid_list_name", f"A list name has 1 to {MAX_LIST_NAME_CHARS} characters, not blank."
        return "invalid_name", f"A name has at most {MAX_NAME_CHARS} characters, and no NUL."
    if field == "color":
        return "invalid_color", "A colour is a palette name (see the schema) or #rrggbb, e.g. #3b82f6."
    if field == "priority":
        return "invalid_priority", "A priority is one of none, low, medium, high."
    if field == "sort":
        return (
            "invalid_sort",
            "Sort by created_at, updated_at, due_at, priority, title or position; `-` for descending.",
        )
    if field == "limit" and kind in _RANGE:
        return "invalid_limit", f"`limit` is between {ctx.get('ge', 1)} and {ctx.get('le', 'the maximum')}."
    if field == "q":
        return "invalid_search", f"A search has at most {MAX_SEARCH_CHARS} characters."
    if field == "parent_id" and where == "query":
        return "invalid_parent", "`parent_id` is either `none` or one task's id."
    if field in _DATETIME_FIELDS:
        return "invalid_datetime", _DATETIME_MESSAGE
    if field in {"before_id", "after_id"} or (kind == "value_error" and "before_id" in str(ctx.get("error", ""))):
        return ("invalid_move", "Send `before_id` or `after_id`, not both.") if kind == "value_error" else None
    if field == "message" and where == "body":
        return "invalid_message", f"A message has 1 to {MAX_MESSAGE_CHARS} characters."
    if field == "url" and where == "body":
        return "invalid_webhook_url", f"An https URL of at most {MAX_URL_CHARS} characters."
    if field == "rule" and where == "body":
        return "invalid_recurrence", "A recurrence rule is an RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=MO."
    if field in {"timezone", "tz"}:
        return "unknown_time_zone", "An IANA time zone, e.g. Europe/Berlin."
    if field in {"before", "duration"} and where == "body":
        return "invalid_duration", "An ISO 8601 duration in weeks, days, hours, minutes or seconds, e.g. PT15M."
    if field == "event_types" and item:
        return "unknown_event_type", f"Expected one of {_choices(ctx)}."
    return None
