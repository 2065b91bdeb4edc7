"""The figure table is the one place a figure is named: no other module of the tools spells a
figure's key as a string (the hand-kept lists it replaced had drifted apart)."""

from __future__ import annotations

import ast
from pathlib import Path

from loadtests.figures import FIGURES

ROOT = Path(__file__).resolve().parents[2]
# The servers under test keep their own documents' names (the judge shares no code with them).
NOT_THE_TOOLS = {"reference_server", "examples", "tests", ".venv", ".nox", "build"}


def spelled(keys: set[str], root: Path = ROOT) -> dict[str, set[str]]:
    """Each key, and the non-test modules of the tools that hold it as a string constant."""
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        if NOT_THE_TOOLS & set(path.relative_to(root).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in keys:
                found.setdefault(node.value, set()).add(str(path.relative_to(root)))
    return found


def test_a_figure_key_is_spelled_in_one_module_at_most() -> None:
    keys = {f.key for f in FIGURES}
    twice = {key: where for key, where in spelled(keys).items() if len(where) > 1}
    assert twice == {}


def test_the_check_finds_a_key_spelled_outside_the_table(tmp_path: Path) -> None:
    """The scan itself: a second module that reads a figure by its key string is found; the
    server's own modules and the tests are not the tools'."""
    for where in ("loadtests/figures.py", "loadtests/compare.py", "reference_server/app.py"):
        (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / where).write_text('KEY = "lost"\n')
    assert spelled({"lost"}, tmp_path) == {"lost": {"loadtests/figures.py", "loadtests/compare.py"}}
