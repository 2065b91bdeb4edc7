"""What a load run samples from each server process: event-loop lag, garbage-collection pauses
and delivery counts."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any

from reference_server.hub import Hub


class LoopLag:
    """Measures how late a periodic wake-up runs: the time the loop was busy elsewhere."""

    def __init__(self, period: float = 0.05) -> None:
        self.period = period
        self.worst = 0.0
        self.last = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.period)
            self.last = max(0.0, loop.time() - start - self.period)
            self.worst = max(self.worst, self.last)

    def take(self) -> dict[str, float]:
        """Worst lag since the previous call, and the latest; resets the worst."""
        out = {"max_ms": round(self.worst * 1000, 3), "last_ms": round(self.last * 1000, 3)}
        self.worst = 0.0
        return out


class GcPauses:
    """How long the garbage collector stopped the process: the loop lag a full collection over
    every open stream causes shows here under its own name."""

    def __init__(self) -> None:
        self.started = 0.0
        self.worst = 0.0
        self.full = 0  # full collections since the previous `take`

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        self.worst = max(self.worst, time.perf_counter() - self.started)
        if info.get("generation") == 2:
            self.full += 1

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self.callback)
        return self

    def __exit__(self, *_: object) -> None:
        if self.callback in gc.callbacks:
            gc.callbacks.remove(self.callback)

    def take(self) -> dict[str, float]:
        """Longest pause and full collections since the previous call (resets both), and how
        many objects are frozen out of the collector's reach now."""
        out = {
            "max_ms": round(self.worst * 1000, 3),
            "full_collections": self.full,
            "frozen": gc.get_freeze_count(),
        }
        self.worst, self.full = 0.0, 0
        return out


def snapshot(hub: Hub, lag: LoopLag, pauses: GcPauses) -> dict[str, Any]:
    """`GET /api/ws/metrics`: one process's view (the sampler asks every instance)."""
    # One pass, no lists: the sampler asks every second, and this is CPU of the server measured.
    streams = prepared = queued = 0
    for conn in hub.iter_connections():
        streams += 1
        prepared += conn.prepared
        queued += conn.queued
    return {
        "pid": os.getpid(),
        "streams": streams,
        "notification_streams": hub.counted_streams(),
        "prepared_streams": prepared,
        "frames_sent": hub.frames_sent,
        "loop": "uvloop" if "uvloop" in type(asyncio.get_running_loop()).__module__ else "asyncio",
        "queued_frames": queued,
        "loop_lag_ms": lag.take(),
        "gc_pause_ms": pauses.take(),
    }
