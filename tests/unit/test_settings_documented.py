"""Every setting the code reads has a row in the README's configuration table, and every row names
a setting the code reads."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from todo_api.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def readme_names() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| variable | default | meaning |") :]
    names: set[str] = set()
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def environment_reads() -> set[str]:
    """Names read with `os.environ.get("X")`, `os.environ["X"]` or `"X" in os.environ` outside Settings."""
    found: set[str] = set()
    for path in (ROOT / "src" / "todo_api").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            target = None
            if isinstance(node, ast.Call) and ast.unparse(node.func) in {"os.environ.get", "os.getenv"}:
                target = node.args[0] if node.args else None
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                target = node.slice
            elif isinstance(node, ast.Compare) and any(ast.unparse(c) == "os.environ" for c in node.comparators):
                target = node.left
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                found.add(target.value)
    return found


def test_every_settings_field_has_a_readme_row() -> None:
    assert {name.upper() for name in Settings.model_fields} - readme_names() == set()


def test_every_variable_read_outside_settings_has_a_readme_row() -> None:
    assert environment_reads() - readme_names() == set()


def test_every_readme_row_is_a_setting_the_code_reads() -> None:
    assert readme_names() - {name.upper() for name in Settings.model_fields} - environment_reads() == set()
