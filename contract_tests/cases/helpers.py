"""Steps several cases share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.exceptions import InvalidStatus

from contract_tests.client import Frame, StreamClient
from contract_tests.context import Context
from reference_server.protocol import WS_NOTIFICATIONS_PATH


async def connected(ctx: Context, user: str, **handshake: Any) -> StreamClient:
    """A notification stream whose `connected` frame has arrived (and has the right shape)."""
    stream = await ctx.stream(user, **handshake)
    hello = ctx.shape(await stream.expect("connected", timeout=ctx.target.frame_timeout))
    ctx.must(
        hello.data.get("user_id") == user,
        f"`connected` names user {hello.data.get('user_id')!r}, not {user!r}",
    )
    return stream


async def closes_with(
    ctx: Context, stream: StreamClient, code: int, what: str, timeout: float | None = None
) -> list[Frame]:
    """Wait for the server to close `stream`; the code must be `code`. Returns the frames."""
    frames = await stream.until_closed(timeout or ctx.target.frame_timeout * 2)
    ctx.must(
        stream.close_code == code, f"{what}: expected close code {code}, got {stream.close_code}"
    )
    return frames


async def refused_after_accept(
    ctx: Context,
    tok: str | None,
    code: int,
    what: str,
    path: str = WS_NOTIFICATIONS_PATH,
    **handshake: Any,
) -> None:
    """The handshake completes, then the server closes with `code` having sent nothing."""
    try:
        stream = await ctx.stream(None, path, tok=tok, label="refused", **handshake)
    except InvalidStatus as exc:
        raise_fail(
            ctx,
            f"{what}: handshake refused with HTTP {exc.response.status_code}; "
            f"CONTRACT.md 6 wants accept, then close {code}",
        )
        return
    frames = await closes_with(ctx, stream, code, what)
    ctx.must(
        not frames, f"{what}: frames were delivered before the close: {[f.type for f in frames]}"
    )
    reason = stream.ws.close_reason or ""
    ctx.must(
        "Traceback" not in reason and 'File "' not in reason,
        f"{what}: the close reason carries a stack trace: {reason!r}",
    )


def raise_fail(ctx: Context, message: str) -> None:
    ctx.must(False, message)


async def until_true(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, poll: float = 0.05
) -> None:
    """Poll an async predicate every `poll` seconds until it holds; TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(poll)
