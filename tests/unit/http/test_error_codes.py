"""The codes a client can branch on are one closed list, the same in four places: what the code
raises and translates, the enums of /openapi.json, and the tables of docs/api.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import httpx

from todo_api.adapters.http.field_errors import DOMAIN_CODES, FIELD_CODES, FIELD_ERROR_CODES, GENERIC_CODES
from todo_api.adapters.http.problems import _CODE_BY_STATUS, ALL_PROBLEM_CODES, PROBLEM_CODES

ROOT = Path(__file__).resolve().parents[3]
SOURCE = ROOT / "src" / "todo_api"
API_DOC = ROOT / "docs" / "api.md"


def _trees() -> list[ast.Module]:
    return [ast.parse(path.read_text()) for path in sorted(SOURCE.rglob("*.py")) if "mcp" not in path.parts]


def _code_keyword(call: ast.Call) -> str | None:
    for keyword in call.keywords:
        if keyword.arg == "code" and isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
            return keyword.value.value
    return None


def raised_codes(kind: str | None = None) -> set[str]:
    """`code="..."` passed to any call (to `kind`'s constructor only, when given), and the class-level
    `code = "..."` of the error kinds."""
    found: set[str] = set()
    for tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (code := _code_keyword(node)) is not None:
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if kind is None or name == kind:
                    found.add(code)
            elif kind is None and isinstance(node, ast.ClassDef):
                for statement in node.body:
                    if (
                        isinstance(statement, ast.Assign)
                        and [getattr(t, "id", None) for t in statement.targets] == ["code"]
                        and isinstance(statement.value, ast.Constant)
                    ):
                        found.add(str(statement.value.value))
    return found


def translated_codes() -> set[str]:
    """The first element of every `return "code", message` in the translator."""
    tree = ast.parse((SOURCE / "adapters" / "http" / "field_errors.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and node.value.elts:
            first = node.value.elts[0]
            if isinstance(first, ast.Constant):
                found.add(str(first.value))
        if isinstance(node, ast.IfExp) and isinstance(node.body, ast.Tuple):
            found.add(node.body.elts[0].value)  # type: ignore[attr-defined]
    return found


def doc_table(heading: str) -> dict[str, set[str]]:
    """The rows of the table under `heading` in docs/api.md: first cell -> the `codes` in the last."""
    text = API_DOC.read_text()
    section = text[text.index(heading) :]
    rows: dict[str, set[str]] = {}
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = set(re.findall(r"`([a-z_]+)`", cells[-1]))
    return rows


def test_the_domain_422_codes_are_exactly_those_invalid_input_is_raised_with() -> None:
    assert raised_codes("InvalidInput") | {"invalid_input"} == set(DOMAIN_CODES)


def test_the_translator_produces_exactly_the_schema_codes_it_declares() -> None:
    assert translated_codes() == set(GENERIC_CODES) | set(FIELD_CODES)


def test_every_code_the_source_raises_is_a_declared_problem_code_and_every_declared_one_is_raised() -> None:
    declared = set(ALL_PROBLEM_CODES)
    sent = raised_codes() | set(_CODE_BY_STATUS.values()) | {"validation_failed"}
    assert sent - declared == set(), "raised but not declared in PROBLEM_CODES"
    assert declared - sent == set(), "declared in PROBLEM_CODES but never raised"


def test_each_code_is_declared_under_one_status() -> None:
    codes = [code for codes in PROBLEM_CODES.values() for code in codes]
    assert len(codes) == len(set(codes))


async def test_openapi_publishes_both_lists_as_enums(client: httpx.AsyncClient) -> None:
    schemas: dict[str, Any] = (await client.get("/openapi.json")).json()["components"]["schemas"]

    assert schemas["Problem"]["properties"]["code"]["enum"] == list(ALL_PROBLEM_CODES)
    assert schemas["FieldError"]["properties"]["code"]["enum"] == list(FIELD_ERROR_CODES)


def test_docs_api_md_lists_exactly_the_problem_codes_by_status() -> None:
    table = doc_table("| status | codes |")
    assert {int(status): codes for status, codes in table.items() if status != "status"} == {
        status: set(codes) for status, codes in PROBLEM_CODES.items()
    }


def test_docs_api_md_lists_exactly_the_field_error_codes() -> None:
    table = doc_table("| field error code | when |")
    assert set(table) - {"field error code"} == {f"`{code}`" for code in FIELD_ERROR_CODES}
