"""Clients that live through faults: WebSocket and SSE streams that reconnect by the contract's
policy (contract section 7, full jitter) and resume, and a publisher that retries what the server
refused. Everything goes into a Ledger, so a row can count what was lost.

Built on the one client (`notify_client.client`, `sse_client`, `driver`); this layer only adds
the reconnect loop and the bookkeeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.exceptions import InvalidHandshake

from notify_client.client import Closed, ProtocolViolation, StreamClient
from notify_client.driver import CommandDriver, Driver, DriverError
from notify_client.session import Delivery, Fetch, StreamSession
from notify_client.sse_client import SseStream
from notify_client.waiting import until_true
from notify_contract.protocol import SSE_NOTIFICATIONS_PATH, WS_NOTIFICATIONS_PATH, FrameType
from notify_contract.reconnect import ReconnectPolicy
from notify_faults.ledger import Ledger, Receipts

# A stream this long without a frame (heartbeats included) is dead: the client reconnects.
WS_SILENCE = SSE_SILENCE = 60.0


class Archive:
    """`GET /api/notifications?after=` for every client of a fleet, a few at a time: thousands
    of requests queued on one httpx pool cost quadratic time in its bookkeeping (py-spy showed
    a whole core in httpcore's request assignment during a 3000-client reconnect)."""

    def __init__(self, base: str, admin: str, at_once: int = 32) -> None:
        self.driver = Driver(base, admin, timeout=30)
        self._gate = asyncio.Semaphore(at_once)

    async def after(self, token: str, last_id: str | None) -> list[dict[str, Any]]:
        async with self._gate:
            return await self.driver.after(token, last_id)

    async def aclose(self) -> None:
        await self.driver.aclose()


@dataclass
class Life:
    """What happened to one client: when it connected, how it closed, whether it gave up."""

    attempts: list[float] = field(default_factory=list)  # wall clock of each connect attempt
    due: list[float] = field(default_factory=list)  # when the policy scheduled each retry
    late: list[float] = field(default_factory=list)  # seconds each retry started after its due
    opens: list[float] = field(default_factory=list)  # wall clock of each `connected` frame
    closes: list[tuple[float, int | None]] = field(default_factory=list)  # time, close code
    failed_attempts: int = 0  # connects that did not open (refused, 502, timeout)
    gave_up: int | bool | None = False  # False, or the close code after which it stopped
    up: asyncio.Event = field(default_factory=asyncio.Event)  # set from `connected` to close


class Client:
    """A stream that reconnects after any close the contract says to reconnect after. The
    protocol state (resume id, archive fetches, attempts) is a StreamSession; this adds the
    socket, the waiting and the receipts."""

    attempts = 5  # reconnect attempts without a `connected` frame before giving up (rule 7)
    silence = WS_SILENCE  # seconds without a frame after which the stream is taken for dead

    def __init__(
        self,
        name: str,
        user: str,
        base: str,
        token: str,
        archive: Archive,
        *,
        jitter: bool = True,
        token_in: str = "query",  # where the target's streams take the token (--token-in)
    ) -> None:
        self.token_in = token_in
        self.name = name
        self.user = user
        self.base = base
        self.token = token
        self.archive = archive
        self.receipts = Receipts(name, user)
        self.life = Life()
        self.session = StreamSession(
            ReconnectPolicy(jitter=jitter, max_attempts=self.attempts), user=user
        )

    @property
    def last_id(self) -> str | None:
        return self.session.last_id

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.life.attempts.append(time.time())
            code = await self._session(stop)
            if stop.is_set():
                return
            self.life.up.clear()
            due = self.session.closed(code)
            if due is None:
                self.life.gave_up = code
                return
            self.life.due.append(time.time() + due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
            self.life.late.append(max(0.0, time.monotonic() - due))

    async def _session(self, stop: asyncio.Event) -> int | None:
        raise NotImplementedError

    async def _frame(self, kind: str, data: Mapping[str, Any], event_id: str | None = None) -> None:
        """One frame or event, through the session; counted only from `connected` on."""
        step = self.session.received(kind, data, event_id)
        if kind == FrameType.CONNECTED:
            self.life.opens.append(time.time())
            self.life.up.set()
        if isinstance(step, Delivery):
            self.receipts.got(step.id, time.time())
        elif step is Fetch.ARCHIVE:
            await self._catch_up()

    async def _catch_up(self) -> None:
        """The archive after the last id shown (rule 7.5)."""
        items = await self.archive.after(self.token, self.session.last_id)
        for delivery in self.session.archived(items):
            self.receipts.got(delivery.id, time.time(), archive=True)

    def _closed(self, code: int | None) -> None:
        self.life.closes.append((time.time(), code))


class WsClient(Client):
    async def _session(self, stop: asyncio.Event) -> int | None:
        try:
            stream = await StreamClient.open(
                self.base,
                WS_NOTIFICATIONS_PATH,
                self.token,
                last_id=self.last_id,
                max_queue=None,
                token_in=self.token_in,
            )
        except (InvalidHandshake, OSError, TimeoutError):
            self.life.failed_attempts += 1
            return None
        self.session.opened()
        try:
            while not stop.is_set():
                # Waits as long as the stream is quiet: Fleet.close cancels the task, and
                # websockets' recv is safe to cancel. (Polling 3000 streams cost a core.)
                frame = await stream.recv(self.silence)
                await self._frame(frame.type, frame.data)
        except Closed as exc:
            self._closed(exc.code)
            return exc.code
        except (ProtocolViolation, OSError, DriverError, httpx.HTTPError, TimeoutError):
            self._closed(None)
            stream.ws.transport.abort()
            return None
        except asyncio.CancelledError:
            stream.ws.transport.abort()
            raise
        stream.ws.transport.abort()
        return None


class SseClient(Client):
    """The legacy SSE stream; it resumes with Last-Event-ID as a browser's EventSource does,
    and like EventSource it never stops trying (the 5 attempts are the WebSocket store's)."""

    attempts = 1_000_000

    async def _session(self, stop: asyncio.Event) -> int | None:
        try:
            stream = await SseStream.open(
                self.base, SSE_NOTIFICATIONS_PATH, self.token, last_event_id=self.last_id
            )
        except httpx.HTTPError:
            self.life.failed_attempts += 1
            return None
        if stream.status != 200:
            self.life.failed_attempts += 1
            await stream.aclose()
            return None
        self.session.opened()
        try:
            while not stop.is_set():
                # No short timeout here: cancelling a read of httpx's line iterator ends the
                # stream. Heartbeats bring the loop back to the stop flag.
                event = await stream.next(SSE_SILENCE)
                await self._frame(event.event, event.data, event.id)
        except (Closed, ProtocolViolation, httpx.HTTPError, DriverError, TimeoutError):
            self._closed(None)
            return None
        finally:
            with contextlib.suppress(httpx.HTTPError, OSError):
                await stream.aclose()
        return None


class Fleet:
    """Many clients run as tasks; `start` waits until every one is connected."""

    def __init__(self, clients: Sequence[Client]) -> None:
        self.clients = list(clients)
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, timeout: float, batch: int = 200) -> None:
        """Start in batches (a few thousand handshakes at once would time out on a small box)."""
        for start in range(0, len(self.clients), batch):
            group = self.clients[start : start + batch]
            self._tasks += [asyncio.create_task(c.run(self.stop), name=c.name) for c in group]
            await self.all_up(timeout, group)

    async def all_back(self, since: float, timeout: float) -> float:
        """Wait until every client has opened again after `since` (wall clock); returns when."""

        async def back() -> bool:
            return all(c.life.opens and c.life.opens[-1] >= since for c in self.clients)

        await until_true(back, timeout, "not every client came back", poll=0.02)
        return max(c.life.opens[-1] for c in self.clients)

    async def all_up(self, timeout: float, clients: Sequence[Client] | None = None) -> float:
        """Wait until every client (or those given) is connected; returns when (wall clock)."""
        group = self.clients if clients is None else clients
        waiting = [c for c in group if not c.life.up.is_set()]
        if waiting:
            try:
                await asyncio.wait_for(
                    asyncio.gather(*(c.life.up.wait() for c in waiting)), timeout
                )
            except TimeoutError:
                down = [c for c in group if not c.life.up.is_set()]
                failed = sum(c.life.failed_attempts for c in down)
                quit_ = sum(1 for c in down if c.life.gave_up is not False)
                raise TimeoutError(
                    f"{len(down)} of {len(group)} clients not connected after {timeout:g} s "
                    f"({failed} failed attempts, {quit_} gave up)"
                ) from None
        return time.time()

    async def close(self) -> None:
        """Stop every client now: a client waiting for a frame or a retry is cancelled."""
        self.stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def receipts(self) -> list[Receipts]:
        return [c.receipts for c in self.clients]

    def gave_up(self) -> list[Client]:
        return [c for c in self.clients if c.life.gave_up is not False]


class RetryingPublisher:
    """Publishes to users in turn through the driver API; a refused publish (an error status or
    no answer) is counted and retried, so nothing it was told is accepted goes unrecorded."""

    def __init__(
        self, bases: Sequence[str], admin: str, ledger: Ledger, command: str | None = None
    ) -> None:
        """Publishes through each base's driver API, or through `command` (--driver-cmd)."""
        self.drivers: list[Driver] = [
            CommandDriver(base, admin, command) if command else Driver(base, admin, timeout=5)
            for base in bases
        ]
        self.ledger = ledger
        self._turn = itertools.cycle(self.drivers)
        self._progress = asyncio.Condition()  # notified at each acknowledged publish

    async def reached(self, total: int, timeout: float = 60.0) -> None:
        """Wait until `total` publishes have been acknowledged; TimeoutError saying how many."""
        async with self._progress:
            try:
                await asyncio.wait_for(
                    self._progress.wait_for(lambda: self.ledger.total >= total), timeout
                )
            except TimeoutError:
                raise TimeoutError(
                    f"only {self.ledger.total} of {total} notifications published"
                ) from None

    async def publish(self, user: str, title: str, retry_for: float = 30.0) -> str | None:
        deadline = time.monotonic() + retry_for
        while True:
            sent = time.time()
            try:
                record = await next(self._turn).publish(user, title, type="alert", sent=sent)
            except (DriverError, httpx.HTTPError) as exc:
                status = getattr(exc, "status", None)
                self.ledger.refusal(f"HTTP {status}" if status else type(exc).__name__)
                if time.monotonic() > deadline:
                    self.ledger.abandoned += 1
                    return None
                await asyncio.sleep(0.1)  # a retry interval, not a wait for an event
                continue
            nid = str(record["id"])
            self.ledger.acknowledged(user, nid, sent)
            async with self._progress:
                self._progress.notify_all()
            return nid

    async def run(self, users: Sequence[str], rate: float, stop: asyncio.Event, limit: int) -> None:
        """About `rate` publishes a second over `users` in turn, until `stop` or `limit`."""
        period = 1.0 / rate
        due = time.monotonic()
        for n, user in enumerate(itertools.cycle(users)):
            if stop.is_set() or n >= limit:
                return
            await self.publish(user, f"n{n}")
            due += period
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))

    async def aclose(self) -> None:
        for driver in self.drivers:
            await driver.aclose()


async def delivered(ledger: Ledger, clients: Sequence[Client], timeout: float) -> bool:
    """Wait until every client still trying has every id published for its user, or the
    timeout: what the rows wait for before they count."""

    async def complete() -> bool:
        return all(
            set(ledger.published.get(c.user, ())) <= c.receipts.arrived.keys()
            for c in clients
            if c.life.gave_up is False
        )

    try:
        await until_true(complete, timeout, "deliveries", poll=0.1)
    except TimeoutError:
        return False
    return True
