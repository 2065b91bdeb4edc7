"""Below the ASGI app: a deadline for a request's head, a cap on connections, prepared frames.

uvicorn has neither for a request in progress: its keep-alive timeout covers only the idle time
between requests, so a peer that sends half a handshake holds a descriptor forever, and 20,000 of
them stop a process from accepting anyone. Its `limit_concurrency` answers 503 to plain requests
only, never to a WebSocket upgrade. This HTTP protocol (uvicorn's h11 one, subclassed) closes a
connection whose request head is not complete within the deadline, and answers 503 at once,
before reading anything, to a connection that would pass the cap.

The WebSocket protocol (uvicorn's websockets-sansio one, subclassed) also offers the app a frame
writer through the `PREPARED_FRAMES` scope extension: a fan-out writes one prepared frame to
each transport without an ASGI message, a coroutine and websockets' framing per stream. Its
pings come from the process's ping sweep (keepalive.py) instead of timers of its own.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import resource
from typing import Any, Final

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from reference_server.keepalive import LoopSweep, sweep_of
from reference_server.lean import Flag, Inbox
from reference_server.protocol import PREPARED_FRAMES
from reference_server.settings import load_settings

log = logging.getLogger("reference_server.guard")

# After a protocol failure, how long the peer has to finish sending and close its side.
LINGER_AFTER_FAILURE: Final = 2.0
# Descriptors kept for what is not a client: Redis pools, logs, the loop, a little slack.
RESERVED_FILES: Final = 256
REFUSAL: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"Content-Length: 34\r\n\r\n"
    b"too many connections, retry later\n"
)


def default_max_connections() -> int:
    """The process's open-file limit less RESERVED_FILES (at least 1)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1, soft - RESERVED_FILES)


@functools.cache
def ping_sweep() -> bool:
    """WS_PING_SWEEP of this process (read once)."""
    return load_settings().ws_ping_sweep


@functools.cache
def limits() -> tuple[float, int]:
    """WS_HANDSHAKE_TIMEOUT and the connection cap of this process (read once; every worker
    process reads its own environment)."""
    settings = load_settings()
    return settings.ws_handshake_timeout, settings.ws_max_connections or default_max_connections()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the deadline and the cap (uvicorn's `http=` option, by its
    import string, so that worker processes import it too)."""

    _deadline: asyncio.TimerHandle | None = None
    _armed_for: Any = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > limits()[1]:
            self.connections.discard(self)
            transport.write(REFUSAL)
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._armed_for = self.cycle
        self._deadline = self.loop.call_later(limits()[0], self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.cycle is self._armed_for and not self.transport.is_closing():
            log.info("closed a connection whose request head took over %gs", limits()[0])
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._deadline is not None and self.cycle is not self._armed_for:
            self._disarm()  # a whole request head arrived: the app has it now

    def handle_websocket_upgrade(self, event: Any) -> None:
        self._disarm()
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        before = self.cycle
        super().on_response_complete()
        # A keep-alive connection's next head has a deadline too, unless it came pipelined.
        if not self.transport.is_closing() and self.cycle is before:
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, answering a handshake websockets cannot parse, and
    writing prepared frames.

    When websockets refuses the request itself (over 128 headers: 431; a bad header line: 400)
    it queues that HTTP answer and yields no request event; uvicorn waits for the event, so
    the answer is never written and the client waits forever. Here it goes out, and the
    connection is closed.

    Per connection it holds less than uvicorn's: lean stand-ins for its Event and Queue, and
    neither the handshake's request nor its response once the stream is open.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag(True)  # type: ignore[assignment]
        self.sweep: LoopSweep | None = None  # the ping sweep, once the stream is open
        self.discarding = False  # a protocol failure closed the stream; input is read, dropped

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            self.request = self.response = None  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # The app starts on the next loop turn, so the scope can still gain the extension.
        # Negotiated compression makes each stream's frames differ: no writer then.
        if self.handshake_initiated and not self.close_sent and not self.conn.extensions:
            self.scope["extensions"][PREPARED_FRAMES] = {"write": self.write_prepared}

    def connection_lost(self, exc: Exception | None) -> None:
        # The scope holds the writer, a bound method of this protocol, which holds the scope: a
        # cycle only a full collection would free. Broken here, the protocol goes when the
        # stream does (the half-open-client fault row watches memory across rounds).
        if self.handshake_initiated and hasattr(self, "scope"):
            self.scope["extensions"].pop(PREPARED_FRAMES, None)
        super().connection_lost(exc)

    def start_keepalive(self) -> None:
        if not ping_sweep():
            super().start_keepalive()
        elif self.ping_interval and self.ping_timeout:
            self.sweep = sweep_of(self.loop, self.ping_interval, self.ping_timeout)
            self.sweep.join(self)

    def stop_keepalive(self) -> None:
        super().stop_keepalive()
        if self.sweep is not None:
            self.sweep.leave(self)
            self.sweep = None

    def write_ping(self, frame: bytes) -> bool:
        """The sweep's ping; control frames are never compressed, so every stream takes it."""
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return False
        self.transport.write(frame)
        return True

    def write_prepared(self, frame: bytes) -> bool:
        """Write a whole server frame unless the transport is paused (backpressure), closing,
        or past the close frame; False means nothing was written."""
        if (
            self.close_sent
            or self.disconnected
            or not self.handshake_complete
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True

    def handle_parser_exception(self) -> None:
        """A frame broke the protocol (1009 too big, 1002, 1007): the close frame goes out as
        in uvicorn, but the socket is read to its end instead of closed at once. Closed with
        the rest of an oversized frame still arriving, the kernel answers RST, which can drop
        the close frame before the peer reads it (it sees 1006, not 1009).

        uvicorn closes the socket as soon as the app returns unless a close timer is set: the
        app returns at once on its disconnect, and that close, with input unread, was the RST
        (through nginx, 3 streams in 300 saw 1006). nginx needs the same for its own client
        side: `lingering_close` in nginx_conf."""
        assert self.conn.close_sent is not None
        close = self.conn.close_sent
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": close.code, "reason": close.reason}
        )
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.discarding = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        # As uvicorn's own close timer, so that the app's return (it got its disconnect) does
        # not close the socket under the input still arriving: that close was the RST.
        self.close_timer = self.loop.call_later(LINGER_AFTER_FAILURE, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self.discarding:
            return  # after a protocol failure: read to the peer's end, ignore
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.transport.close()
