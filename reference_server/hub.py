"""Open streams, the per-user limit, ordered fan-out and slow-consumer protection.

No web framework here: a connection is a pair of coroutine functions (send text, close), so the
bookkeeping is tested with plain fakes. Sends run inline, without a task, while the peer keeps
up (a writer task per connection measured 2.5x slower); only a send that the server holds back
for backpressure gets a drain task, and frames queued behind it are bounded (`WS_SEND_QUEUE`).

A WebSocket stream may also have a frame writer (`FrameWrite`): a fan-out frames its item once
and hands the same bytes to each stream's transport, with no coroutine and no ASGI message per
stream. The writer refuses while the transport is paused or closing; the item then takes the
coroutine path, so backpressure and the queue bound stay exactly as above.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from reference_server.protocol import WS_4408_SLOW_CONSUMER, CloseCode, Outgoing

SendFn = Callable[[str], Coroutine[Any, Any, None]]
CloseFn = Callable[[int, str], Coroutine[Any, Any, None]]
# Writes one whole prepared frame now; False, having written nothing, when it cannot.
FrameWrite = Callable[[bytes], bool]


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


async def _finish(coro: Coroutine[Any, Any, None], waiter: Any) -> None:
    """Run to the end a coroutine that was started by hand and suspended on `waiter`."""
    try:
        while True:
            if waiter is None:
                await asyncio.sleep(0)
            else:
                # Not `await waiter`: the suspended coroutine already claimed that future, and
                # its outcome reaches the coroutine when it resumes.
                await asyncio.wait((waiter,))
            waiter = coro.send(None)
    except StopIteration:
        return
    finally:
        coro.close()


class Connection:
    """One open stream (WebSocket, or SSE through a bounded queue)."""

    __slots__ = (
        "_backlog",
        "_close",
        "_drainer",
        "_limit",
        "_on_gone",
        "_send",
        "_write",
        "closed",
        "key",
        "last_seq",
        "render",
        "user_id",
    )

    def __init__(
        self,
        key: str,
        user_id: str,
        send: SendFn,
        close: CloseFn,
        queue_limit: int,
        render: Callable[[Outgoing], str] = Outgoing.ws_text,
        write: FrameWrite | None = None,
    ) -> None:
        """`write`, when given, must take frames of `Outgoing.ws_frame` (WebSocket streams)."""
        self.key = key
        self.user_id = user_id
        self.render = render
        self.last_seq = 0
        self.closed = False
        self._send = send
        self._close = close
        self._write = write
        self._limit = queue_limit
        self._backlog: deque[str | _Close] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._on_gone: Callable[[Connection], None] | None = None

    def when_gone(self, callback: Callable[[Connection], None]) -> None:
        """Call `callback` once, when the stream closes or its peer leaves (the hub forgets it)."""
        self._on_gone = callback

    @property
    def prepared(self) -> bool:
        """Whether fan-outs may write prepared frames straight to this stream's transport."""
        return self._write is not None

    @property
    def queued(self) -> int:
        return 0 if self._backlog is None else len(self._backlog)

    def offer(self, item: Outgoing) -> None:
        """Send `item` unless this stream already has it (resume and live may overlap)."""
        if self.closed or (item.seq and item.seq <= self.last_seq):
            return
        if item.seq:
            self.last_seq = item.seq
        self.deliver(item)

    def deliver(self, item: Outgoing) -> None:
        """Send `item`: its prepared frame straight to the transport when nothing is queued
        ahead of it and the transport takes it, else its text by the coroutine path."""
        if self.closed:
            return
        if self._write is not None and self._backlog is None and self._write(item.ws_frame()):
            return
        self.push(self.render(item))

    def push(self, text: str) -> None:
        if self.closed:
            return
        if self._backlog is None:
            self._run(self._send(text))
        elif len(self._backlog) >= self._limit:
            self._backlog.clear()
            self.close(WS_4408_SLOW_CONSUMER, "slow consumer")
        else:
            self._backlog.append(text)

    def close(self, code: int, reason: str = "") -> None:
        """Close after what is already queued; the hub forgets the stream at once."""
        if self.closed:
            return
        self.closed = True
        if self._on_gone is not None:
            self._on_gone(self)
        if self._backlog is None:
            self._run(self._close(code, reason))
        else:
            self._backlog.append(_Close(code, reason))

    def forget(self) -> None:
        """The peer is gone: drop what is queued and leave the hub, sending nothing."""
        if self._backlog is not None:
            self._backlog.clear()
        if not self.closed:
            self.closed = True
            if self._on_gone is not None:
                self._on_gone(self)

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            waiter = coro.send(None)
        except StopIteration:
            return
        except Exception:
            coro.close()
            self.forget()
            return
        self._backlog = deque()
        self._drainer = asyncio.get_running_loop().create_task(self._drain(coro, waiter))

    async def _drain(self, coro: Coroutine[Any, Any, None], waiter: Any) -> None:
        try:
            await _finish(coro, waiter)
            while self._backlog:
                item = self._backlog.popleft()
                if isinstance(item, _Close):
                    await self._close(item.code, item.reason)
                    break
                await self._send(item)
        except Exception:
            self.forget()
        finally:
            self._backlog = None
            self._drainer = None


class Hub:
    """Who is connected, and delivery to them in publish order."""

    def __init__(
        self,
        max_per_user: int,
        chunk: int = 500,
        on_released: Callable[[str], None] | None = None,
    ) -> None:
        self.max_per_user = max_per_user
        self.chunk = chunk
        # Called with the user id when a counted stream leaves (frees a slot held elsewhere).
        self.on_released = on_released
        # Publishing and registering take this lock, so a stream that resumes from history
        # misses nothing published meanwhile, and all streams see one order.
        self.lock = asyncio.Lock()
        self._users: dict[str, dict[Connection, None]] = {}
        self._tasks: dict[str, dict[Connection, None]] = {}
        self._counted: dict[str, int] = {}
        self._is_counted: set[Connection] = set()
        self.frames_sent = 0  # frames handed to streams by fan-outs and heartbeats

    # -- registration ---------------------------------------------------------------------

    def has_room(self, user_id: str) -> bool:
        return self._counted.get(user_id, 0) < self.max_per_user

    def add_user_stream(self, conn: Connection, *, counted: bool = True) -> bool:
        """Register a notification stream; False (and nothing changed) if the user is full."""
        if counted:
            n = self._counted.get(conn.user_id, 0)
            if n >= self.max_per_user:
                return False
            self._counted[conn.user_id] = n + 1
            self._is_counted.add(conn)
        self._users.setdefault(conn.key, {})[conn] = None
        conn.when_gone(self.remove)
        return True

    def add_task_stream(self, conn: Connection) -> None:
        self._tasks.setdefault(conn.key, {})[conn] = None
        conn.when_gone(self.remove)

    def remove(self, conn: Connection) -> None:
        for table in (self._users, self._tasks):
            group = table.get(conn.key)
            if group is not None and conn in group:
                del group[conn]
                if not group:
                    del table[conn.key]
        if conn in self._is_counted:
            self._is_counted.discard(conn)
            left = self._counted[conn.user_id] - 1
            if left:
                self._counted[conn.user_id] = left
            else:
                del self._counted[conn.user_id]
            if self.on_released is not None:
                self.on_released(conn.user_id)

    # -- delivery -------------------------------------------------------------------------

    async def to_user(self, user_id: str, item: Outgoing) -> None:
        async with self.lock:
            self.to_user_locked(user_id, item)

    def to_user_locked(self, user_id: str, item: Outgoing) -> None:
        conns = list(self._users.get(user_id, ()))
        self.frames_sent += len(conns)
        for conn in conns:
            conn.offer(item)

    async def to_everyone(self, item: Outgoing) -> None:
        async with self.lock:
            await self.to_everyone_locked(item)

    async def to_everyone_locked(self, item: Outgoing) -> None:
        await self._each(
            [c for group in self._users.values() for c in group], lambda c: c.offer(item)
        )

    async def to_users(self, users: Iterable[str], item: Outgoing) -> None:
        """Every stream of `users` (a broadcast arriving on one partition of the bus)."""
        async with self.lock:
            conns = [c for u in users for c in self._users.get(u, ())]
            await self._each(conns, lambda c: c.offer(item))

    async def to_task(self, task_id: str, item: Outgoing) -> None:
        async with self.lock:
            self.to_task_locked(task_id, item)

    def to_task_locked(self, task_id: str, item: Outgoing) -> None:
        conns = list(self._tasks.get(task_id, ()))
        self.frames_sent += len(conns)
        for conn in conns:
            conn.offer(item)
            if item.terminal:
                conn.close(CloseCode.NORMAL_CLOSURE, item.frame_type.value)

    async def heartbeat(self, item: Outgoing) -> None:
        """Every open stream gets `item`; order against notifications does not matter."""
        await self._each(self.connections(), lambda c: c.deliver(item))

    async def _each(self, conns: list[Connection], act: Callable[[Connection], None]) -> None:
        self.frames_sent += len(conns)
        # Yield between chunks: one pass over 10k streams otherwise blocks the loop ~300 ms.
        for start in range(0, len(conns), self.chunk):
            if start:
                await asyncio.sleep(0)
            for conn in conns[start : start + self.chunk]:
                act(conn)

    def close_all(self, code: int, reason: str) -> int:
        """Close every stream now (shutdown); returns how many."""
        conns = self.connections()
        for conn in conns:
            conn.close(code, reason)
        return len(conns)

    # -- views ----------------------------------------------------------------------------

    def users(self) -> list[str]:
        """Users with at least one open notification stream here."""
        return list(self._users)

    def connections(self) -> list[Connection]:
        return list(self.iter_connections())

    def iter_connections(self) -> Iterator[Connection]:
        for table in (self._users, self._tasks):
            for group in table.values():
                yield from group

    def counted_streams(self) -> int:
        return len(self._is_counted)

    def counts(self) -> dict[str, int]:
        """Counted notification streams per user (the stats figures)."""
        return dict(self._counted)

    def stats(self) -> dict[str, Any]:
        return stats_from_counts(self._counted.items())


def stats_from_counts(pairs: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """The stats body of docs/contract.md section 8 from (user, count) pairs, summed."""
    users: dict[str, int] = {}
    for user, n in pairs:
        if n > 0:
            users[user] = users.get(user, 0) + n
    return {
        "total_users": len(users),
        "total_connections": sum(users.values()),
        "users": users,
    }
