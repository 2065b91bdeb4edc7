"""Waiting for an event with a deadline: the one polling helper (no fixed sleeps elsewhere)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def until_true(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, poll: float = 0.05
) -> None:
    """Poll an async predicate every `poll` seconds until it holds; TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(poll)
