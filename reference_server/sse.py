"""The legacy SSE streams (docs/contract.md section 9), in both PubSub modes.

`shared`: SSE clients are hub streams like WebSockets, fed by the process's one subscription.
`per-connection`: the seed's old design, one Redis PubSub connection per SSE client; kept so the
comparison can show what it costs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from reference_server.bus import Bus
from reference_server.hub import Connection, Hub
from reference_server.protocol import Outgoing, connected, heartbeat, resync
from reference_server.records import TaskEvent, stored_from_json
from reference_server.redis_bus import RedisBus
from reference_server.redis_scripts import BROADCAST_CHANNEL, task_channel, user_channel
from reference_server.streams import QueueSink, open_task_stream, open_user_stream

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def hub_stream(
    hub: Hub,
    bus: Bus,
    user_id: str,
    queue_limit: int,
    *,
    last_id: str | None = None,
    task_id: str | None = None,
    is_admin: bool = False,
) -> AsyncIterator[str]:
    """An SSE body fed by the hub (shared mode, or no Redis)."""
    sink = QueueSink(queue_limit)
    conn = Connection(
        task_id or user_id, user_id, sink.send, sink.close, queue_limit, render=Outgoing.sse_text
    )
    try:
        if task_id is None:
            await open_user_stream(hub, bus, conn, last_id, counted=False)
        elif await open_task_stream(hub, bus, conn, task_id, is_admin=is_admin) is not None:
            return  # the task vanished between the status check and now
        async for text in sink:
            yield text
    finally:
        conn.forget()


async def private_stream(
    bus: RedisBus,
    user_id: str,
    interval: float,
    stopping: asyncio.Event,
    *,
    last_id: str | None = None,
    task_id: str | None = None,
) -> AsyncIterator[str]:
    """An SSE body with its own Redis PubSub connection (per-connection mode)."""
    channels = [task_channel(task_id)] if task_id else [user_channel(user_id), BROADCAST_CHANNEL]
    decode: Callable[[bytes], Outgoing | None] = (
        (lambda raw: TaskEvent.from_json(raw).outgoing())
        if task_id
        else (lambda raw: _notification(bus, raw))
    )
    feed = await bus.open_feed(channels)
    loop = asyncio.get_running_loop()
    try:
        # As in open_user_stream: the sequence before `connected`, so nothing published after
        # `connected` is taken for already seen.
        last_seq = 0 if task_id else await bus.current_seq()
        yield connected(user_id, task_id).sse_text()
        if task_id:
            info = await bus.task_info(task_id)
            if info is not None and info.latest is not None:
                last_seq = info.latest.step
                yield info.latest.outgoing().sse_text()
                if info.latest.terminal:
                    return
        elif last_id:
            replay = await bus.resume(user_id, last_id)
            for item in [resync(last_id)] if replay is None else [s.outgoing() for s in replay]:
                last_seq = max(last_seq, item.seq)
                yield item.sse_text()
        next_beat = loop.time() + interval
        while not stopping.is_set():
            wait = min(1.0, max(0.0, next_beat - loop.time()))
            message = await feed.pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
            if message is not None and message["type"] == "message":
                live = decode(message["data"])
                if live is not None and (not live.seq or live.seq > last_seq):
                    last_seq = max(last_seq, live.seq)
                    yield live.sse_text()
                    if live.terminal:
                        return
            if loop.time() >= next_beat:
                next_beat += interval
                yield heartbeat().sse_text()
    finally:
        await feed.aclose()


def _notification(bus: RedisBus, raw: bytes) -> Outgoing | None:
    stored = stored_from_json(bus.epoch, raw)
    return None if stored is None else stored.outgoing()
