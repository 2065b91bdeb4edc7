"""The bus on two Redis instances (REDIS_URL a list): each user's notifications on theirs, every
broadcast on both with one id, and resume and the archive by each partition's own order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
import redis as redis_sync

from notify_client.client import StreamClient, notifications_until
from notify_client.driver import Driver
from notify_stack.fixtures import ADMIN, Opener, Servers, token
from notify_stack.stack import RedisServer, ServerHandle, redis_server
from reference_server.redis_scripts import archive_key, partition_of

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def two_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, ...]]:
    with (
        redis_server(tmp_path_factory.mktemp("r0")) as r0,
        redis_server(tmp_path_factory.mktemp("r1")) as r1,
    ):
        yield r0, r1


def start_pair(
    servers: Servers, redis: tuple[RedisServer, ...], broken: str = ""
) -> tuple[ServerHandle, ServerHandle]:
    urls = ",".join(r.url for r in redis)
    if not broken:
        return servers.start(REDIS_URL=urls), servers.start(REDIS_URL=urls)
    module = "reference_server.tests.broken_server"
    return (
        servers.start(module=module, REDIS_URL=urls, BROKEN_FAULT=broken),
        servers.start(module=module, REDIS_URL=urls, BROKEN_FAULT=broken),
    )


@pytest.fixture(scope="module")
def pair(servers: Servers, two_redis: tuple[RedisServer, ...]) -> tuple[ServerHandle, ...]:
    return start_pair(servers, two_redis)


def users_on_each(prefix: str) -> tuple[str, str]:
    """A user whose notifications live on the first Redis, and one on the second."""
    names = (f"{prefix}-{i}" for i in range(1000))
    on = {0: "", 1: ""}
    for name in names:
        on[partition_of(name, 2)] = on[partition_of(name, 2)] or name
        if all(on.values()):
            return on[0], on[1]
    raise AssertionError("no user found on each partition")


async def broadcast_seen_by(
    pair: tuple[ServerHandle, ...], open_stream: Opener, users: tuple[str, str]
) -> dict[str, list[str]]:
    """A stream of each user on each server; one broadcast and an end marker for each user;
    the ids each stream got before its marker."""
    streams: list[tuple[str, StreamClient]] = []
    for server in pair:
        for user in users:
            stream = await open_stream(server, user)
            await stream.expect("connected")
            streams.append((user, stream))
    async with contextlib.aclosing(Driver(pair[0].base, ADMIN)) as driver:
        await driver.broadcast("to all")
        for user in users:
            await driver.publish(user, "end")
    seen = {}
    for i, (user, stream) in enumerate(streams):
        got = await notifications_until(stream, "end")
        seen[f"{user}@{i // 2}"] = [f.data["id"] for f in got[:-1]]
    return seen


async def test_a_broadcast_reaches_every_stream_of_both_partitions_once_with_one_id(
    pair: tuple[ServerHandle, ...], open_stream: Opener
) -> None:
    users = users_on_each("both")
    seen = await broadcast_seen_by(pair, open_stream, users)
    assert len(seen) == 4
    ids = {tuple(v) for v in seen.values()}
    assert len(ids) == 1 and len(next(iter(ids))) == 1, seen


async def test_the_check_fails_a_server_that_broadcasts_on_one_partition(
    servers: Servers, two_redis: tuple[RedisServer, ...], open_stream: Opener
) -> None:
    broken = start_pair(servers, two_redis, "broadcast-first-partition")
    first, second = users_on_each("broken")
    seen = await broadcast_seen_by(broken, open_stream, (first, second))
    assert all(len(seen[f"{first}@{s}"]) == 1 for s in (0, 1))
    assert all(seen[f"{second}@{s}"] == [] for s in (0, 1))  # the second partition's user: none


def test_a_users_notifications_live_on_their_partition_only(
    pair: tuple[ServerHandle, ...], two_redis: tuple[RedisServer, ...]
) -> None:
    users = users_on_each("home")

    async def publish() -> None:
        async with contextlib.aclosing(Driver(pair[1].base, ADMIN)) as driver:
            for user in users:
                await driver.publish(user, "kept")

    asyncio.run(publish())
    for home, user in enumerate(users):
        for index, r in enumerate(two_redis):
            with redis_sync.Redis(port=r.port) as client:
                assert bool(client.exists(archive_key(user))) == (index == home), (user, index)


async def test_resume_and_the_archive_follow_the_partitions_order(
    pair: tuple[ServerHandle, ...], open_stream: Opener
) -> None:
    _, user = users_on_each("resume")  # on the second Redis: the broadcast ids are not its own
    async with contextlib.aclosing(Driver(pair[0].base, ADMIN)) as driver:
        p1 = (await driver.publish(user, "p1"))["id"]
        b1 = (await driver.broadcast("b1"))["id"]
        p2 = (await driver.publish(user, "p2"))["id"]
        b2 = (await driver.broadcast("b2"))["id"]
        await driver.publish(user, "end")
        for last, after in ((b1, [p2, b2]), (p1, [b1, p2, b2]), (p2, [b2])):
            stream = await open_stream(pair[1], user, last_id=last)
            await stream.expect("connected")
            got = await notifications_until(stream, "end")
            assert [f.data["id"] for f in got[:-1]] == after, last
            listed = await driver.after(token(user), last)
            assert [n["id"] for n in listed][: len(after)] == after, last
