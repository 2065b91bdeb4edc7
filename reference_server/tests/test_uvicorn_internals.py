"""The uvicorn internals the server relies on are there, and an upgrade that moves one fails
with one line naming it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import uvicorn

from reference_server import uvicorn_internals
from reference_server.lean import Flag

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def test_the_installed_uvicorn_has_every_internal_the_server_uses() -> None:
    gone = uvicorn_internals.moved()
    assert not gone, (
        f"uvicorn {uvicorn.__version__} moved what reference_server/guard.py, keepalive.py and "
        f"lean.py use (written for uvicorn{uvicorn_internals.WRITTEN_FOR}): {', '.join(gone)}"
    )


def test_a_moved_attribute_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        uvicorn_internals, "WS_STATE", (*uvicorn_internals.WS_STATE, "ping_payload_v2")
    )
    assert uvicorn_internals.moved() == ["WebSocketsSansIOProtocol.ping_payload_v2"]


def test_a_call_the_stand_in_cannot_take_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(Flag, "clear")
    assert uvicorn_internals.moved() == ["self.writable.clear() (lean.Flag lacks it)"]


def test_pyproject_bounds_uvicorn_to_the_releases_it_was_written_for() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    server = project["optional-dependencies"]["server"]
    assert f"uvicorn{uvicorn_internals.WRITTEN_FOR}" in server
