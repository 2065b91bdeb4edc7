"""Task streams (docs/contract.md section 5) against a real server."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from notify_client.client import Closed, Frame, StreamClient
from notify_client.driver import Driver
from notify_contract.codes import WS_4403_FORBIDDEN, WS_4404_NOT_FOUND
from notify_stack.fixtures import ADMIN, Opener, token
from notify_stack.stack import ServerHandle
from reference_server.protocol import WS_TASKS_PATH, CloseCode

Users = Callable[..., str]


def task_path(task_id: str) -> str:
    return WS_TASKS_PATH.format(task_id=task_id)


async def rest(client: StreamClient) -> list[Frame]:
    frames = await client.until_closed(timeout=10)
    return [f for f in frames if f.type != "heartbeat"]


async def test_owner_sees_every_step_then_completed_then_1000(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    owner = user()
    task_id = await driver.start_task(token(owner), total_steps=4, step_interval_ms=60)
    client = await open_stream(server, owner, task_path(task_id))
    hello = await client.expect("connected")
    assert hello.data["task_id"] == task_id and hello.data["user_id"] == owner
    frames = await rest(client)
    assert [f.type for f in frames] == ["progress", "progress", "progress", "completed"]
    assert [f.data["step"] for f in frames] == [1, 2, 3, 4]
    for f in frames:
        assert f.data["task_id"] == task_id and f.data["total_steps"] == 4
        assert f.data["progress"] == 100 * f.data["step"] / 4
        assert f.data["message"] and f.data["timestamp"]
    assert client.close_code == CloseCode.NORMAL_CLOSURE


async def test_a_failing_task_sends_error_then_1000(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    owner = user()
    task_id = await driver.start_task(
        token(owner), total_steps=5, step_interval_ms=50, fail_at_step=3
    )
    client = await open_stream(server, owner, task_path(task_id))
    await client.expect("connected")
    frames = await rest(client)
    assert [f.type for f in frames] == ["progress", "progress", "error"]
    assert frames[-1].data["task_id"] == task_id and frames[-1].data["message"]
    assert client.close_code == CloseCode.NORMAL_CLOSURE


async def test_another_users_task_is_4403_unknown_is_4404_admin_may_watch(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    owner, other = user(), user()
    task_id = await driver.start_task(token(owner), total_steps=3, step_interval_ms=50)
    for who, path, code in (
        (other, task_path(task_id), WS_4403_FORBIDDEN),
        (owner, task_path("no-such-task"), WS_4404_NOT_FOUND),
    ):
        client = await open_stream(server, who, path)
        with pytest.raises(Closed) as info:
            await client.recv()
        assert info.value.code == code
        assert client.received == []
    watcher = await open_stream(server, None, task_path(task_id), tok=ADMIN)
    assert (await watcher.expect("connected")).data["task_id"] == task_id


async def test_a_late_subscriber_gets_the_latest_state_first(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    owner = user()
    task_id = await driver.start_task(token(owner), total_steps=6, step_interval_ms=150)
    early = await open_stream(server, owner, task_path(task_id))
    await early.expect("connected")
    first = await early.expect("progress", timeout=3)
    second = await early.expect("progress", timeout=3)
    late = await open_stream(server, owner, task_path(task_id))
    await late.expect("connected")
    latest = (await rest(late))[0]
    assert latest.data["step"] >= second.data["step"] > first.data["step"]


async def test_a_subscriber_after_the_end_gets_the_end_and_1000(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    owner = user()
    task_id = await driver.start_task(token(owner), total_steps=2, step_interval_ms=10)
    watcher = await open_stream(server, owner, task_path(task_id))
    await rest(watcher)  # the task has ended once this stream is closed
    late = await open_stream(server, owner, task_path(task_id))
    await late.expect("connected")
    frames = await rest(late)
    assert [f.type for f in frames] == ["completed"]
    assert late.close_code == CloseCode.NORMAL_CLOSURE


async def test_progress_never_reaches_another_tasks_stream(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    owner = user()
    ids = [
        await driver.start_task(token(owner), total_steps=3, step_interval_ms=40) for _ in range(3)
    ]
    clients = [await open_stream(server, owner, task_path(t)) for t in ids]
    for task_id, client in zip(ids, clients, strict=True):
        await client.expect("connected")
        frames = await rest(client)
        assert frames and {f.data["task_id"] for f in frames} == {task_id}


async def test_task_request_is_validated(server: ServerHandle, user: Users) -> None:
    headers = {"Authorization": f"Bearer {token(user())}"}
    async with httpx.AsyncClient(base_url=server.base, trust_env=False) as http:
        for bad in (
            {"total_steps": 0},
            {"total_steps": 3, "fail_at_step": 4},
            {"total_steps": 2, "bogus": 1},
        ):
            assert (await http.post("/api/tasks", json=bad, headers=headers)).status_code == 422
        assert (await http.post("/api/tasks", json={})).status_code == 401
        started = time.monotonic()
        r = await http.post(
            "/api/tasks", json={"total_steps": 1, "step_interval_ms": 0}, headers=headers
        )
        assert r.status_code == 201 and r.json()["task_id"]
        assert time.monotonic() - started < 5
