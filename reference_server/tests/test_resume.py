"""Resume with `last_id`, resync and catch-up (docs/contract.md section 5)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from notify_client.driver import Driver
from notify_stack.fixtures import ADMIN, Opener, Servers, token
from notify_stack.stack import ServerHandle

Users = Callable[..., str]


@pytest.fixture(scope="module")
def small_history(servers: Servers) -> ServerHandle:
    return servers.start(WS_HISTORY_SIZE="5")


async def test_resume_replays_what_was_missed_in_order_then_goes_live(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    name = user()
    sent = [(await driver.publish(name, f"n{i}"))["id"] for i in range(4)]
    await driver.publish(user(), "someone else's")
    await driver.broadcast("to all")
    client = await open_stream(server, name, last_id=sent[1])
    await client.expect("connected")
    replay = [await client.expect("notification") for _ in range(3)]
    assert [f.data["id"] for f in replay[:2]] == sent[2:]
    assert replay[2].data["title"] == "to all"
    live = await driver.publish(name, "live")
    assert (await client.expect("notification")).data["id"] == live["id"]


async def test_resume_from_the_newest_id_replays_nothing(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    name = user()
    last = await driver.publish(name, "seen")
    client = await open_stream(server, name, last_id=last["id"])
    await client.expect("connected")
    live = await driver.publish(name, "new")
    assert (await client.expect("notification")).data["id"] == live["id"]


async def test_an_id_older_than_the_history_gets_resync_and_the_archive_has_the_rest(
    small_history: ServerHandle, open_stream: Opener, user: Users
) -> None:
    name = user()
    driver = Driver(small_history.base, ADMIN)
    try:
        sent = [(await driver.publish(name, f"n{i}"))["id"] for i in range(9)]
        client = await open_stream(small_history, name, last_id=sent[0])
        await client.expect("connected")
        resync = await client.expect("resync")
        assert resync.data["last_id"] == sent[0]
        items = await driver.after(token(name), sent[0])
        assert [i["id"] for i in items] == sent[1:]
        unknown = await open_stream(small_history, name, last_id="not-an-id")
        await unknown.expect("connected")
        await unknown.expect("resync")
    finally:
        await driver.aclose()


async def test_the_archive_is_per_user(server: ServerHandle, driver: Driver, user: Users) -> None:
    a, b = user(), user()
    first = await driver.publish(a, "a1")
    await driver.publish(b, "b1")
    second = await driver.publish(a, "a2")
    assert [i["id"] for i in await driver.after(token(a), first["id"])] == [second["id"]]
    titles = [i["title"] for i in await driver.after(token(b), None)]
    assert "b1" in titles and "a1" not in titles and "a2" not in titles
