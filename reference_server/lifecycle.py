"""A server process's life around its requests: heartbeats, the loop-lag probe, the garbage
collector's settings, closing every stream with 1001 on SIGTERM, and the handshake parser's
line limit."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import threading
from collections.abc import AsyncIterator, Callable
from types import FrameType as StackFrame
from typing import Any

import websockets.http11
from fastapi import FastAPI

from reference_server.hub import Hub
from reference_server.protocol import heartbeat
from reference_server.services import Services


async def heartbeats(hub: Hub, interval: float) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time() + interval
    while True:
        await asyncio.sleep(max(0.0, due - loop.time()))
        due += interval
        await hub.heartbeat(heartbeat())


def _freeze_after_full_collections(
    loop: asyncio.AbstractEventLoop,
) -> Callable[[str, dict[str, Any]], None]:
    """After each full collection, freeze what survived: the streams that are open stay out of
    the next full collection, which then scans only what is newer (GC_FREEZE)."""

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            loop.call_soon_threadsafe(gc.freeze)

    return callback


def _close_streams_on_signal(services: Services) -> Callable[[], None]:
    """Run `going_away` on SIGTERM/SIGINT, then the server's own handler; returns an undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(sig: int, frame: StackFrame | None) -> None:
        loop.call_soon_threadsafe(services.going_away)
        before = previous[signal.Signals(sig)]
        if callable(before):
            before(sig, frame)

    for sig in previous:
        signal.signal(sig, handler)

    def undo() -> None:
        for sig, before in previous.items():
            signal.signal(sig, before)

    return undo


MAX_REQUEST_LINE = 65536


def allow_long_request_lines() -> None:
    """The handshake parser refuses request lines over 8 KiB, and uvicorn then never flushes its
    414: an oversized token would hang instead of getting 4401. The parser reads this module
    global on every handshake, so raising it here covers every worker process."""
    limit = websockets.http11.MAX_LINE_LENGTH
    websockets.http11.MAX_LINE_LENGTH = max(limit, MAX_REQUEST_LINE)


def lifespan(
    services: Services,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """Start the bus, the heartbeats and the lag probe; on the way out close every stream with
    1001 and stop them in turn."""
    cfg = services.settings

    @contextlib.asynccontextmanager
    async def life(app: FastAPI) -> AsyncIterator[None]:
        await services.bus.start()
        beats = asyncio.create_task(heartbeats(services.hub, cfg.ws_heartbeat_interval))
        lag = asyncio.create_task(services.lag.run())
        undo_signals = _close_streams_on_signal(services)
        # Full collections over 10k connections paused the server for over a second.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*cfg.gc_threshold)
        refreeze = _freeze_after_full_collections(asyncio.get_running_loop())
        if cfg.gc_freeze:
            gc.callbacks.append(refreeze)
        try:
            with services.gc_pauses:
                yield
        finally:
            if refreeze in gc.callbacks:
                gc.callbacks.remove(refreeze)
            undo_signals()
            services.going_away()
            beats.cancel()
            lag.cancel()
            await services.runner.stop()
            await services.bus.stop()

    return life
