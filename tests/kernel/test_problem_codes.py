"""Every error the code raises names a code of the one table, with a status the table allows
for it, and the OpenAPI description of each status names the codes it carries."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from kernel.problem_codes import BY_STATUS, CODES
from kernel.problem_schema import STATUS_MEANINGS
from kernel.problems import Problem

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("auth", "audit", "catalog", "gateway", "kernel", "keystore", "policies", "services")


def raised() -> list[tuple[str, int, int, str]]:
    """(file, line, status, code) of each `Problem(<int>, "<code>", …)` in the packages."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call) or len(node.args) < 2:
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                status, code = node.args[0], node.args[1]
                if name == "Problem" and isinstance(code, ast.Constant):
                    number = status.value if isinstance(status, ast.Constant) else -1
                    found.append((str(path.relative_to(ROOT)), node.lineno, number, code.value))
    return found


def test_the_scan_sees_the_errors():
    codes = {code for *_, code in raised()}
    assert {"grant_required", "insufficient_scope", "quota_exceeded"} <= codes


@pytest.mark.parametrize(("where", "line", "status", "code"), raised())
def test_every_raised_code_is_in_the_table(where: str, line: int, status: int, code: str):
    assert code in CODES, f"{where}:{line}: {code} is not in kernel/problem_codes.py"
    if status != -1:  # a status computed at run time (`exc.status`) is not judged here
        assert status in CODES[code].statuses, f"{where}:{line}: {code} with {status}"


def test_titles_come_from_the_table():
    for name, code in CODES.items():
        assert Problem(min(code.statuses), name, "x").title == code.title
        assert not code.title.isascii()  # user-facing text is Chinese


def test_framework_errors_are_named_once_per_status():
    assert {CODES[code].names_status for code in BY_STATUS.values()} == set(BY_STATUS)
    for status, code in BY_STATUS.items():
        assert status in CODES[code].statuses


def test_the_openapi_meanings_name_every_code_of_their_status():
    for name, code in CODES.items():
        for status in code.statuses & set(STATUS_MEANINGS):
            assert f"`{name}`" in STATUS_MEANINGS[status], (status, name)
