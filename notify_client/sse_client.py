"""SSE side of the one protocol client: the legacy `text/event-stream` endpoints."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from notify_client.client import Closed, ProtocolViolation, next_of, until_closed
from notify_contract.protocol import LAST_ID_PARAM, TOKEN_PARAM, FrameType


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


def sse_request(
    token: str | None, last_event_id: str | None, last_id: str | None, token_in: str = "query"
) -> dict[str, Any]:
    """Query and headers of a stream request (the token in the query or as a Bearer header,
    and resume by header or query)."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    params: dict[str, str] = {}
    if token is not None and token_in == "header":
        headers["Authorization"] = f"Bearer {token}"
    elif token is not None:
        params[TOKEN_PARAM] = token
    if last_id is not None:
        params[LAST_ID_PARAM] = last_id
    return {"params": params, "headers": headers}


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
        token_in: str = "query",
    ) -> SseStream:
        http = httpx.AsyncClient(
            base_url=base, trust_env=False, timeout=httpx.Timeout(timeout, read=None)
        )
        asked = sse_request(token, last_event_id, last_id, token_in)
        request = http.build_request("GET", path, **asked)
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


class BlockingSseStream:
    """One open legacy SSE stream, blocking (the locust SSE users, under gevent).

    Streams share one `httpx.Client` (`shared_client`): making a client per stream builds an
    SSL context each time, and that alone saturated the generator at a few thousand streams.
    """

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.status: int = response.status_code
        self._lines = response.iter_lines()
        self._parser = SseParser()

    @staticmethod
    def shared_client(base: str, timeout: float = 10.0) -> httpx.Client:
        """A client for many concurrent streams: no limit on connections, none kept idle."""
        return httpx.Client(
            base_url=base,
            trust_env=False,
            timeout=httpx.Timeout(timeout, read=None),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
        )

    @classmethod
    def open(
        cls,
        http: httpx.Client,
        path: str,
        token: str | None,
        *,
        last_event_id: str | None = None,
    ) -> BlockingSseStream:
        request = http.build_request("GET", path, **sse_request(token, last_event_id, None))
        return cls(http.send(request, stream=True))

    def next(self) -> SseEvent:
        """The next event; Closed(None) when the server ends the stream."""
        for line in self._lines:
            event = self._parser.feed_line(line)
            if event is not None:
                return event
        raise Closed(None, "stream ended")

    def close(self) -> None:
        self.response.close()


def _event_name(event: SseEvent) -> str:
    return event.event
