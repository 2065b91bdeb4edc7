"""Legacy SSE streams (docs/contract.md section 9) in the in-memory mode, against a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from notify_client.client import Closed
from notify_client.driver import Driver
from notify_client.sse_client import SseStream
from notify_stack.fixtures import Servers, token
from notify_stack.stack import ServerHandle
from reference_server.protocol import SSE_NOTIFICATIONS_PATH, SSE_TASKS_PATH

Users = Callable[..., str]


class SseOpener:
    def __init__(self) -> None:
        self.opened: list[SseStream] = []

    async def __call__(
        self,
        server: ServerHandle,
        tok: str | None,
        path: str = SSE_NOTIFICATIONS_PATH,
        *,
        last_event_id: str | None = None,
        last_id: str | None = None,
    ) -> SseStream:
        stream = await SseStream.open(
            server.base, path, tok, last_event_id=last_event_id, last_id=last_id
        )
        self.opened.append(stream)
        return stream


@pytest.fixture
async def open_sse() -> AsyncIterator[SseOpener]:
    opener = SseOpener()
    yield opener
    for stream in opener.opened:
        await stream.aclose()


async def test_headers_and_first_event(
    server: ServerHandle, open_sse: SseOpener, user: Users
) -> None:
    name = user()
    stream = await open_sse(server, token(name))
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-accel-buffering"] == "no"
    first = await stream.next()
    assert first.event == "connected" and first.data["user_id"] == name


async def test_notifications_carry_their_id_and_skip_other_users(
    server: ServerHandle, open_sse: SseOpener, driver: Driver, user: Users
) -> None:
    name = user()
    stream = await open_sse(server, token(name))
    await stream.expect("connected")
    await driver.publish(user(), "not mine")
    sent = await driver.publish(name, "mine")
    got = await stream.expect("notification")
    assert got.id == sent["id"] and got.data == sent


@pytest.mark.parametrize("how", ["last_event_id", "last_id"])
async def test_resume_with_last_event_id_or_query(
    server: ServerHandle, open_sse: SseOpener, driver: Driver, user: Users, how: str
) -> None:
    name = user()
    sent = [(await driver.publish(name, f"n{i}"))["id"] for i in range(3)]
    resume = {"last_event_id": sent[0]} if how == "last_event_id" else {"last_id": sent[0]}
    stream = await open_sse(server, token(name), **resume)
    await stream.expect("connected")
    assert [(await stream.expect("notification")).id for _ in range(2)] == sent[1:]


async def test_heartbeat_events(servers: Servers, open_sse: SseOpener, user: Users) -> None:
    fast = servers.start(WS_HEARTBEAT_INTERVAL="0.2")
    stream = await open_sse(fast, token(user()))
    await stream.expect("connected")
    beat = await stream.expect("heartbeat", timeout=3, skip=())
    assert beat.data["timestamp"]


async def test_task_stream_ends_after_completed(
    server: ServerHandle, open_sse: SseOpener, driver: Driver, user: Users
) -> None:
    owner = user()
    task_id = await driver.start_task(token(owner), total_steps=3, step_interval_ms=40)
    stream = await open_sse(server, token(owner), SSE_TASKS_PATH.format(task_id=task_id))
    assert (await stream.expect("connected")).data["task_id"] == task_id
    events = [e for e in await stream.until_end() if e.event != "heartbeat"]
    assert [e.event for e in events] == ["progress", "progress", "completed"]
    with pytest.raises(Closed):
        await stream.next()


async def test_refusals_are_http_statuses(
    server: ServerHandle, open_sse: SseOpener, driver: Driver, user: Users
) -> None:
    owner = user()
    task_id = await driver.start_task(token(owner), total_steps=2, step_interval_ms=10)
    path = SSE_TASKS_PATH.format(task_id=task_id)
    assert (await open_sse(server, None)).status == 401
    assert (await open_sse(server, token(user()), path)).status == 403
    assert (
        await open_sse(server, token(owner), SSE_TASKS_PATH.format(task_id="nope"))
    ).status == 404
