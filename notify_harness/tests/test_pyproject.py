"""The Pythons the package says it supports are one list: requires-python admits exactly the
versions the classifiers name, and the lock was made for the same range."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.specifiers import SpecifierSet

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
