"""Steps several cases share."""

from __future__ import annotations

from typing import Any

from websockets.exceptions import InvalidStatus

from contract_tests.context import Context
from notify_client.client import Frame, StreamClient
from notify_contract.codes import describe
from notify_contract.protocol import WS_NOTIFICATIONS_PATH


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
    wait = timeout or ctx.target.frame_timeout * 2
    try:
        frames = await stream.until_closed(wait)
    except TimeoutError:
        got = ", ".join(f.type for f in stream.received[-5:]) or "no frame"
        raise TimeoutError(
            f"{what}: awaited close {describe(code)} within {wait:g} s; the stream stayed open "
            f"(last frames: {got})"
        ) from None
    ctx.must(
        stream.close_code == code,
        f"{what}: awaited close {describe(code)}, got {describe(stream.close_code)}",
    )
    return frames


async def refused_after_accept(
    ctx: Context,
    tok: str | None,
    code: int,
    what: str,
    path: str = WS_NOTIFICATIONS_PATH,
    *,
    tolerated: tuple[int, ...] = (),
    **handshake: Any,
) -> None:
    """The handshake completes, then the server closes with `code` having sent nothing (rule
    6.1). An HTTP status in `tolerated` is the outcome a SHOULD rule allows: non-strict."""
    try:
        stream = await ctx.stream(None, path, tok=tok, label="refused", **handshake)
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in tolerated:
            ctx.should(False, f"{what}: refused with HTTP {status} before the handshake")
            return
        raise_fail(
            ctx,
            f"{what}: handshake refused with HTTP {status}; rule 6.1 wants accept, then "
            f"close {describe(code)}",
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
