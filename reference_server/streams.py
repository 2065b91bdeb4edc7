"""Opening a stream: first frame, replay or latest state, then live, with nothing missed between.

Shared by the WebSocket and SSE endpoints; no web framework here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from reference_server.bus import Bus
from reference_server.hub import Connection, Hub
from reference_server.protocol import (
    WS_4403_FORBIDDEN,
    WS_4404_NOT_FOUND,
    CloseCode,
    connected,
    resync,
)


async def open_user_stream(
    hub: Hub, bus: Bus, conn: Connection, last_id: str | None, *, counted: bool = True
) -> bool:
    """Register a notification stream; False (nothing sent) when its user is at the limit."""
    async with hub.lock:  # no publish runs between the replay and going live
        if counted and not hub.has_room(conn.user_id):
            return False
        # Read the sequence before `connected` and the history: whatever is newer arrives live,
        # and whatever is not was published before `connected` went out, so a client that
        # fetches the archive once it has `connected` finds it there.
        current = await bus.current_seq(conn.user_id)
        conn.offer(connected(conn.user_id))
        if last_id:
            replay = await bus.resume(conn.user_id, last_id)
            if replay is None:
                conn.offer(resync(last_id))
            else:
                for stored in replay:
                    conn.offer(stored.outgoing())
        conn.last_seq = max(conn.last_seq, current)
        hub.add_user_stream(conn, counted=counted)
    return True


async def open_task_stream(
    hub: Hub, bus: Bus, conn: Connection, task_id: str, *, is_admin: bool
) -> int | None:
    """Register a task stream after its latest state; the close code when it may not open."""
    async with hub.lock:
        info = await bus.task_info(task_id)
        if info is None:
            return WS_4404_NOT_FOUND
        if info.owner != conn.user_id and not is_admin:
            return WS_4403_FORBIDDEN
        conn.offer(connected(conn.user_id, task_id))
        if info.latest is not None:
            conn.offer(info.latest.outgoing())
            if info.latest.terminal:
                conn.close(CloseCode.NORMAL_CLOSURE, info.latest.frame_type.value)
                return None
        hub.add_task_stream(conn)
    return None


class QueueSink:
    """Turns a hub connection into an async iterator of text, for a streaming HTTP response."""

    _END = object()

    def __init__(self, limit: int) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue(limit)

    async def send(self, text: str) -> None:
        await self._queue.put(text)

    async def close(self, code: int, reason: str) -> None:
        await self._queue.put(self._END)

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            item = await self._queue.get()
            if item is self._END:
                return
            assert isinstance(item, str)
            yield item
