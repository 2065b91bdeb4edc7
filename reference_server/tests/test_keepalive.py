"""The ping sweep's bookkeeping, with fake streams: one frame a tick for a slot of streams, no
second ping while one is unanswered, and 1011 (keepalive_timeout) only for the silent ones.
The real thing (uvicorn's protocol, a peer that stops answering) is in test_lifecycle.py."""

from __future__ import annotations

import struct

import pytest
from websockets.frames import Frame, Opcode

from reference_server.keepalive import PingSweep, ping_frame


class FakeStream:
    def __init__(self, writable: bool = True) -> None:
        self.pending_ping_payload: bytes | None = None
        self.ping_sent_at = 0.0
        self.writable = writable
        self.frames: list[bytes] = []
        self.timed_out = False

    def write_ping(self, frame: bytes) -> bool:
        if self.writable:
            self.frames.append(frame)
        return self.writable

    def keepalive_timeout(self) -> None:
        self.timed_out = True

    def pong(self) -> None:  # what uvicorn's handle_pong does on a matching payload
        self.pending_ping_payload = None


def test_a_round_of_ticks_pings_every_stream_once_with_one_frame_per_tick() -> None:
    sweep = PingSweep(interval=20, timeout=20, ticks=4)
    streams = [FakeStream() for _ in range(10)]
    for s in streams:
        sweep.join(s)
    slots = [sweep.tick(now=float(t)) for t in range(4)]
    assert [len(s.frames) for s in streams] == [1] * 10
    for _, payload in slots:
        pinged = [s for s in streams if s.pending_ping_payload == payload]
        assert len(pinged) in (2, 3) and len({id(s.frames[0]) for s in pinged}) == 1
        assert Frame(Opcode.PING, payload).serialize(mask=False) == pinged[0].frames[0]
    assert [p for _, p in slots] == [struct.pack("!I", t) for t in range(4)]


def test_only_the_silent_streams_are_timed_out() -> None:
    sweep = PingSweep(interval=20, timeout=20, ticks=1)
    answers, silent = FakeStream(), FakeStream()
    sweep.join(answers)
    sweep.join(silent)
    slot, payload = sweep.tick(now=5.0)
    assert answers.ping_sent_at == silent.ping_sent_at == 5.0
    answers.pong()
    assert sweep.expire(slot, payload) == 1
    assert (answers.timed_out, silent.timed_out) == (False, True)


def test_no_second_ping_while_one_is_unanswered() -> None:
    sweep = PingSweep(interval=20, timeout=60, ticks=1)
    stream = FakeStream()
    sweep.join(stream)
    _, first = sweep.tick(now=0.0)
    sweep.tick(now=20.0)
    assert stream.frames == [ping_frame(first)] and stream.pending_ping_payload == first


def test_a_stream_that_could_not_be_written_is_not_waited_for() -> None:
    sweep = PingSweep(interval=20, timeout=20, ticks=1)
    closing = FakeStream(writable=False)
    sweep.join(closing)
    slot, payload = sweep.tick(now=0.0)
    assert closing.pending_ping_payload is None and sweep.expire(slot, payload) == 0


def test_a_stream_that_left_is_neither_pinged_nor_timed_out() -> None:
    sweep = PingSweep(interval=20, timeout=20, ticks=2)
    gone, stays = FakeStream(), FakeStream()
    sweep.join(gone)
    sweep.join(stays)
    slot, payload = sweep.tick(now=0.0)  # slot 0: `gone`
    sweep.leave(gone)
    assert sweep.expire(slot, payload) == 0 and not gone.timed_out
    sweep.tick(now=1.0)
    sweep.tick(now=2.0)  # slot 0 again
    assert len(gone.frames) == 1 and len(stays.frames) == 1 and len(sweep) == 1


@pytest.mark.parametrize("args", [(0, 20, 20), (20, 0, 20), (20, 20, 0)])
def test_settings_that_cannot_work_are_refused(args: tuple[float, float, int]) -> None:
    with pytest.raises(ValueError, match="interval"):
        PingSweep(*args)
