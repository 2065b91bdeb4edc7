"""Request bodies: too large is refused before it is read, too slow is cut off, against a real
server over raw sockets (no client library that would send the body whole)."""

from __future__ import annotations

import asyncio
import time

import pytest

from notify_stack.fixtures import Servers
from notify_stack.stack import ServerHandle
from reference_server.bodies import LINGER_BYTES, declared_length

HEAD = (
    "POST /api/notifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{length}\r\n"
)


@pytest.fixture(scope="module")
def guarded(servers: Servers) -> ServerHandle:
    return servers.start(HTTP_BODY_TIMEOUT="1", HTTP_MAX_BODY_BYTES="4096")


async def answer(
    server: ServerHandle, head: str, body: bytes = b"", timeout: float = 5.0
) -> tuple[str, bool]:
    """The status line the server sends after `head` and `body`, and whether it then closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        status = (await asyncio.wait_for(reader.readline(), timeout)).decode().strip()
        try:
            await asyncio.wait_for(reader.read(), timeout)  # to EOF: the server closed
        except TimeoutError:
            return status, False
        return status, True
    finally:
        writer.close()


async def test_a_declared_oversized_body_gets_413_before_a_byte_of_it(
    guarded: ServerHandle,
) -> None:
    status, closed = await answer(guarded, HEAD.format(length="Content-Length: 67108864\r\n"))
    assert status.startswith("HTTP/1.1 413"), status
    assert closed


async def test_a_chunked_body_past_the_cap_gets_413(guarded: ServerHandle) -> None:
    chunk = b"1000\r\n" + b"a" * 4096 + b"\r\n"
    head = HEAD.format(length="Transfer-Encoding: chunked\r\n")
    status, _ = await answer(guarded, head, chunk * 2)
    assert status.startswith("HTTP/1.1 413"), status


async def test_a_client_still_sending_after_the_413_is_drained_not_reset(
    guarded: ServerHandle,
) -> None:
    """The server reads and drops the rest for a moment before it closes: closing on unread
    data resets the connection, and the client, still writing, would lose the 413 (through
    nginx it became a 502)."""
    chunk = b"%x\r\n%s\r\n" % (2**16, b"a" * 2**16)
    total = 12 * 2**20  # past what loopback buffers hold, under LINGER_BYTES
    assert total < LINGER_BYTES
    reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
    try:
        writer.write(HEAD.format(length="Transfer-Encoding: chunked\r\n").encode())
        for _ in range(total // len(chunk)):
            writer.write(chunk)
            await writer.drain()  # a reset would raise here
        status = (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
    finally:
        writer.close()
    assert status.startswith("HTTP/1.1 413"), status


async def test_a_trickled_body_gets_408_at_the_deadline(guarded: ServerHandle) -> None:
    started = time.monotonic()
    status, closed = await answer(guarded, HEAD.format(length="Content-Length: 100\r\n"), b"{")
    took = time.monotonic() - started
    assert status.startswith("HTTP/1.1 408"), status
    assert closed and 0.9 < took < 4, took


async def test_a_body_within_the_limits_reaches_the_endpoint(guarded: ServerHandle) -> None:
    body = b'{"user_id": "u", "title": "t"}'
    status, _ = await answer(guarded, HEAD.format(length=f"Content-Length: {len(body)}\r\n"), body)
    assert status.startswith("HTTP/1.1 401"), status  # no token: the endpoint's own answer


def test_content_length_is_read_from_the_headers() -> None:
    assert declared_length({"headers": [(b"content-length", b"12")]}) == 12
    assert declared_length({"headers": [(b"content-length", b"x")]}) is None
    assert declared_length({"headers": []}) is None
