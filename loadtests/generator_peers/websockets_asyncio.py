"""A load generator as a Python user writes one with python-websockets: one asyncio task and
one `connect()` per stream, `json.loads` of every message, latency from the payload's
`sent_at`, loss from gaps in its `seq`. No reconnects: a stream that closes is counted.

    python -m loadtests.generator_peers.websockets_asyncio --url URL --tokens FILE --result OUT
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from loadtests.generator_peers.cli import STOP_SIGNALS, arguments, tokens, write
from notify_client.histogram import Histogram


@dataclass
class Counts:
    opened: int = 0
    failed: int = 0
    closed: int = 0
    received: int = 0
    frames: int = 0
    gaps: int = 0
    latency: Histogram = field(default_factory=Histogram)


def count(message: str | bytes, counts: Counts, last_seq: int | None) -> int | None:
    """Count one message; returns the highest `seq` the stream has seen."""
    counts.frames += 1
    frame = json.loads(message)
    if frame.get("type") != "notification":
        return last_seq
    counts.received += 1
    data = frame.get("data") or {}
    sent_at, seq = data.get("sent_at"), data.get("seq")
    if isinstance(sent_at, int | float):
        counts.latency.add(max(0.0, (time.time() - sent_at) * 1000))
    if not isinstance(seq, int):
        return last_seq
    if last_seq is not None and seq > last_seq + 1:
        counts.gaps += seq - last_seq - 1
    return seq if last_seq is None else max(seq, last_seq)


async def hold(url: str, token: str, counts: Counts) -> None:
    last_seq: int | None = None
    opened = False
    try:
        async with connect(f"{url}?token={token}", open_timeout=30, max_size=None) as ws:
            opened = True
            counts.opened += 1
            async for message in ws:
                last_seq = count(message, counts, last_seq)
        counts.closed += 1
    except (OSError, WebSocketException, TimeoutError):
        if opened:
            counts.closed += 1
        else:
            counts.failed += 1


async def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    counts = Counts()
    tasks = []
    start = time.monotonic()
    for i, token in enumerate(tokens(args.tokens)):
        if stop.is_set():
            break
        await asyncio.sleep(max(0.0, start + i / args.rate - time.monotonic()))
        tasks.append(asyncio.create_task(hold(args.url, token, counts)))
    await stop.wait()
    open_now = sum(not t.done() for t in tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    write(
        args.result,
        {
            "streams": len(tasks),
            "opened": counts.opened,
            "open_at_stop": open_now,
            "failed": counts.failed,
            "received": counts.received,
            "frames": counts.frames,
            "seq_gaps": counts.gaps,
            "latency": counts.latency.to_dict(),
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
