"""WebSocket pings for every stream of a process from one timer, the same frame for all.

uvicorn pings each stream on its own: a timer to send, a random payload framed per stream, a
second timer for the pong's deadline, a third when the pong comes. At 10,000 streams and a ping
every 20 s that is 500 round trips a second, about 85 µs of server CPU each (reports/README.md),
more than four frames of a broadcast. Here the streams are spread over `TICKS` slots; each tick
pings one slot with one prepared frame, and one deadline per tick closes (1011, as uvicorn does)
the streams of that slot whose pong has not come. The pong is matched by uvicorn's own handler,
which clears `pending_ping_payload`.

The bookkeeping has no I/O: a stream is anything with the `Pinged` attributes.
"""

from __future__ import annotations

import asyncio
import struct
import weakref
from typing import Final, Protocol

from websockets.frames import Frame, Opcode

TICKS: Final = 20  # a round of pings is spread over this many ticks of the interval


class Pinged(Protocol):
    """What the sweep needs of a stream (uvicorn's websockets-sansio protocol has it)."""

    pending_ping_payload: bytes | None
    ping_sent_at: float

    def write_ping(self, frame: bytes) -> bool: ...
    def keepalive_timeout(self) -> None: ...


def ping_frame(payload: bytes) -> bytes:
    """A server's ping frame (unmasked), by websockets' own serializer."""
    return Frame(Opcode.PING, payload).serialize(mask=False)


class PingSweep:
    """The streams of one event loop, pinged `TICKS` slots at a time."""

    def __init__(self, interval: float, timeout: float, ticks: int = TICKS) -> None:
        if interval <= 0 or timeout <= 0 or ticks < 1:
            raise ValueError(f"interval {interval}, timeout {timeout}, ticks {ticks}")
        self.interval = interval
        self.timeout = timeout
        self.slots: list[dict[Pinged, None]] = [{} for _ in range(ticks)]  # ordered sets
        self.slot_of: dict[Pinged, int] = {}
        self.ticks = 0  # ticks so far: the next slot, and the next ping's payload
        self.joined = 0

    def __len__(self) -> int:
        return len(self.slot_of)

    def join(self, stream: Pinged) -> None:
        slot = self.joined % len(self.slots)
        self.joined += 1
        self.slots[slot][stream] = None
        self.slot_of[stream] = slot

    def leave(self, stream: Pinged) -> None:
        slot = self.slot_of.pop(stream, None)
        if slot is not None:
            del self.slots[slot][stream]

    def tick(self, now: float) -> tuple[int, bytes]:
        """Ping this tick's slot; returns the slot and the payload, for `expire`."""
        slot = self.ticks % len(self.slots)
        payload = struct.pack("!I", self.ticks & 0xFFFFFFFF)
        self.ticks += 1
        frame = ping_frame(payload)
        for stream in list(self.slots[slot]):  # a write may end a stream
            if stream.pending_ping_payload is None and stream.write_ping(frame):
                stream.pending_ping_payload = payload
                stream.ping_sent_at = now
        return slot, payload

    def expire(self, slot: int, payload: bytes) -> int:
        """Close the streams of `slot` that have not answered `payload`; how many."""
        late = [s for s in self.slots[slot] if s.pending_ping_payload == payload]
        for stream in late:
            stream.keepalive_timeout()
        return len(late)


class LoopSweep:
    """A PingSweep run by an event loop's timers: one per tick, one per tick's deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sweep: PingSweep) -> None:
        self.loop = loop
        self.sweep = sweep
        self.handle: asyncio.TimerHandle | None = None

    def join(self, stream: Pinged) -> None:
        self.sweep.join(stream)
        if self.handle is None:
            self._schedule()

    def leave(self, stream: Pinged) -> None:
        self.sweep.leave(stream)

    def _schedule(self) -> None:
        self.handle = self.loop.call_later(self.sweep.interval / len(self.sweep.slots), self._tick)

    def _tick(self) -> None:
        if not len(self.sweep):
            self.handle = None  # the next join starts it again
            return
        slot, payload = self.sweep.tick(self.loop.time())
        self.loop.call_later(self.sweep.timeout, self.sweep.expire, slot, payload)
        self._schedule()


_sweeps: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopSweep] = (
    weakref.WeakKeyDictionary()
)


def sweep_of(loop: asyncio.AbstractEventLoop, interval: float, timeout: float) -> LoopSweep:
    """This loop's sweep (made on first use)."""
    if loop not in _sweeps:
        _sweeps[loop] = LoopSweep(loop, PingSweep(interval, timeout))
    return _sweeps[loop]
