"""Deliberately broken variants of the reference server: the contract suite must catch each.

    BROKEN_FAULT=leak python -m contract_tests.tests.broken_server --port 8000

Each fault patches one behaviour in this process, then runs the reference server as usual.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import reference_server.app
from reference_server import __main__ as server_main
from reference_server import logs, protocol
from reference_server.hub import Hub
from reference_server.protocol import FrameType, Outgoing


def leak() -> None:
    """A user's notification reaches every user's streams."""
    original = Hub.to_user_locked

    def to_user_locked(self: Hub, user_id: str, item: Outgoing) -> None:
        for user in self.users():
            original(self, user, item)

    Hub.to_user_locked = to_user_locked  # type: ignore[method-assign]


def no_limit() -> None:
    """The per-user limit is not enforced."""
    original = Hub.__init__

    def init(self: Hub, max_per_user: int, *args: Any, **kwargs: Any) -> None:
        original(self, 10**9, *args, **kwargs)

    Hub.__init__ = init  # type: ignore[method-assign]


def frame_shape() -> None:
    """Notifications go out as {"type", "payload"} instead of {"type", "data"}."""
    original = protocol.encode

    def encode(frame_type: FrameType, data: dict[str, Any]) -> str:
        if frame_type is FrameType.NOTIFICATION:
            return json.dumps({"type": "notification", "payload": data})
        return original(frame_type, data)

    protocol.encode = encode


def no_heartbeat() -> None:
    """No heartbeat frames."""

    async def silent(hub: Hub, interval: float) -> None:
        await asyncio.Event().wait()

    reference_server.app._heartbeats = silent


def task_broadcast() -> None:
    """Progress of a task goes to every task stream."""

    def to_task_locked(self: Hub, task_id: str, item: Outgoing) -> None:
        tasks: dict[str, Any] = self._tasks
        for key in list(tasks):
            original(self, key, item)

    original = Hub.to_task_locked
    Hub.to_task_locked = to_task_locked  # type: ignore[method-assign]


def log_token() -> None:
    """Log lines keep the query string, token included."""
    logs.redact = lambda text: text


FAULTS: dict[str, Callable[[], None]] = {
    "log-token": log_token,
    "leak": leak,
    "no-limit": no_limit,
    "frame-shape": frame_shape,
    "no-heartbeat": no_heartbeat,
    "task-broadcast": task_broadcast,
}


if __name__ == "__main__":
    FAULTS[os.environ["BROKEN_FAULT"]]()
    sys.exit(server_main.main(sys.argv[1:]))
