"""Both forms of the stream client wait alike: what was awaited and what came instead on a
timeout, the wrong frame named on a violation (the blocking form said "no frame in time")."""

from __future__ import annotations

import asyncio

import pytest

from notify_client.blocking import BlockingStreamClient
from notify_client.client import Awaiting, ProtocolViolation, StreamClient
from notify_contract.protocol import WS_NOTIFICATIONS_PATH
from notify_contract.tokens import mint
from notify_stack.fixtures import SECRET
from notify_stack.stack import ServerHandle


def test_a_timeout_says_what_was_awaited_and_what_came() -> None:
    waiting = Awaiting("connected", 1.0, ("heartbeat",))
    assert waiting.done("heartbeat", {}) is False
    assert waiting.done("heartbeat", {}) is False
    assert str(waiting.timed_out()) == "no `connected` within 1 s; got 2 heartbeat"
    with pytest.raises(ProtocolViolation, match="expected `connected`, got pong"):
        waiting.done("pong", "pong")
    assert waiting.done("connected", {}) is True


async def test_both_forms_time_out_alike_on_a_real_stream(server: ServerHandle) -> None:
    token = mint("expect-both", SECRET)
    stream = await StreamClient.open(server.base, WS_NOTIFICATIONS_PATH, token)
    await stream.expect("connected")
    with pytest.raises(TimeoutError) as asynchronous:
        await stream.expect("notification", timeout=0.3)
    await stream.close()

    def blocking() -> str:
        client = BlockingStreamClient.open(server.base, WS_NOTIFICATIONS_PATH, token)
        client.expect("connected")
        try:
            client.expect("notification", timeout=0.3)
        except TimeoutError as exc:
            return str(exc)
        finally:
            client.close()
        return "no timeout"

    said = await asyncio.to_thread(blocking)
    assert said.startswith("no `notification` within 0.3 s; got ")
    assert str(asynchronous.value).startswith("no `notification` within 0.3 s; got ")
