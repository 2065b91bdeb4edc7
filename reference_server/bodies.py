"""Request bodies read with a size cap and a deadline, before any endpoint (or its auth) runs.

Without it a POST of 64 MB with no token was read whole before the 401 (server memory 60 to
188 MB), and a body trickled at a byte a second held its connection as long as the client
liked: the request-head deadline (guard.py) ends when the head is complete. nginx stops both
(413, its body timeout); a server run without it did not.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATUS_TEXT: Final = {408: "request body too slow\n", 413: "request body too large\n"}
# After a 413, what the client is still sending is read and dropped for this long, at most this
# much, before the connection closes: closing on unread data resets the connection, and a client
# still sending then loses the answer (nginx's lingering close does the same).
LINGER_S: Final = 2.0
LINGER_BYTES: Final = 16 * 2**20


def declared_length(scope: Scope) -> int | None:
    """The request's Content-Length, None when absent or not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """Reads each HTTP request's body before the app does: at most `max_bytes` (413, before a
    byte of it is read when Content-Length says so) and within `timeout` seconds of the head
    (408). The app then receives the body as usual; later receives go to the client."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            return await refuse(send, 413, linger=receive)
        try:
            async with asyncio.timeout(self.timeout):
                read = await self.read(receive)
        except TimeoutError:
            return await refuse(send, 408)
        if read is None:
            return await refuse(send, 413, linger=receive)
        await self.app(scope, replay(read, receive), send)

    async def read(self, receive: Receive) -> list[Message] | None:
        """The body's messages, or None past `max_bytes`; a disconnect ends it early."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return None
            if not message.get("more_body", False):
                return messages


def replay(messages: list[Message], receive: Receive) -> Receive:
    """The messages already read, then the client's own."""
    pending = list(messages)

    async def again() -> Message:
        return pending.pop(0) if pending else await receive()

    return again


async def refuse(send: Send, status: int, linger: Receive | None = None) -> None:
    """The answer, whole; with `linger`, the response is ended (and the connection closed) only
    once the client's body has been drained for a moment."""
    text = STATUS_TEXT[status].encode()
    headers: list[tuple[bytes, Any]] = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(text)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text, "more_body": linger is not None})
    if linger is not None:
        await drain(linger)
        await send({"type": "http.response.body", "body": b""})


async def drain(receive: Receive) -> None:
    """Read and drop the rest of a body: until its end, a disconnect, LINGER_S or LINGER_BYTES."""
    dropped = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINGER_S):
            while dropped < LINGER_BYTES:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
                dropped += len(message.get("body", b""))
