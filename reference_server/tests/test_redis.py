"""Several instances on one real redis-server (docs/contract.md sections 8, 9 and 12)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync

from notify_client.client import Closed, StreamClient, notifications_until
from notify_client.driver import Driver, DriverError
from notify_client.sse_client import SseStream
from notify_client.waiting import until_true
from notify_contract.codes import WS_4429_TOO_MANY_CONNECTIONS
from notify_stack.fixtures import ADMIN, Opener, Servers, token
from notify_stack.stack import RedisServer, ServerHandle, redis_server
from reference_server.protocol import (
    SSE_NOTIFICATIONS_PATH,
    SSE_TASKS_PATH,
    WS_TASKS_PATH,
    CloseCode,
)
from reference_server.redis_bus import BUS_CLIENT, FEED_CLIENT, SEQ_JUMP

pytestmark = pytest.mark.redis

Users = Callable[..., str]


def pubsub_clients(r: RedisServer, name: str) -> int:
    """Redis clients called `name` that hold a channel or pattern subscription."""
    with redis_sync.Redis(port=r.port) as client:
        listing = client.client_list()
    return sum(
        c.get("name") == name and bool(int(c.get("sub", 0)) or int(c.get("psub", 0)))
        for c in listing
    )


async def wait_for_pubsub(r: RedisServer, name: str, count: int) -> None:
    async def reached() -> bool:
        return pubsub_clients(r, name) == count

    await until_true(reached, 10, f"{count} PubSub clients {name} never seen")


@pytest.fixture(scope="module")
def pair(servers: Servers, redis: RedisServer) -> tuple[ServerHandle, ServerHandle]:
    return servers.start(redis), servers.start(redis)


@pytest.fixture
async def drivers(pair: tuple[ServerHandle, ServerHandle]) -> AsyncIterator[list[Driver]]:
    ds = [Driver(s.base, ADMIN) for s in pair]
    yield ds
    for d in ds:
        await d.aclose()


async def test_a_notification_published_on_one_instance_reaches_both_exactly_once(
    pair: tuple[ServerHandle, ServerHandle], drivers: list[Driver], open_stream: Opener, user: Users
) -> None:
    name = user()
    on_a, on_b = await open_stream(pair[0], name), await open_stream(pair[1], name)
    for c in (on_a, on_b):
        await c.expect("connected")
    sent = []
    for i in range(6):
        sent.append((await drivers[i % 2].publish(name, f"n{i}"))["id"])
    await drivers[1].publish(name, "end")
    for c in (on_a, on_b):
        got = await notifications_until(c, "end")
        assert [f.data["id"] for f in got[:-1]] == sent


async def test_broadcast_and_tasks_cross_instances(
    pair: tuple[ServerHandle, ServerHandle], drivers: list[Driver], open_stream: Opener, user: Users
) -> None:
    watcher = await open_stream(pair[0], user())
    await watcher.expect("connected")
    sent = await drivers[1].broadcast("from b")
    assert (await watcher.expect("notification")).data["id"] == sent["id"]
    owner = user()
    task_id = await drivers[0].start_task(token(owner), total_steps=3, step_interval_ms=60)
    stream = await open_stream(pair[1], owner, WS_TASKS_PATH.format(task_id=task_id))
    await stream.expect("connected")
    frames = [f for f in await stream.until_closed() if f.type != "heartbeat"]
    assert [f.type for f in frames][-1] == "completed"
    assert stream.close_code == CloseCode.NORMAL_CLOSURE


async def test_stats_and_the_per_user_limit_cover_both_instances(
    pair: tuple[ServerHandle, ServerHandle], drivers: list[Driver], open_stream: Opener, user: Users
) -> None:
    name = user()
    for server in (pair[0], pair[0], pair[1]):
        await (await open_stream(server, name)).expect("connected")
    for d in drivers:
        assert (await d.stats())["users"][name] == 3
    for server in pair:
        extra = await open_stream(server, name)
        with pytest.raises(Closed) as info:
            await extra.recv()
        assert info.value.code == WS_4429_TOO_MANY_CONNECTIONS
    assert (await drivers[0].stats())["users"][name] == 3


async def test_the_slots_of_streams_closed_at_once_are_all_given_back(
    pair: tuple[ServerHandle, ServerHandle], drivers: list[Driver], open_stream: Opener, user: Users
) -> None:
    names = [user() for _ in range(5)]
    clients = []
    for name in names:
        for _ in range(3):
            client = await open_stream(pair[0], name)
            await client.expect("connected")
            clients.append(client)
    users = (await drivers[1].stats())["users"]
    assert [users.get(name) for name in names] == [3] * 5
    await asyncio.gather(*(c.close() for c in clients))  # one burst of releases

    async def given_back() -> bool:
        users = (await drivers[1].stats())["users"]
        return not any(users.get(name) for name in names)

    await until_true(given_back, 10, "slots of closed streams were kept in Redis")
    again = await open_stream(pair[1], names[0])
    await again.expect("connected")  # not 4429: the user's slots are free on both instances


async def test_many_streams_of_one_user_opened_at_once_never_exceed_the_limit(
    pair: tuple[ServerHandle, ServerHandle], drivers: list[Driver], user: Users
) -> None:
    name = user()
    tok = token(name)

    async def attempt(i: int) -> StreamClient:
        return await StreamClient.open(pair[i % 2].base, "/api/ws/notifications", tok)

    clients = await asyncio.gather(*(attempt(i) for i in range(12)))
    try:
        outcomes = []
        for c in clients:
            try:
                outcomes.append((await c.recv()).type)
            except Closed as exc:
                outcomes.append(str(exc.code))
        assert outcomes.count("connected") == 3
        assert outcomes.count(str(WS_4429_TOO_MANY_CONNECTIONS)) == 9
        assert (await drivers[1].stats())["users"][name] == 3
    finally:
        for c in clients:
            await c.close()


async def test_resume_after_the_instance_restarts_uses_the_redis_history(
    servers: Servers,
    redis: RedisServer,
    pair: tuple[ServerHandle, ServerHandle],
    drivers: list[Driver],
    open_stream: Opener,
    user: Users,
) -> None:
    name = user()
    short_lived = servers.start(redis)
    first = await open_stream(short_lived, name)
    await first.expect("connected")
    seen = await drivers[0].publish(name, "seen")
    assert (await first.expect("notification")).data["id"] == seen["id"]
    short_lived.process.stop()
    missed = [(await drivers[1].publish(name, f"missed{i}"))["id"] for i in range(3)]
    back = servers.start(redis)
    again = await open_stream(back, name, last_id=seen["id"])
    await again.expect("connected")
    assert [(await again.expect("notification")).data["id"] for _ in range(3)] == missed


async def test_the_subscription_comes_back_after_redis_kills_it(
    servers: Servers, redis: RedisServer, open_stream: Opener, user: Users
) -> None:
    server = servers.start(redis)
    driver = Driver(server.base, ADMIN)
    try:
        name = user()
        client = await open_stream(server, name)
        await client.expect("connected")
        with redis_sync.Redis(port=redis.port) as r:
            assert r.client_kill_filter(_type="pubsub") >= 1
        sent: list[str] = []
        deadline = time.monotonic() + 10
        while True:  # publish until delivery works again
            sent.append((await driver.publish(name, f"probe{len(sent)}"))["id"])
            try:
                await client.expect("notification", timeout=0.3)
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "subscription never came back"
        sent.append((await driver.publish(name, "end"))["id"])
        got = [client.received[-1], *await notifications_until(client, "end")]
        # What was published while the subscription was down is delivered after it, once each.
        assert sorted(f.data["id"] for f in got) == sorted(sent)
        assert len(got) == len(sent)
    finally:
        await driver.aclose()


@pytest.mark.parametrize(("mode", "per_client"), [("per-connection", 1), ("shared", 0)])
async def test_sse_redis_connections_per_mode(
    servers: Servers,
    redis: RedisServer,
    drivers: list[Driver],
    user: Users,
    mode: str,
    per_client: int,
) -> None:
    server = servers.start(redis, SSE_PUBSUB_MODE=mode)
    feeds, bus = f"{FEED_CLIENT}-{server.process.pid}", f"{BUS_CLIENT}-{server.process.pid}"
    name = user()
    streams = [
        await SseStream.open(server.base, SSE_NOTIFICATIONS_PATH, token(name)) for _ in range(5)
    ]
    try:
        for s in streams:
            await s.expect("connected")
        await wait_for_pubsub(redis, feeds, 5 * per_client)
        assert pubsub_clients(redis, bus) == 1  # the process's own subscription, either mode
        sent = await drivers[0].publish(name, "via redis")
        for s in streams:
            got = await s.expect("notification")
            assert got.id == sent["id"]
    finally:
        for s in streams:
            await s.aclose()
    await wait_for_pubsub(redis, feeds, 0)
    assert pubsub_clients(redis, bus) == 1
    server.process.stop()


async def test_per_connection_sse_resumes_with_last_event_id(
    servers: Servers, redis: RedisServer, drivers: list[Driver], user: Users
) -> None:
    server = servers.start(redis, SSE_PUBSUB_MODE="per-connection")
    name = user()
    sent = [(await drivers[0].publish(name, f"n{i}"))["id"] for i in range(3)]
    stream = await SseStream.open(
        server.base, SSE_NOTIFICATIONS_PATH, token(name), last_event_id=sent[0]
    )
    try:
        await stream.expect("connected")
        assert [(await stream.expect("notification")).id for _ in range(2)] == sent[1:]
        live = await drivers[1].publish(name, "live")
        assert (await stream.expect("notification")).id == live["id"]
    finally:
        await stream.aclose()
    server.process.stop()


async def test_workers_share_one_view_through_redis(
    servers: Servers, redis: RedisServer, drivers: list[Driver], user: Users
) -> None:
    two = servers.start(redis, workers=2)
    names = [user() for _ in range(8)]
    clients = [await StreamClient.open(two.base, "/api/ws/notifications", token(n)) for n in names]
    try:
        for c in clients:
            await c.expect("connected")
        driver = Driver(two.base, ADMIN)
        try:
            stats = await driver.stats()
            assert all(stats["users"][n] == 1 for n in names)
            for n in names:
                await driver.publish(n, f"for {n}")
                await driver.publish(n, "end")
        finally:
            await driver.aclose()
        for n, c in zip(names, clients, strict=True):
            got = await notifications_until(c, "end")
            assert [f.data["title"] for f in got] == [f"for {n}", "end"]
    finally:
        for c in clients:
            await c.close()


async def test_per_connection_sse_task_stream_and_the_archive_in_redis(
    servers: Servers, redis: RedisServer, drivers: list[Driver], user: Users
) -> None:
    server = servers.start(redis, SSE_PUBSUB_MODE="per-connection")
    owner = user()
    task_id = await drivers[0].start_task(token(owner), total_steps=3, step_interval_ms=50)
    stream = await SseStream.open(server.base, SSE_TASKS_PATH.format(task_id=task_id), token(owner))
    try:
        await stream.expect("connected")
        events = [e for e in await stream.until_end() if e.event != "heartbeat"]
        assert [e.event for e in events][-1] == "completed"
        assert [e.data["step"] for e in events] == sorted({e.data["step"] for e in events})
    finally:
        await stream.aclose()
    first = await drivers[1].publish(owner, "a")
    second = await drivers[0].publish(owner, "b")
    assert [i["id"] for i in await drivers[0].after(token(owner), first["id"])] == [second["id"]]
    server.process.stop()


async def test_an_empty_restarted_redis_keeps_ids_moving_forward(
    servers: Servers, tmp_path: Path, open_stream: Opener, user: Users
) -> None:
    with redis_server(tmp_path) as first:
        port = first.port
        server = servers.start(first)
        driver = Driver(server.base, ADMIN)
        name = user()
        client = await open_stream(server, name)
        await client.expect("connected")
        before = await driver.publish(name, "before")
        assert (await client.expect("notification")).data["id"] == before["id"]
    try:
        with redis_server(tmp_path, port=port):
            published: list[dict[str, Any]] = []

            async def publishes() -> bool:  # the server's connections notice the restart on use
                try:
                    published.append(await driver.publish(name, "after"))
                except DriverError as exc:
                    if exc.status != 503:
                        raise
                    return False
                return True

            await until_true(publishes, 15, "publishing never recovered", poll=0.1)
            after = published[0]
            got = await client.expect("notification", timeout=15)
            assert got.data["id"] == after["id"]
            epoch_before, seq_before = before["id"].rsplit("-", 1)
            epoch_after, seq_after = after["id"].rsplit("-", 1)
            assert epoch_after == epoch_before
            # Past anything another instance may have published unseen before Redis died.
            assert int(seq_after) > int(seq_before) + SEQ_JUMP
    finally:
        await driver.aclose()
        server.process.stop()
