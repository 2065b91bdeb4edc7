"""Below the app: stalled request heads are closed by the deadline, the connection cap answers
503 before reading anything, and the server serves new users meanwhile."""

from __future__ import annotations

import asyncio
import gc
import resource
import time
import weakref

import httpx
from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.exceptions import InvalidStatus

from notify_client.client import StreamClient
from notify_client.waiting import until_true
from notify_stack.fixtures import Servers, token
from notify_stack.stack import ServerHandle
from reference_server.guard import (
    REFUSAL,
    RESERVED_FILES,
    GuardedWebSocketProtocol,
    default_max_connections,
)
from reference_server.protocol import PREPARED_FRAMES, WS_NOTIFICATIONS_PATH

HALF = b"GET /api/ws/notifications HTTP/1.1\r\nHost: 127.0.0.1\r\n"
STALLED = 800
DEADLINE = 5.0  # WS_HANDSHAKE_TIMEOUT's default
SLACK = 2.0


async def stall(
    server: ServerHandle, n: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    peers = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(HALF)
        peers.append((reader, writer))
    return peers


async def closed_after(reader: asyncio.StreamReader, since: float, limit: float) -> float | None:
    """Seconds until the server closed this peer (EOF), or None if it had not by `limit`."""
    try:
        async with asyncio.timeout(limit - (time.monotonic() - since)):
            while await reader.read(1024):
                pass
    except TimeoutError:
        return None
    return time.monotonic() - since


async def test_stalled_half_handshakes_are_closed_while_new_users_connect(
    servers: Servers,
) -> None:
    server = servers.start()
    started = time.monotonic()
    peers = await stall(server, STALLED)
    newcomer = await StreamClient.open(server.base, WS_NOTIFICATIONS_PATH, token("newcomer"))
    hello = await newcomer.expect("connected")
    await newcomer.close()
    waits = await asyncio.gather(*(closed_after(r, started, DEADLINE + SLACK) for r, _ in peers))
    for _, writer in peers:
        writer.close()
    assert hello.data["user_id"] == "newcomer"
    open_still = sum(w is None for w in waits)
    assert open_still == 0, f"{open_still} of {STALLED} stalled peers still open after the deadline"
    assert max(w for w in waits if w is not None) >= DEADLINE - 0.5  # closed by the deadline


async def test_a_whole_handshake_is_not_cut_by_the_deadline(servers: Servers) -> None:
    server = servers.start(WS_HANDSHAKE_TIMEOUT="0.5")
    stream = await StreamClient.open(server.base, WS_NOTIFICATIONS_PATH, token("stays"))
    await stream.expect("connected")
    # The first heartbeat comes 2 s in (WS_HEARTBEAT_INTERVAL here), past the 0.5 s deadline.
    beat = await stream.expect("heartbeat", timeout=5)
    await stream.close()
    assert beat.type == "heartbeat"


async def test_past_the_cap_a_connection_gets_503_and_the_slot_comes_back(
    servers: Servers,
) -> None:
    server = servers.start(WS_MAX_CONNECTIONS="20", WS_HANDSHAKE_TIMEOUT="30")
    peers = await stall(server, 20)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer == REFUSAL
    async with httpx.AsyncClient() as http:
        refused = await http.get(f"{server.base}/app/")
    assert refused.status_code == 503
    for _, w in peers:
        w.close()
    stream = await _connect_when_room(server)
    hello = await stream.expect("connected")
    await stream.close()
    assert hello.type == "connected"


async def _connect_when_room(server: ServerHandle) -> StreamClient:
    """The stalled peers' closes reach the server a moment after ours: a 503 meanwhile is
    retried until the deadline."""
    opened: list[StreamClient] = []

    async def room() -> bool:
        try:
            opened.append(
                await StreamClient.open(server.base, WS_NOTIFICATIONS_PATH, token("after"))
            )
        except InvalidStatus:
            return False
        return True

    await until_true(room, 5, "room again after the stalled peers left")
    return opened[0]


def test_the_default_cap_leaves_room_below_the_descriptor_limit() -> None:
    """Past the cap the server answers 503 while it still has descriptors for Redis and logs."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert 0 < default_max_connections() <= soft - RESERVED_FILES


async def test_a_handshake_websockets_cannot_parse_is_answered(servers: Servers) -> None:
    server = servers.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    filler = "".join(f"X-Filler-{i}: {'a' * 40}\r\n" for i in range(500))
    writer.write(
        b"GET /api/ws/notifications HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + filler.encode() + b"\r\n"
    )
    answer = await asyncio.wait_for(reader.read(), 5)  # the whole answer, then the close
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431 ")


class _Transport(asyncio.Transport):
    """Takes what the protocol writes; closing it ends the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default


async def test_a_closed_streams_protocol_is_freed_without_a_garbage_collection() -> None:
    """The prepared-frame writer in the scope must not keep the protocol in a cycle."""

    async def app(scope: object, receive: object, send: object) -> None:
        return None

    config = Config(app, ws_ping_interval=None)
    config.load()
    protocol = GuardedWebSocketProtocol(config, ServerState(), {})
    transport = _Transport()
    protocol.connection_made(transport)
    protocol.data_received(
        b"GET /api/ws/notifications HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert PREPARED_FRAMES in protocol.scope["extensions"]
    await asyncio.gather(*protocol.tasks)  # the app returns at once
    await asyncio.sleep(0)  # the tasks' done callbacks
    gone = weakref.ref(protocol)
    gc.disable()
    try:
        protocol.connection_lost(None)
        del protocol, transport
        assert gone() is None, "a reference cycle keeps the protocol of a closed stream"
    finally:
        gc.enable()
