"""What the harness knows of the reference server without importing it matches the server."""

from __future__ import annotations

from notify_stack import stack
from reference_server import protocol, redis_bus
from reference_server.settings import Settings


def test_the_harness_names_are_the_servers() -> None:
    assert stack.METRICS_PATH == protocol.METRICS_PATH
    assert stack.BUS_CLIENT == redis_bus.BUS_CLIENT
    assert stack.FEED_CLIENT == redis_bus.FEED_CLIENT


def test_no_server_setting_leaks_into_a_started_server() -> None:
    uncovered = [
        name.upper()
        for name in Settings.model_fields
        if not name.upper().startswith(stack.SETTING_PREFIXES)
    ]
    assert uncovered == []
