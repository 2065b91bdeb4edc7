"""The plain asyncio generator broken by our own hand: it drops every notification numbered 2,
as a generator that loses one would. `test_generators` shows the run fails on it."""

from __future__ import annotations

import asyncio
import json

from loadtests.generator_peers import websockets_asyncio as plain

DROPPED_SEQ = 2
counted = plain.count


def count(message: str | bytes, counts: plain.Counts, last_seq: int | None) -> int | None:
    frame = json.loads(message)
    if frame.get("type") == "notification" and frame["data"].get("seq") == DROPPED_SEQ:
        return last_seq
    return counted(message, counts, last_seq)


if __name__ == "__main__":
    plain.count = count
    asyncio.run(plain.main())
