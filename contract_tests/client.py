"""The one client of the notification protocol (asyncio form).

Everything in the project that opens a stream goes through here: the reference server's tests,
the contract suite, the hypothesis tests and the load users. Handshake and transport come from
the `websockets` library; this module adds the contract: URLs, token placement, frame parsing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed

from reference_server.protocol import DATA, LAST_ID_PARAM, TOKEN_PARAM, TYPE, FrameType

T = TypeVar("T")


class ProtocolViolation(Exception):
    """The server sent something that is not a contract frame."""


class Closed(Exception):
    """The stream is closed; `code` is the close code the server sent (1006: none)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed with {code} {reason!r}")
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


async def next_of(
    receive: Callable[[float], Awaitable[T]],
    kind: Callable[[T], str],
    wanted: str,
    timeout: float,
    skip: Iterable[str],
) -> T:
    """The next item not of a `skip` kind; ProtocolViolation if it is not of kind `wanted`."""
    skipped = {str(s) for s in skip}
    deadline = time.monotonic() + timeout
    while True:
        item = await receive(max(0.0, deadline - time.monotonic()))
        if kind(item) == wanted:
            return item
        if kind(item) not in skipped:
            raise ProtocolViolation(f"expected {wanted}, got {item}")


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
    """`base` (http://, https://, ws:// or wss://) + `path` + the query of CONTRACT.md."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = {}
    if token is not None:
        query[TOKEN_PARAM] = token
    if last_id is not None:
        query[LAST_ID_PARAM] = last_id
    full_path = parts.path.rstrip("/") + path
    return urlunsplit((scheme, parts.netloc, full_path, urlencode(query), ""))


class StreamClient:
    """One open stream: receive parsed frames, send client frames, see the close code."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[Frame] = []

    @classmethod
    async def open(
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
        uds: str | None = None,
    ) -> StreamClient:
        """Connect; `token_in` is "query" or "header" (`Authorization: Bearer`).

        With `uds`, the connection goes to that unix socket; `base` still names the Host.
        """
        headers = dict(extra_headers or {})
        query_token = token if token_in == "query" else None
        if token_in == "header" and token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = stream_url(base, path, token=query_token, last_id=last_id)
        options: dict[str, Any] = {
            "origin": origin,
            "additional_headers": headers,
            "compression": None,
            "max_queue": max_queue,
            "max_size": max_size,
            "open_timeout": open_timeout,
            "ping_interval": None,
            "close_timeout": 5,
        }
        if uds is not None:
            return cls(await unix_connect(uds, url, **options))
        return cls(await connect(url, proxy=None, **options))

    async def recv(self, timeout: float = 5.0) -> Frame:
        """The next frame; Closed if the stream ended, TimeoutError if none came in time."""
        try:
            text = await asyncio.wait_for(self.ws.recv(), timeout)
        except ConnectionClosed:
            raise Closed(self.close_code, self.ws.close_reason or "") from None
        frame = parse_frame(text)
        self.received.append(frame)
        return frame

    async def expect(
        self,
        frame_type: FrameType | str,
        timeout: float = 5.0,
        skip: Iterable[str] = (FrameType.HEARTBEAT,),
    ) -> Frame:
        """The next frame that is not in `skip`; ProtocolViolation if it is not `frame_type`."""
        return await next_of(self.recv, _frame_type, str(frame_type), timeout, skip)

    async def until_closed(self, timeout: float = 10.0) -> list[Frame]:
        """Every frame until the server closes; TimeoutError if it does not close in time."""
        return await until_closed(self.recv, timeout)

    async def ping(self) -> None:
        await self.send_text(json.dumps({TYPE: FrameType.PING.value}))

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send(data)

    async def close(self, code: int = 1000) -> None:
        await self.ws.close(code)

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    async def __aenter__(self) -> StreamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@dataclass(frozen=True)
class SseEvent:
    """One legacy SSE event; `data` is the parsed JSON of its data lines."""

    event: str
    id: str | None
    data: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class SseParser:
    """Incremental `text/event-stream` parser (the WHATWG rules this protocol uses)."""

    def __init__(self) -> None:
        self._event = "message"
        self._id: str | None = None
        self._data: list[str] = []

    def feed_line(self, line: str) -> SseEvent | None:
        if line == "":
            if not self._data:
                self._event, self._id = "message", None
                return None
            text = "\n".join(self._data)
            event = SseEvent(self._event, self._id, _json_object(text))
            self._event, self._id, self._data = "message", None, []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


def _json_object(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ProtocolViolation(f"SSE data is not JSON: {text[:200]!r}") from exc
    if not isinstance(obj, dict):
        raise ProtocolViolation(f"SSE data is not an object: {text[:200]!r}")
    return obj


class SseStream:
    """One open legacy SSE stream (httpx); `status` and `headers` are the response's."""

    def __init__(self, http: httpx.AsyncClient, response: httpx.Response) -> None:
        self._http = http
        self.response = response
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self._lines = response.aiter_lines()
        self._parser = SseParser()
        self.received: list[SseEvent] = []

    @classmethod
    async def open(
        cls,
        base: str,
        path: str,
        token: str | None,
        *,
        last_event_id: str | None = None,
        last_id: str | None = None,
        timeout: float = 10.0,
    ) -> SseStream:
        http = httpx.AsyncClient(
            base_url=base, trust_env=False, timeout=httpx.Timeout(timeout, read=None)
        )
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        params: dict[str, str] = {} if token is None else {TOKEN_PARAM: token}
        if last_id is not None:
            params[LAST_ID_PARAM] = last_id
        request = http.build_request("GET", path, params=params, headers=headers)
        try:
            response = await http.send(request, stream=True)
        except BaseException:
            await http.aclose()
            raise
        return cls(http, response)

    async def next(self, timeout: float = 5.0) -> SseEvent:
        """The next event; Closed(None) when the server ends the stream."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = await asyncio.wait_for(
                    anext(self._lines), max(0.0, deadline - time.monotonic())
                )
            except StopAsyncIteration:
                raise Closed(None, "stream ended") from None
            event = self._parser.feed_line(line)
            if event is not None:
                self.received.append(event)
                return event

    async def expect(
        self, event: str, timeout: float = 5.0, skip: Iterable[str] = (FrameType.HEARTBEAT,)
    ) -> SseEvent:
        return await next_of(self.next, _event_name, event, timeout, skip)

    async def until_end(self, timeout: float = 10.0) -> list[SseEvent]:
        return await until_closed(self.next, timeout)

    async def aclose(self) -> None:
        await self.response.aclose()
        await self._http.aclose()


def _frame_type(frame: Frame) -> str:
    return frame.type


def _event_name(event: SseEvent) -> str:
    return event.event
