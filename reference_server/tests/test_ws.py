"""docs/contract.md sections 1-8 and 11 against a real uvicorn process (in-memory mode)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import socket
import time
from collections.abc import Callable

import httpx
import jwt
import pytest

from notify_client.client import Closed, StreamClient, notifications_until
from notify_client.driver import Driver, DriverError, auth_header
from notify_client.waiting import until_true
from notify_contract.codes import WS_4401_UNAUTHORIZED, WS_4429_TOO_MANY_CONNECTIONS
from notify_stack.fixtures import ADMIN, SECRET, Opener, Servers, token
from notify_stack.stack import ServerHandle, wait_until
from reference_server.logs import REDACTED
from reference_server.protocol import NOTIFICATION_FIELDS, STATS_PATH, CloseCode

Users = Callable[..., str]


async def wait_for_stats(driver: Driver, user: str, count: int) -> None:
    async def shown() -> bool:
        return bool((await driver.stats())["users"].get(user, 0) == count)

    await until_true(shown, 5, f"stats never showed {count} streams for {user}")


# -- section 1 and 3: endpoints and frames ---------------------------------------------------


@pytest.mark.parametrize("token_in", ["query", "header"])
async def test_connected_is_the_first_frame(
    server: ServerHandle, open_stream: Opener, user: Users, token_in: str
) -> None:
    name = user()
    client = await open_stream(server, name, token_in=token_in)
    frame = await client.recv()
    assert frame.type == "connected"
    assert frame.data["user_id"] == name
    assert frame.data["timestamp"].endswith("+00:00")


async def test_notification_has_the_seed_fields_and_carries_extras(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    name = user()
    client = await open_stream(server, name)
    await client.expect("connected")
    published = await driver.publish(
        name,
        "Analysis complete",
        content="000001 done",
        link="/stocks/000001",
        source="analysis",
        sent_at=12.5,
    )
    frame = await client.expect("notification")
    assert frame.data == published
    assert set(NOTIFICATION_FIELDS) <= set(frame.data)
    assert frame.data["status"] == "unread" and frame.data["type"] == "alert"
    assert frame.data["sent_at"] == 12.5


async def test_driver_api_needs_an_admin_and_a_valid_body(
    server: ServerHandle, user: Users
) -> None:
    async with httpx.AsyncClient(base_url=server.base, trust_env=False) as http:
        body = {"user_id": user(), "title": "t"}
        assert (await http.post("/api/notifications", json=body)).status_code == 401
        mine = {"Authorization": f"Bearer {token(user())}"}
        assert (await http.post("/api/notifications", json=body, headers=mine)).status_code == 403
        admin = {"Authorization": f"Bearer {ADMIN}"}
        for bad in (
            {"title": "no target"},
            {"user_id": "a", "broadcast": True, "title": "t"},
            {"user_id": "a", "title": "t", "id": "forged"},
            {"user_id": "a", "title": "t", "type": "weather"},
        ):
            r = await http.post("/api/notifications", json=bad, headers=admin)
            assert r.status_code == 422, bad
        r = await http.post("/api/notifications", json=body, headers=admin)
        assert r.status_code == 201 and r.json()["id"]


# -- section 5: fan-out, isolation, order ----------------------------------------------------


async def test_each_stream_of_a_user_gets_each_notification_once_in_order_and_no_other_user(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    alice, bob = user("alice"), user("bob")
    mine = [await open_stream(server, alice) for _ in range(3)]
    theirs = await open_stream(server, bob)
    for c in [*mine, theirs]:
        await c.expect("connected")
    sent = []
    for i in range(15):
        sent.append((await driver.publish(alice, f"a{i}"))["id"])
        if i % 3 == 0:
            await driver.publish(bob, f"b{i}")
    await driver.publish(alice, "end")
    await driver.publish(bob, "end")
    for c in mine:
        got = await notifications_until(c, "end")
        assert [f.data["id"] for f in got[:-1]] == sent
    bob_got = await notifications_until(theirs, "end")
    assert [f.data["title"] for f in bob_got] == ["b0", "b3", "b6", "b9", "b12", "end"]


async def test_broadcast_reaches_every_user(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    clients = [await open_stream(server, user()) for _ in range(4)]
    for c in clients:
        await c.expect("connected")
    sent = await driver.broadcast("maintenance at noon")
    for c in clients:
        assert (await c.expect("notification")).data["id"] == sent["id"]


# -- section 5: per-user limit ---------------------------------------------------------------


async def test_one_stream_over_the_limit_gets_4429_and_the_others_are_untouched(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    name = user()
    held = [await open_stream(server, name) for _ in range(3)]
    for c in held:
        await c.expect("connected")
    extra = await open_stream(server, name)
    with pytest.raises(Closed) as info:
        await extra.recv()
    assert info.value.code == WS_4429_TOO_MANY_CONNECTIONS
    await driver.publish(name, "still here")
    for c in held:
        assert (await c.expect("notification")).data["title"] == "still here"
    await held[0].close()
    await wait_for_stats(driver, name, 2)
    again = await open_stream(server, name)
    assert (await again.recv()).type == "connected"


# -- section 4 and 11: client frames ---------------------------------------------------------


async def test_ping_bad_json_and_unknown_types(
    server: ServerHandle, open_stream: Opener, user: Users
) -> None:
    client = await open_stream(server, user())
    await client.expect("connected")
    await client.ping()
    assert (await client.expect("pong")).data["timestamp"]
    await client.send_text("{oops")
    assert (await client.expect("error")).data["code"] == "bad_json"
    await client.send_text(json.dumps({"type": "subscribe"}))
    assert (await client.expect("error")).data["code"] == "unknown_type"
    await client.ping()
    assert (await client.expect("pong")).type == "pong"  # still open


def _open_raw(server: ServerHandle, user: str) -> socket.socket:
    """A WebSocket handshake by hand, on a socket the test then writes raw bytes to."""
    sock = socket.create_connection((server.host, server.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /api/ws/notifications?token={token(user)} HTTP/1.1\r\nHost: x\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head[:100]
    return sock


def test_input_after_a_1009_is_read_not_reset(server: ServerHandle, user: Users) -> None:
    """The rest of an oversized frame, arriving after the server sent 1009 and its app has
    let the stream go, is read, not answered with a reset: a close under unread input resets
    the connection, which through nginx cost the peer its close frame (it saw 1006)."""
    name = user()
    sock = _open_raw(server, name)
    try:
        # A masked text frame announcing 1 MB; only its start is sent before the close.
        sock.sendall(b"\x81\xff" + (1 << 20).to_bytes(8, "big") + b"\x00" * 4 + b"x" * 4096)
        seen = b""
        while got := sock.recv(4096):  # up to the server's half-close, after its close frame
            seen += got
        close = seen[seen.rindex(b"\x88") :]
        assert close[2:4] == CloseCode.MESSAGE_TOO_BIG.to_bytes(2, "big"), close

        def gone() -> bool:
            stats = httpx.get(server.base + STATS_PATH, headers=auth_header(ADMIN)).json()
            return name not in stats["users"]

        wait_until(gone, 10, "the stream let go by the app")
        httpx.get(server.base + STATS_PATH, headers=auth_header(ADMIN))  # one more loop turn
        for _ in range(2):  # the first write would draw the reset; the second would fail on it
            sock.sendall(b"x" * 65536)
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("payload", "code"),
    [(b"\x00\x01", CloseCode.UNSUPPORTED_DATA), ("x" * 70_000, CloseCode.MESSAGE_TOO_BIG)],
    ids=["binary-1003", "oversize-1009"],
)
async def test_binary_and_oversize_frames_close(
    server: ServerHandle, open_stream: Opener, user: Users, payload: bytes | str, code: int
) -> None:
    client = await open_stream(server, user())
    await client.expect("connected")
    if isinstance(payload, bytes):
        await client.send_bytes(payload)
    else:
        await client.send_text(payload)
    await client.until_closed()
    assert client.close_code == code


async def test_a_flood_closes_that_stream_with_1008_only(
    server: ServerHandle, open_stream: Opener, user: Users
) -> None:
    name = user()
    flooder, calm = await open_stream(server, name), await open_stream(server, name)
    await flooder.expect("connected")
    await calm.expect("connected")
    for _ in range(30):
        await flooder.ping()
    await flooder.until_closed()
    assert flooder.close_code == CloseCode.POLICY_VIOLATION
    await calm.ping()
    assert (await calm.expect("pong")).type == "pong"


# -- section 2: tokens -----------------------------------------------------------------------

NOW = int(time.time())


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "not-a-jwt",
        jwt.encode({"sub": "eve", "exp": NOW + 3600}, "w" * 64, algorithm="HS256"),
        jwt.encode({"sub": "eve", "exp": NOW - 60}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": "eve", "exp": NOW + 3600}, None, algorithm="none"),
        jwt.encode({"exp": NOW + 3600}, SECRET, algorithm="HS256"),
        jwt.encode({"sub": "eve"}, SECRET, algorithm="HS256"),
        "a" * 16_384,
    ],
    ids=["missing", "garbage", "wrong-key", "expired", "alg-none", "no-sub", "no-exp", "16kb"],
)
async def test_every_bad_token_is_4401_after_accept_and_nothing_delivered(
    server: ServerHandle, bad: str | None
) -> None:
    client = await StreamClient.open(server.base, "/api/ws/notifications", bad)
    with pytest.raises(Closed) as info:
        await client.recv()
    assert info.value.code == WS_4401_UNAUTHORIZED
    assert client.received == []


async def test_token_in_query_and_header_must_agree(server: ServerHandle, user: Users) -> None:
    client = await StreamClient.open(
        server.base,
        "/api/ws/notifications",
        token(user()),
        extra_headers={"Authorization": f"Bearer {token(user())}"},
    )
    with pytest.raises(Closed) as info:
        await client.recv()
    assert info.value.code == WS_4401_UNAUTHORIZED


async def test_a_token_under_an_encoded_parameter_name_is_not_logged(
    server: ServerHandle, user: Users
) -> None:
    """Starlette decodes parameter names, so `?%74oken=` is the token (rule 1.6): it opens the
    stream, and the log shows it redacted like any other."""
    secret = token(user())
    client = await StreamClient.open(server.base, f"/api/ws/notifications?%74oken={secret}", None)
    assert (await client.recv()).type == "connected"
    await client.close()

    async def logged() -> bool:
        return "%74oken=" in server.process.log_text()

    await until_true(logged, 5, "no handshake line in the log")
    log = server.process.log_text()
    assert secret not in log
    assert f"%74oken={REDACTED}" in log


async def test_a_token_that_expires_while_connected_closes_with_4401(
    server: ServerHandle, open_stream: Opener, user: Users
) -> None:
    client = await open_stream(server, None, tok=token(user(), ttl=1.2))
    await client.expect("connected")
    await client.until_closed(timeout=6)
    assert client.close_code == WS_4401_UNAUTHORIZED


# -- section 8: stats ------------------------------------------------------------------------


async def test_stats_count_streams_and_need_an_admin(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    a, b = user(), user()
    for name in (a, a, b):
        await (await open_stream(server, name)).expect("connected")
    stats = await driver.stats()
    assert stats["users"][a] == 2 and stats["users"][b] == 1
    assert stats["total_connections"] == sum(stats["users"].values())
    assert stats["total_users"] == len(stats["users"])
    with pytest.raises(DriverError) as info:
        await driver.stats(token(a))
    assert info.value.status == 403
    async with httpx.AsyncClient(base_url=server.base, trust_env=False) as http:
        assert (await http.get(STATS_PATH)).status_code == 401


async def test_public_stats_need_no_token_and_open_nothing_else(servers: Servers) -> None:
    public = servers.start(WS_STATS_PUBLIC="true")
    async with httpx.AsyncClient(base_url=public.base, trust_env=False) as http:
        r = await http.get(STATS_PATH)
        metrics = await http.get("/api/ws/metrics")
        schema = await http.get("/openapi.json")
    assert r.status_code == 200
    assert r.json() == {"total_users": 0, "total_connections": 0, "users": {}}
    assert metrics.status_code == 401  # admin-only whatever WS_STATS_PUBLIC says (README)
    assert schema.status_code == 404  # the docs are off


# -- section 5: heartbeat --------------------------------------------------------------------


async def test_heartbeat_cadence_follows_the_setting(
    servers: Servers, open_stream: Opener, user: Users
) -> None:
    fast = servers.start(WS_HEARTBEAT_INTERVAL="0.25")
    client = await open_stream(fast, user())
    await client.expect("connected")
    beats = [await client.expect("heartbeat", timeout=2) for _ in range(5)]
    gaps = [b.at - a.at for a, b in itertools.pairwise(beats)]
    assert all(0.1 < g < 0.6 for g in gaps), gaps
    assert all(b.data["timestamp"] for b in beats)


async def test_metrics_show_streams_frames_and_loop_lag(
    server: ServerHandle, open_stream: Opener, driver: Driver, user: Users
) -> None:
    async with httpx.AsyncClient(base_url=server.base, trust_env=False) as http:
        assert (await http.get("/api/ws/metrics")).status_code == 401
        before = (await http.get("/api/ws/metrics", headers=auth_header(ADMIN))).json()
        client = await open_stream(server, user())
        await client.expect("connected")
        await driver.broadcast("counted")
        await client.expect("notification")
        after = (await http.get("/api/ws/metrics", headers=auth_header(ADMIN))).json()
    assert after["pid"] == server.process.pid
    assert after["streams"] >= 1 and after["notification_streams"] >= 1
    assert after["frames_sent"] >= before["frames_sent"] + 1
    assert after["loop_lag_ms"]["max_ms"] >= 0
    assert after["gc_pause_ms"]["full_collections"] >= 0  # the callback is registered: below


async def test_streams_take_prepared_frames_unless_compressed_or_switched_off(
    servers: Servers, open_stream: Opener, user: Users
) -> None:
    """The same broadcast arrives intact by the prepared path and by both fallbacks."""
    plain, deflating, switched_off = (
        servers.start(),
        servers.start(WS_COMPRESSION="true"),
        servers.start(WS_PREPARED_FRAMES="false"),
    )
    for handle, compression, prepared in (
        (plain, None, 1),
        (deflating, "deflate", 0),
        (deflating, None, 1),  # compression allowed but not negotiated: frames are alike
        (switched_off, None, 0),
    ):
        client = await open_stream(handle, user(), compression=compression)
        await client.expect("connected")
        driver = Driver(handle.base, ADMIN)
        try:
            metrics = await driver.http.get("/api/ws/metrics", headers=auth_header(ADMIN))
            assert metrics.json()["prepared_streams"] == prepared, (handle.base, compression)
            published = await driver.broadcast("é" * 200)  # over 125 bytes: a longer header
            assert (await client.expect("notification")).data == published
        finally:
            await driver.aclose()
        await client.close()
