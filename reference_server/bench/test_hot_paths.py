"""Micro-benchmarks of the hot paths (`nox -s bench`), compared with the committed baseline."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from reference_server.auth import TokenVerifier
from reference_server.hub import Connection, Hub
from reference_server.protocol import FrameType, Outgoing, encode, sse_event

NOTIFICATION = {
    "id": "e1-12345",
    "title": "Analysis complete",
    "content": "Analysis of 000001 is complete",
    "type": "analysis",
    "link": "/stocks/000001",
    "source": "analysis",
    "created_at": "2026-11-26T05:00:00.000000+00:00",
    "status": "unread",
    "sent_at": 1.5,
}
SECRET = "b" * 64


async def _taken(text: str) -> None:
    """A peer whose socket takes every frame at once (the common case)."""


async def _closed(code: int, reason: str) -> None:
    return None


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_encode_notification_frame(benchmark: BenchmarkFixture) -> None:
    benchmark(encode, FrameType.NOTIFICATION, NOTIFICATION)


def test_encode_sse_event(benchmark: BenchmarkFixture) -> None:
    benchmark(sse_event, FrameType.NOTIFICATION, NOTIFICATION, "e1-12345")


def test_decode_token(benchmark: BenchmarkFixture) -> None:
    verifier = TokenVerifier(SECRET, "HS256", 4096)
    token = verifier.mint("alice")
    assert benchmark(verifier.verify, token).user_id == "alice"


def _written(frame: bytes) -> bool:
    """A transport that takes every prepared frame at once."""
    return True


@pytest.mark.parametrize("streams", [1_000, 10_000])
@pytest.mark.parametrize("path", ["coroutine", "prepared"])
def test_broadcast_fanout(
    benchmark: BenchmarkFixture, loop: asyncio.AbstractEventLoop, path: str, streams: int
) -> None:
    """The hub's side of one broadcast over N streams: bookkeeping, chunked yields, and either
    an inline coroutine send per stream (compression on, or WS_PREPARED_FRAMES=false) or, as
    the server ships, one framing and the same bytes handed to each stream's frame writer (the
    transport's own write is not in this figure)."""
    hub = Hub(max_per_user=1)
    write = _written if path == "prepared" else None
    for i in range(streams):
        hub.add_user_stream(Connection(f"u{i}", f"u{i}", _taken, _closed, 256, write=write))
    seq = iter(range(1, 10**9))

    def broadcast() -> None:
        item = Outgoing(FrameType.NOTIFICATION, NOTIFICATION, seq=next(seq))
        loop.run_until_complete(hub.to_everyone(item))

    benchmark(broadcast)
    assert hub.frames_sent >= streams
