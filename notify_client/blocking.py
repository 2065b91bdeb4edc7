"""The blocking form of the stream client: plain sockets driving websockets' sans-I/O client
protocol, so it runs under gevent (the load users) and in threads (the hypothesis tests). The
handshake, the parsing and the waiting are `client.py`'s."""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Final

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from notify_client.client import PING_FRAME, Awaiting, Closed, Frame, Handshake, Recorder, Stream
from notify_contract.codes import CloseCode
from notify_contract.protocol import FrameType


class SansIOSocket:
    """A blocking socket driving websockets' sans-I/O client protocol: one greenlet (or
    thread) per stream and no reader thread, so a generator holds many streams cheaply."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self.sock = sock
        # The operating system's socket: gevent keeps it, non-blocking, behind its wrapper.
        self.os_socket: socket.socket = getattr(sock, "_sock", sock)
        self.protocol = protocol
        self.pending: deque[Any] = deque()
        self.eof = False

    @property
    def close_code(self) -> int | None:
        if self.protocol.close_rcvd is not None:
            return self.protocol.close_rcvd.code
        return CloseCode.ABNORMAL_CLOSURE if self.eof else None

    @property
    def close_reason(self) -> str | None:
        rcvd = self.protocol.close_rcvd
        return rcvd.reason if rcvd is not None else None

    def flush(self) -> None:
        data = b"".join(self.protocol.data_to_send())
        if not data:
            return
        try:  # most writes (pongs, a close reply) fit the socket's buffer at once
            sent = self.os_socket.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self.sock.sendall(data[sent:])

    def pump(self, timeout: float) -> None:
        """Read once (waiting up to `timeout`), feed the protocol, send what it answers."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise
        except OSError:
            data = b""
        self._feed(data)

    def pump_ready(self) -> None:
        """What is there now, without waiting: for a socket an epoll found readable (the herd),
        read past gevent's wrapper and its per-call timeout, a tenth of the generator's CPU."""
        try:
            data = self.os_socket.recv(65536)
        except BlockingIOError:
            return  # woken, but nothing to read after all
        except OSError:
            data = b""
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        if data:
            self.protocol.receive_data(data)
        else:
            self.eof = True
            self.protocol.receive_eof()
        self.pending.extend(self.protocol.events_received())
        try:  # noqa: SIM105 (a context manager cost 1% of a generator's CPU: this runs per frame)
            self.flush()  # pongs and the close reply
        except OSError:
            pass


# Linux's IP_BIND_ADDRESS_NO_PORT (Python 3.12 names it): bind picks the address, connect the port.
_BIND_ADDRESS_NO_PORT: Final = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def connect_from(
    address: tuple[str, int], timeout: float, source: tuple[str, int] | None
) -> socket.socket:
    """A TCP connection, from `source` if given. A bind to port 0 makes the kernel search for a
    port free for every destination, which grows with the ports in use: 20,000 streams from one
    address took a 100k run's ramp from 400 to 60 connects a second, all in the kernel's
    `inet_csk_get_port`. With IP_BIND_ADDRESS_NO_PORT the port is chosen at connect, per
    destination, as for a connection without a source address."""
    if source is None or source[1] != 0 or not sys.platform.startswith("linux"):
        return socket.create_connection(address, timeout=timeout, source_address=source)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, _BIND_ADDRESS_NO_PORT, 1)
        sock.settimeout(timeout)
        sock.bind(source)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


class BlockingStreamClient(Stream):
    """One open stream, blocking: plain sockets, so it runs under gevent (the locust users)."""

    def __init__(self, io: SansIOSocket, record: Recorder | None = None, keep: bool = True) -> None:
        super().__init__(io, record, keep)
        self.io = io

    @classmethod
    def open(
        cls,
        base: str,
        path: str,
        token: str | None,
        *,
        record: Recorder | None = None,
        source_address: tuple[str, int] | None = None,
        keep: bool = True,
        **handshake: Any,
    ) -> BlockingStreamClient:
        """Connect (see `Handshake.build`); `source_address` picks the local address; `keep`:
        see `Stream`."""
        hs = Handshake.build(base, path, token, **handshake)
        uri = parse_uri(hs.url)
        timeout = hs.options["open_timeout"]
        sock = connect_from((uri.host, uri.port), timeout, source_address)
        protocol = ClientProtocol(uri, origin=hs.options["origin"], max_size=hs.options["max_size"])
        request = protocol.connect()
        for name, value in hs.options["additional_headers"].items():
            request.headers[name] = value
        protocol.send_request(request)
        io = SansIOSocket(sock, protocol)
        try:
            io.flush()
            deadline = time.monotonic() + timeout
            while protocol.state is State.CONNECTING:
                io.pump(deadline - time.monotonic())
            if protocol.handshake_exc is not None:
                raise protocol.handshake_exc
            io.pending.popleft()  # the handshake response
        except BaseException:
            sock.close()
            raise
        return cls(io, record, keep)

    def take(self) -> Frame | None:
        """The next frame already read, without waiting (None: none yet); Closed when the
        stream closed. A loop that watches many sockets calls `io.pump` when one is readable,
        then this until None."""
        while self.io.pending:
            event = self.io.pending.popleft()
            if event.opcode is Opcode.TEXT:
                return self._received(event.data.decode())
            if event.opcode is Opcode.BINARY:
                return self._received(bytes(event.data))
            if event.opcode is Opcode.CLOSE:
                raise self._closed()
        if self.io.eof or self.io.protocol.state is State.CLOSED:
            raise self._closed()
        return None

    def recv(self, timeout: float = 5.0) -> Frame:
        """The next text frame; Closed when the stream closed; TimeoutError if none came."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.take()
            if frame is not None:
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame in time")
            self.io.pump(left)

    def expect(
        self,
        frame_type: FrameType | str,
        timeout: float = 5.0,
        skip: Iterable[str] = (FrameType.HEARTBEAT,),
    ) -> Frame:
        """The next frame not of a type in `skip`; ProtocolViolation if not `frame_type`; a
        TimeoutError says what was awaited and what came (as the asyncio form's)."""
        waiting = Awaiting(str(frame_type), timeout, skip)
        while True:
            try:
                frame = self.recv(waiting.left)
            except TimeoutError:
                raise waiting.timed_out() from None
            if waiting.done(frame.type, frame):
                return frame

    def ping(self) -> None:
        self.send_text(PING_FRAME)

    def send_text(self, text: str) -> None:
        self._note("sent", text)
        self.io.protocol.send_text(text.encode())
        self.io.flush()

    def send_bytes(self, data: bytes) -> None:
        self._note("sent", f"<{len(data)} binary bytes>")
        self.io.protocol.send_binary(data)
        self.io.flush()

    def until_closed(self, timeout: float = 10.0) -> list[Frame]:
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                frames.append(self.recv(max(0.0, deadline - time.monotonic())))
            except Closed:
                return frames

    def close(self, code: int = 1000) -> None:
        """Send a close frame (if still open) and drop the socket."""
        with contextlib.suppress(OSError, InvalidState):
            if self.io.protocol.state is State.OPEN:
                self.io.protocol.send_close(code)
                self.io.flush()
        self.io.sock.close()
