"""The size rules of the source: modules under 500 lines, functions at most 50.

ruff enforces complexity (C901 <= 12) and statements (PLR0915 <= 40); lines are
checked here, with the standard library's ``ast``: a function's length is from
its first statement after the docstring to its last line.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "sim_engine"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 50


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    first = body[0]
    docstring = (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )
    start = body[1].lineno if docstring and len(body) > 1 else first.lineno
    end = node.end_lineno if node.end_lineno is not None else node.lineno
    return end - start + 1


def test_the_rules_see_the_whole_package() -> None:
    assert len(_modules()) > 60


def test_no_module_over_500_lines() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, long


def test_no_function_over_50_lines() -> None:
    long: dict[str, int] = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if (n := _body_lines(node)) > MAX_FUNCTION_LINES:
                long[f"{path.relative_to(SRC)}:{node.lineno} {node.name}"] = n
    assert not long, long
