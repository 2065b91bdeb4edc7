"""Notification streams for locust users that report to locust themselves, the way locust's
contrib clients (socket.io, websocket) fire request events: the user only says what to do.

Built on the one protocol client (blocking form, which runs under gevent) and a StreamSession for
the resume id and the reconnect policy. Request events, per stream kind ("WS" or "SSE"):

| name | response time |
|---|---|
| `connect` | time to the `connected` frame (a failure: why it did not come) |
| `close <code>`, `gap`, `duplicate` | failures: unexpected close, lost or repeated |

Delivery latency (now - `sent_at` in the payload), overall and per broadcast, goes into the
user's histograms (`loadtests.latencies`), not into an event per notification; heartbeats into
its count there.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from locust.env import Environment
from websockets.exceptions import InvalidHandshake

from loadtests.latencies import Latencies
from notify_client.blocking import BlockingStreamClient
from notify_client.client import Closed, Frame, ProtocolViolation
from notify_client.session import Delivery, StreamSession
from notify_client.sse_client import BlockingSseStream
from notify_contract.protocol import SSE_NOTIFICATIONS_PATH, WS_NOTIFICATIONS_PATH, FrameType
from notify_contract.reconnect import ReconnectPolicy


def fire(
    environment: Environment,
    kind: str,
    name: str,
    ms: float,
    length: int = 0,
    error: str | None = None,
) -> None:
    environment.events.request.fire(  # type: ignore[no-untyped-call]
        request_type=kind,
        name=name,
        response_time=ms,
        response_length=length,
        exception=None if error is None else RuntimeError(error),
        context={},
    )


class Reporter:
    """What one stream tells locust: latency of each notification, gaps or repeats in the
    broadcast numbers (`seq`), heartbeats, closes. It also keeps the stream's own record for
    the run's tally: when it first got `connected` and every notification id it received."""

    def __init__(
        self, environment: Environment, kind: str, latencies: Latencies | None = None
    ) -> None:
        """`latencies`: the histograms this stream adds to (one per herd, shared)."""
        self.environment = environment
        self.kind = kind
        self.latencies = latencies if latencies is not None else Latencies()
        self.last_seq: int | None = None
        self.connected_at: float | None = None  # wall clock of the first `connected`
        self.misnamed: str | None = None  # whom `connected` named, when not this stream's user
        # Notifications whose payload carried no `sent_at` (a server that drops unknown fields):
        # id and arrival time, for a latency measured from the driver's publish time instead.
        self.arrivals: list[tuple[str, float]] = []
        self.ids: list[str] = []  # in arrival order, repeats included

    def connected(self, session: StreamSession) -> None:
        if self.connected_at is None:
            self.connected_at = time.time()
        if session.misnamed is not None and self.misnamed is None:
            self.misnamed = session.misnamed
            self.fire(
                "misrouted", error=f"`connected` named {session.misnamed}, not {session.user!r}"
            )

    def record(self, name: str, user: str) -> dict[str, Any]:
        """The stream's log line (notify_client.ledger.StreamLog), written when it stops."""
        return {
            "name": name,
            "user": user,
            "connected_at": self.connected_at,
            "misnamed": self.misnamed,
            "arrivals": self.arrivals,
            "ended_at": time.time(),
            "ids": self.ids,
        }

    def fire(self, name: str, ms: float = 0, length: int = 0, error: str | None = None) -> None:
        fire(self.environment, self.kind, name, ms, length, error)

    def notification(self, delivery: Delivery, size: int) -> None:
        # Every stream gets the broadcast's id: one string for all (a 100k run keeps them all).
        self.ids.append(sys.intern(delivery.id))
        data = delivery.data
        sent_at = data.get("sent_at")
        seq = data.get("seq")
        if isinstance(sent_at, int | float):
            latency = max(0.0, (time.time() - sent_at) * 1000)
            self.latencies.add(latency, seq if isinstance(seq, int) else None)
        else:  # a payload without the publisher's clock: its latency comes from the publish log
            self.arrivals.append((delivery.id, time.time()))
            self.latencies.untimed += 1
        if delivery.repeat:
            self.fire("duplicate", error=f"id {delivery.id} again")
        if isinstance(seq, int):
            if self.last_seq is not None:
                if seq <= self.last_seq:
                    self.fire("duplicate", error=f"seq {seq} again")
                elif seq > self.last_seq + 1:
                    for lost in range(self.last_seq + 1, seq):
                        self.fire("gap", error=f"seq {lost} lost")
            self.last_seq = max(seq, self.last_seq or 0)

    def frame(self, kind: str, step: object, size: int) -> None:
        if isinstance(step, Delivery):
            self.notification(step, size)
        elif kind == FrameType.HEARTBEAT:
            self.latencies.heartbeats += 1


class WsStream:
    """One WebSocket notification stream that reconnects by the contract and reports itself."""

    def __init__(
        self,
        environment: Environment,
        target: str,
        token: Callable[[], str],
        *,
        user: str | None = None,
        source_address: tuple[str, int] | None = None,
        compression: str | None = None,
        latencies: Latencies | None = None,
    ) -> None:
        """`compression="deflate"` offers permessage-deflate, as browsers do; `latencies`: the
        histograms it adds to (its herd's)."""
        self.target = target
        self.token = token
        self.source_address = source_address
        self.compression = compression
        self.session = StreamSession(ReconnectPolicy(jitter=True), user=user)
        self.report = Reporter(environment, "WS", latencies)
        self.stream: BlockingStreamClient | None = None

    def connect(self) -> bool:
        """Open and read up to `connected`; reports `connect` either way."""
        started = time.perf_counter()
        stream = None
        try:
            stream = BlockingStreamClient.open(
                self.target,
                WS_NOTIFICATIONS_PATH,
                self.token(),
                last_id=self.session.last_id,
                source_address=self.source_address,
                compression=self.compression,
                max_queue=None,
                open_timeout=60,
                keep=False,
            )
            self.session.opened()
            hello = stream.recv(timeout=60)
        except (OSError, TimeoutError, Closed, InvalidHandshake, ProtocolViolation) as exc:
            if stream is not None:
                stream.close()
            self._connected(started, f"{type(exc).__name__}: {exc}")
            return False
        if hello.type != FrameType.CONNECTED:
            stream.close()
            self._connected(started, f"first frame {hello.type}")
            return False
        self.session.received(hello.type, hello.data)
        self.report.connected(self.session)
        self._connected(started, None, len(hello.raw))
        self.stream = stream
        return True

    def _connected(self, started: float, error: str | None, length: int = 0) -> None:
        self.report.fire("connect", (time.perf_counter() - started) * 1000, length, error)

    def read(self, timeout: float) -> None:
        """One frame (TimeoutError if none came); Closed when the stream ended."""
        assert self.stream is not None
        self._report(self.stream.recv(timeout=timeout))

    def read_ready(self, *, pump: bool = True) -> None:
        """Every frame there is now, without waiting: call it when the socket is readable
        (`pump=False`: only what was read already, as after `connect`). Closed: it ended."""
        assert self.stream is not None
        if pump:
            self.stream.io.pump_ready()
        while (frame := self.stream.take()) is not None:
            self._report(frame)

    def _report(self, frame: Frame) -> None:
        self.report.frame(frame.type, self.session.received(frame.type, frame.data), len(frame.raw))

    def hold(self, timeout: float = 3600) -> int | None:
        """Read until the stream closes; reports the close and returns its code."""
        try:
            while True:
                self.read(timeout)
        except Closed as closed:
            return self.ended(closed)

    def ended(self, closed: Closed) -> int | None:
        """Report the close, drop the socket, return the code."""
        self.report.fire(f"close {closed.code}", error=closed.reason or "closed")
        self.close()  # its socket: an 80k run ran out of descriptors without this
        return closed.code

    def violated(self, exc: ProtocolViolation) -> None:
        """The server sent what the contract does not allow: report it, drop the stream."""
        self.report.fire("protocol violation", error=str(exc))
        self.close()

    def next_attempt(self, code: int | None) -> float | None:
        """When to connect again after `code` (monotonic clock), or None: give up."""
        return self.session.closed(code)

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


class LocustSseStream:
    """One legacy SSE stream on a shared HTTP client; resumes with Last-Event-ID."""

    def __init__(
        self,
        environment: Environment,
        http: httpx.Client,
        token: Callable[[], str],
        user: str | None = None,
    ):
        self.http = http
        self.token = token
        self.session = StreamSession(user=user)
        self.report = Reporter(environment, "SSE")

    def hold(self) -> bool:
        """Open, then read until the stream ends; False if it did not open."""
        started = time.perf_counter()
        try:
            stream = BlockingSseStream.open(
                self.http,
                SSE_NOTIFICATIONS_PATH,
                self.token(),
                last_event_id=self.session.last_id,
            )
            first = stream.next()
        except (OSError, Closed) as exc:
            self.report.fire(
                "connect",
                (time.perf_counter() - started) * 1000,
                error=f"{type(exc).__name__}: {exc}",
            )
            return False
        ok = stream.status == 200 and first.event == FrameType.CONNECTED
        error = None if ok else f"HTTP {stream.status}, first event {first.event}"
        self.report.fire("connect", (time.perf_counter() - started) * 1000, error=error)
        self.session.received(first.event, first.data, first.id)
        if ok:
            self.report.connected(self.session)
        try:
            while True:
                event = stream.next()
                step = self.session.received(event.event, event.data, event.id)
                self.report.frame(event.event, step, _size(event.data))
        except (OSError, Closed) as exc:
            self.report.fire("close", error=f"{type(exc).__name__}: {exc}")
        finally:
            stream.close()
        return True


def _size(data: Mapping[str, Any]) -> int:
    return len(str(data))
