"""The size rules of the code (issue 22): no module outside the tests over 500 lines, and no
function over 80 lines in the modules that grew them (the server's app, the load run, its
summary, the comparison, the fault rows)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = {"tests", ".venv", ".nox", "build", "node_modules"}
MODULE_LINES = 500
FUNCTION_LINES = 80
SHORT_FUNCTIONS = (
    "reference_server/app.py",
    "loadtests/run.py",
    "loadtests/summary.py",
    "loadtests/compare.py",
    "notify_faults/restarts.py",
    "notify_faults/streams.py",
    "notify_faults/attacks.py",
    "notify_faults/bodies.py",
    "notify_faults/load.py",
)


def modules(root: Path = ROOT) -> list[Path]:
    return [p for p in root.rglob("*.py") if not SKIP & set(p.relative_to(root).parts)]


def too_long_modules(root: Path = ROOT) -> dict[str, int]:
    lengths = {str(p.relative_to(root)): len(p.read_text().splitlines()) for p in modules(root)}
    return {name: n for name, n in lengths.items() if n > MODULE_LINES}


def too_long_functions(path: Path) -> dict[str, int]:
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > FUNCTION_LINES:
                found[node.name] = length
    return found


def test_no_module_outside_the_tests_is_over_500_lines() -> None:
    assert too_long_modules() == {}


def test_no_function_over_80_lines_where_they_grew() -> None:
    found = {name: too_long_functions(ROOT / name) for name in SHORT_FUNCTIONS}
    assert {name: f for name, f in found.items() if f} == {}


def test_the_rules_find_what_breaks_them(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(FUNCTION_LINES + 1))
    (tmp_path / "long.py").write_text(f"def grown() -> None:\n{body}\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "long_test.py").write_text("x = 1\n" * (MODULE_LINES + 1))
    assert too_long_functions(tmp_path / "long.py") == {"grown": FUNCTION_LINES + 2}
    (tmp_path / "big.py").write_text("x = 1\n" * (MODULE_LINES + 1))
    assert too_long_modules(tmp_path) == {"big.py": MODULE_LINES + 1}
