"""The one client of the notification protocol: WebSocket streams, asyncio form (the blocking
form, on the same handshake, parsing and waiting, is `blocking.py`).

Everything in the project that opens a stream goes through here: the reference server's tests,
the contract suite, the hypothesis tests and the load users (the blocking form, which runs under
gevent). Handshake and framing come from the `websockets` library; this module adds the
contract: URLs, token placement, frame parsing, and what to skip while waiting for a frame.
The SSE side is `sse_client.py`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed

from notify_contract.codes import describe
from notify_contract.protocol import DATA, LAST_ID_PARAM, TOKEN_PARAM, TYPE, FrameType

T = TypeVar("T")

# Called with ("sent" | "received" | "closed", text) for every frame; the suite's transcripts.
Recorder = Callable[[str, str], None]


class ProtocolViolation(Exception):
    """The server sent something that is not a contract frame, or not the one expected."""


class Closed(Exception):
    """The stream is closed; `code` is the close code the server sent (1006: none)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(
            f"closed with {describe(code)}" + (f", reason {reason!r}" if reason else "")
        )
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Frame:
    """One server frame, as received."""

    type: str
    data: dict[str, Any]
    raw: str
    at: float = field(default_factory=time.monotonic)


def parse_frame(text: str | bytes) -> Frame:
    """A server frame `{"type": T, "data": {...}}`; anything else is a ProtocolViolation."""
    if isinstance(text, bytes):
        raise ProtocolViolation("binary frame from the server")
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ProtocolViolation(f"frame is not JSON: {text[:200]!r}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get(TYPE), str):
        raise ProtocolViolation(f"frame has no string `type`: {text[:200]!r}")
    data = obj.get(DATA, {})
    if not isinstance(data, dict):
        raise ProtocolViolation(f"frame `data` is not an object: {text[:200]!r}")
    return Frame(obj[TYPE], data, text)


PING_FRAME = json.dumps({TYPE: FrameType.PING.value})


def wanted(kind: str, want: str, skip: Iterable[str]) -> bool:
    """True: this is the item waited for; False: skip it; ProtocolViolation: wrong item."""
    if kind == want:
        return True
    if kind in {str(s) for s in skip}:
        return False
    raise ProtocolViolation(f"expected {want}, got {kind}")


class Awaiting:
    """Waiting for one kind of item, with a deadline: what both forms of `expect` do, so that
    both say the same on a timeout (what was awaited and what came instead) and on a wrong
    item."""

    def __init__(self, want: str, timeout: float, skip: Iterable[str]) -> None:
        self.want, self.timeout, self.skip = want, timeout, tuple(str(s) for s in skip)
        self.deadline = time.monotonic() + timeout
        self.skipped: Counter[str] = Counter()

    @property
    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def done(self, kind: str, item: object) -> bool:
        """True: the item waited for; False: skip it; ProtocolViolation: a wrong item."""
        try:
            if wanted(kind, self.want, self.skip):
                return True
        except ProtocolViolation:
            raise ProtocolViolation(f"expected `{self.want}`, got {item}") from None
        self.skipped[kind] += 1
        return False

    def timed_out(self) -> TimeoutError:
        seen = ", ".join(f"{n} {k}" for k, n in self.skipped.items()) or "nothing"
        return TimeoutError(f"no `{self.want}` within {self.timeout:g} s; got {seen}")


async def next_of(
    receive: Callable[[float], Awaitable[T]],
    kind: Callable[[T], str],
    want: str,
    timeout: float,
    skip: Iterable[str],
) -> T:
    """The next item of kind `want`, passing over kinds in `skip`; a TimeoutError says what
    was awaited and what came instead."""
    waiting = Awaiting(want, timeout, skip)
    while True:
        try:
            item = await receive(waiting.left)
        except TimeoutError:
            raise waiting.timed_out() from None
        if waiting.done(kind(item), item):
            return item


async def until_closed(receive: Callable[[float], Awaitable[T]], timeout: float) -> list[T]:
    """Every item until the stream closes; TimeoutError if it does not close in time."""
    items = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            items.append(await receive(max(0.0, deadline - time.monotonic())))
        except Closed:
            return items


def stream_url(
    base: str, path: str, *, token: str | None = None, last_id: str | None = None
) -> str:
    """`base` (http://, https://, ws:// or wss://) + `path` + the query of docs/contract.md."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = {}
    if token is not None:
        query[TOKEN_PARAM] = token
    if last_id is not None:
        query[LAST_ID_PARAM] = last_id
    full_path = parts.path.rstrip("/") + path
    return urlunsplit((scheme, parts.netloc, full_path, urlencode(query), ""))


@dataclass(frozen=True)
class Handshake:
    """How to open one stream: the URL and the `websockets` options, for either form."""

    url: str
    options: dict[str, Any]

    @classmethod
    def build(
        cls,
        base: str,
        path: str,
        token: str | None,
        *,
        token_in: str = "query",
        last_id: str | None = None,
        origin: str | None = None,
        max_queue: int | None = 64,
        max_size: int | None = 2**22,
        open_timeout: float = 10.0,
        extra_headers: dict[str, str] | None = None,
        compression: str | None = None,
        local_address: str | None = None,
    ) -> Handshake:
        """`token_in` is "query" (`?token=`) or "header" (`Authorization: Bearer`);
        `compression="deflate"` offers permessage-deflate; `local_address` is the source
        address to connect from (one of 127.0.0.0/8 on loopback)."""
        if token_in not in ("query", "header"):
            raise ValueError(f"token_in must be 'query' or 'header', not {token_in!r}")
        headers = dict(extra_headers or {})
        if token_in == "header" and token is not None:
            headers["Authorization"] = f"Bearer {token}"
        query_token = token if token_in == "query" else None
        source = {"local_addr": (local_address, 0)} if local_address else {}
        return cls(
            stream_url(base, path, token=query_token, last_id=last_id),
            {
                **source,
                "origin": origin,
                "additional_headers": headers,
                "compression": compression,
                "max_queue": max_queue,
                "max_size": max_size,
                "open_timeout": open_timeout,
                "ping_interval": None,  # the server pings; the library answers them
                "close_timeout": 5,
            },
        )


class Connection(Protocol):
    """What a stream's transport says of its close (websockets' connection, `SansIOSocket`)."""

    @property
    def close_code(self) -> int | None: ...
    @property
    def close_reason(self) -> str | None: ...


class Stream:
    """What both forms share: parsing, the transcript, the close code."""

    def __init__(self, ws: Connection, record: Recorder | None, keep: bool = True) -> None:
        """`keep=False`: do not keep the frames in `received` (a load generator's streams)."""
        self._conn = ws
        self.received: list[Frame] = []
        self._record = record
        self._keep = keep

    @property
    def close_code(self) -> int | None:
        return self._conn.close_code

    def _received(self, text: str | bytes) -> Frame:
        self._note("received", text if isinstance(text, str) else f"<{len(text)} binary bytes>")
        frame = parse_frame(text)
        if self._keep:
            self.received.append(frame)
        return frame

    def _closed(self) -> Closed:
        reason = self._conn.close_reason or ""
        self._note("closed", f"{self.close_code} {reason}".strip())
        return Closed(self.close_code, reason)

    def _note(self, direction: str, text: str) -> None:
        if self._record is not None:
            self._record(direction, text)


class StreamClient(Stream):
    """One open stream (asyncio): parsed frames in, client frames out, the close code."""

    def __init__(self, ws: ClientConnection, record: Recorder | None = None) -> None:
        super().__init__(ws, record)
        self.ws = ws

    @classmethod
    async def open(
        cls,
        base: str,
        path: str,
        token: str | None,
        *,
        uds: str | None = None,
        record: Recorder | None = None,
        **handshake: Any,
    ) -> StreamClient:
        """Connect (see `Handshake.build` for the options); `uds`: through that unix socket."""
        hs = Handshake.build(base, path, token, **handshake)
        if uds is not None:
            return cls(await unix_connect(uds, hs.url, **hs.options), record)
        return cls(await connect(hs.url, proxy=None, **hs.options), record)

    async def recv(self, timeout: float = 5.0) -> Frame:
        """The next frame; Closed if the stream ended, TimeoutError if none came in time."""
        try:
            text = await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed:
            raise self._closed() from None
        except TimeoutError:
            raise TimeoutError(f"no frame within {timeout:g} s") from None
        return self._received(text)

    async def expect(
        self,
        frame_type: FrameType | str,
        timeout: float = 5.0,
        skip: Iterable[str] = (FrameType.HEARTBEAT,),
    ) -> Frame:
        """The next frame not of a type in `skip`; ProtocolViolation if not `frame_type`."""
        return await next_of(self.recv, _frame_type, str(frame_type), timeout, skip)

    async def until_closed(self, timeout: float = 10.0) -> list[Frame]:
        """Every frame until the server closes; TimeoutError if it does not close in time."""
        return await until_closed(self.recv, timeout)

    async def ping(self) -> None:
        await self.send_text(PING_FRAME)

    async def send_text(self, text: str) -> None:
        self._note("sent", text)
        await self.ws.send(text)

    async def send_bytes(self, data: bytes) -> None:
        self._note("sent", f"<{len(data)} binary bytes>")
        await self.ws.send(data)

    async def send_text_bytes(self, data: bytes) -> None:
        """A text frame with exactly these bytes, valid UTF-8 or not."""
        self._note("sent", f"<text frame of {len(data)} raw bytes>")
        await self.ws.send(data, text=True)

    @property
    def extensions(self) -> str:
        """The Sec-WebSocket-Extensions the server accepted ("" if none)."""
        response = self.ws.response
        return "" if response is None else response.headers.get("Sec-WebSocket-Extensions", "")

    async def close(self, code: int = 1000) -> None:
        await self.ws.close(code)


def _frame_type(frame: Frame) -> str:
    return frame.type


async def notifications_until(
    client: StreamClient, marker: str, timeout: float = 10.0
) -> list[Frame]:
    """Every `notification` up to and including the one titled `marker` (others skipped)."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        frame = await client.recv(max(0.0, deadline - time.monotonic()))
        if frame.type == FrameType.NOTIFICATION:
            got.append(frame)
            if frame.data.get("title") == marker:
                return got
