"""Start-up errors, Origin, slow consumers, shutdown and logs, each on its own real server."""

from __future__ import annotations

import asyncio
import gc
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from notify_client.client import Closed, StreamClient
from notify_client.driver import Driver
from notify_client.waiting import until_true
from notify_contract.codes import WS_4408_SLOW_CONSUMER
from notify_stack.fixtures import ADMIN, SECRET, Opener, Servers, token
from notify_stack.stack import server_env
from reference_server.auth import TokenVerifier
from reference_server.metrics import GcPauses
from reference_server.protocol import WS_NOTIFICATIONS_PATH, CloseCode

Users = Callable[..., str]


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reference_server", *args],
        env=server_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "args", "named"),
    [
        (
            {"JWT_SECRET": SECRET, "WS_MAX_CONNECTIONS_PER_USER": "zero"},
            [],
            "WS_MAX_CONNECTIONS_PER_USER",
        ),
        ({}, [], "JWT_SECRET"),
        ({"JWT_SECRET": SECRET}, ["--workers", "2"], "REDIS_URL"),
        ({"JWT_SECRET": SECRET, "SSE_PUBSUB_MODE": "per-connection"}, [], "REDIS_URL"),
    ],
    ids=["bad-int", "no-secret", "workers-without-redis", "per-connection-without-redis"],
)
def test_bad_start_is_refused_with_the_variable_named(
    env: dict[str, str], args: list[str], named: str
) -> None:
    result = run_cli(args, env)
    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_token_command_mints_a_token_the_server_accepts() -> None:
    result = run_cli(["token", "carol", "--admin"], {"JWT_SECRET": SECRET})
    assert result.returncode == 0
    principal = TokenVerifier(SECRET, "HS256", 4096).verify(result.stdout.strip())
    assert principal.user_id == "carol" and principal.is_admin


async def test_a_foreign_origin_is_refused_before_accept(servers: Servers, user: Users) -> None:
    guarded = servers.start(WS_ALLOWED_ORIGINS="https://app.example,https://admin.example")
    with pytest.raises(InvalidStatus) as info:
        await StreamClient.open(
            guarded.base, "/api/ws/notifications", token(user()), origin="https://evil.example"
        )
    assert info.value.response.status_code == 403
    for origin in ("https://app.example", None):
        client = await StreamClient.open(
            guarded.base, "/api/ws/notifications", token(user()), origin=origin
        )
        assert (await client.recv()).type == "connected"
        await client.close()


async def test_a_reader_that_stops_is_closed_with_4408_and_the_others_keep_up(
    servers: Servers, open_stream: Opener, user: Users
) -> None:
    tight = servers.start(WS_SEND_QUEUE="4")
    name = user()
    slow = await open_stream(tight, name, max_queue=1)
    fast = await open_stream(tight, name)
    await slow.expect("connected")
    await fast.expect("connected")
    driver = Driver(tight.base, ADMIN)
    pad = "x" * 60_000
    received: list[str] = []
    done = asyncio.Event()

    async def read_fast() -> None:
        while not done.is_set():
            frame = await fast.recv(timeout=30)
            if frame.type == "notification":
                received.append(frame.data["title"])
                if frame.data["title"] == "after":
                    done.set()

    reader = asyncio.create_task(read_fast())
    sent = 0
    try:
        # Fill the socket buffers of the stream that does not read; bounded in count.
        for i in range(2000):
            await driver.publish(name, f"n{i}", pad=pad)
            sent += 1
            if i % 20 == 19 and (await driver.stats())["users"].get(name) == 1:
                break
        assert (await driver.stats())["users"].get(name) == 1, "slow stream never dropped"
        await driver.publish(name, "after")
        await asyncio.wait_for(asyncio.shield(reader), timeout=30)
        assert received == [f"n{i}" for i in range(sent)] + ["after"]
    finally:
        reader.cancel()
        await driver.aclose()
    frames = await slow.until_closed(timeout=30)  # reading again drains what the kernel held
    assert slow.close_code == WS_4408_SLOW_CONSUMER
    assert len([f for f in frames if f.type == "notification"]) < sent


async def test_sigterm_closes_every_stream_with_1001_and_exits(
    servers: Servers, open_stream: Opener, user: Users
) -> None:
    doomed = servers.start()
    clients = [await open_stream(doomed, user()) for _ in range(3)]
    for c in clients:
        await c.expect("connected")
    doomed.process.signal(signal.SIGTERM)
    for c in clients:
        await c.until_closed(timeout=10)
        assert c.close_code == CloseCode.GOING_AWAY
    # uvicorn re-raises the signal once it has shut down cleanly.
    assert await asyncio.to_thread(doomed.process.popen.wait, 15) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in doomed.process.log_text()


async def test_tokens_never_reach_the_log(
    servers: Servers, open_stream: Opener, user: Users
) -> None:
    logged = servers.start()
    tok = token(user())
    client = await open_stream(logged, None, tok=tok)
    await client.expect("connected")
    bad = await open_stream(logged, None, tok=tok + "x")
    with pytest.raises(Closed):
        await bad.recv()
    driver = Driver(logged.base, ADMIN)
    try:
        await driver.stats()
        await driver.after(tok, None)
    finally:
        await driver.aclose()
    await client.close()
    logged.process.stop()
    text = logged.process.log_text()
    assert "[redacted]" in text and "WebSocket /api/ws/notifications" in text
    assert tok.split(".")[2] not in text and ADMIN.split(".")[2] not in text
    assert "Traceback" not in text


async def test_serves_on_a_unix_socket(servers: Servers, tmp_path: Path, user: Users) -> None:
    sock = tmp_path / "notify.sock"
    on_uds = servers.start(uds=sock)
    transport = httpx.AsyncHTTPTransport(uds=str(sock))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        r = await http.get("/api/ws/stats", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200
    name = user()
    client = await StreamClient.open(
        "http://localhost", WS_NOTIFICATIONS_PATH, token(name), uds=str(sock)
    )
    try:
        assert (await client.recv()).data["user_id"] == name
    finally:
        await client.close()
    assert on_uds.uds == sock


async def test_a_peer_that_stops_answering_pings_is_dropped_and_its_slot_freed(
    servers: Servers, open_stream: Opener, user: Users
) -> None:
    pinging = servers.start(
        WS_PING_INTERVAL="0.3", WS_PING_TIMEOUT="0.3", WS_MAX_CONNECTIONS_PER_USER="1"
    )
    name = user()
    mute = await open_stream(pinging, name)
    await mute.expect("connected")
    mute.ws.transport.pause_reading()  # half-open: the peer no longer sees pings
    driver = Driver(pinging.base, ADMIN)
    try:

        async def dropped() -> bool:
            return not (await driver.stats())["users"].get(name)

        await until_true(dropped, 10, "the silent peer was never dropped")
    finally:
        await driver.aclose()
    again = await open_stream(pinging, name)
    assert (await again.recv()).type == "connected"


def test_gc_pauses_are_timed_and_full_collections_counted_until_taken() -> None:
    garbage = [[i] for i in range(50_000)]  # something for the collection to scan
    with GcPauses() as pauses:
        gc.collect()
        first = pauses.take()
        second = pauses.take()
    gc.collect()  # after the block: no longer counted
    assert first["full_collections"] == 1 and first["max_ms"] > 0
    assert (second["max_ms"], second["full_collections"]) == (0.0, 0)
    assert pauses.take() == second and garbage
