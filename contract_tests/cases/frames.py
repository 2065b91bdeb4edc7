"""docs/contract.md sections 3 and 4: frame shapes, and what the server does with client frames."""

from __future__ import annotations

import json

from contract_tests.cases.helpers import closes_with, connected
from contract_tests.context import Context
from contract_tests.registry import case
from notify_contract.codes import CloseCode, describe
from notify_contract.verdicts import Need, NotApplicable


@case("connected-shape", "3.2", "`connected` is the first frame, with user_id and timestamp")
async def connected_shape(ctx: Context) -> None:
    stream = await ctx.stream(user := ctx.user())
    first = await stream.recv(ctx.target.frame_timeout)
    ctx.must(first.type == "connected", f"the first frame is `{first.type}`, not `connected`")
    ctx.shape(first)
    named = first.data["user_id"]
    ctx.must(named == user, f"`connected` names user {named!r}, not {user!r}")


@case(
    "notification-shape",
    "3.1",
    "`notification` has the seed's fields, the type given and status unread",
    needs=(Need.TOKENS, Need.DRIVER),
)
async def notification_shape(ctx: Context) -> None:
    user = ctx.user()
    stream = await connected(ctx, user)
    fields = {
        "content": "Analysis of 000001 is complete",
        "type": "analysis",
        "link": "/stocks/000001",
        "source": "analysis",
    }
    await ctx.driver.publish(user, "Analysis complete", **fields)
    frame = ctx.shape(await stream.expect("notification", timeout=ctx.target.frame_timeout))
    for key, value in {"title": "Analysis complete", **fields}.items():
        ctx.must(
            frame.data.get(key) == value, f"`{key}` is {frame.data.get(key)!r}, sent {value!r}"
        )
    ctx.must(frame.data["status"] == "unread", f"status is {frame.data['status']!r}")


@case(
    "heartbeat-shape",
    "3.1",
    "`heartbeat` frames carry a timestamp",
    timeout=120,
    estimate=lambda t: t.limits.heartbeat_interval,
)
async def heartbeat_shape(ctx: Context) -> None:
    stream = await connected(ctx, ctx.user())
    wait = ctx.limits.heartbeat_interval * 1.5 + ctx.target.frame_timeout
    ctx.shape(await stream.expect("heartbeat", timeout=wait, skip=()))


@case("ping-pong", "4.1", "a client `ping` is answered by `pong` with a timestamp")
async def ping_pong(ctx: Context) -> None:
    stream = await connected(ctx, ctx.user())
    await stream.ping()
    ctx.shape(await stream.expect("pong", timeout=ctx.target.frame_timeout))


@case("timestamps-utc", "3.4", "timestamps carry a UTC offset (Z or +00:00)")
async def timestamps_utc(ctx: Context) -> None:
    stream = await connected(ctx, ctx.user())
    await stream.ping()
    try:
        await stream.expect("pong", timeout=ctx.target.frame_timeout)
    except TimeoutError:  # the pong is ping-pong's business: judge the frames that did come
        ctx.note("suite", "note", "no pong came; the timestamps of the other frames are judged")
    for frame in stream.received:  # `connected`, `pong` and any heartbeat between them
        ctx.offsets(frame)


@case(
    "bad-json-error-frame",
    "4.2",
    "invalid JSON gets an `error` frame (code, message, no stack trace) and the stream stays open",
)
async def bad_json(ctx: Context) -> None:
    stream = await connected(ctx, ctx.user())
    await stream.send_text('{"type": "ping"')
    err = ctx.shape(await stream.expect("error", timeout=ctx.target.frame_timeout))
    ctx.must("Traceback" not in json.dumps(err.data), "the error frame carries a stack trace")
    await stream.ping()
    await stream.expect("pong", timeout=ctx.target.frame_timeout)


@case(
    "unknown-type-error-frame",
    "4.2",
    "an unknown frame type gets an `error` frame and the stream stays open",
)
async def unknown_type(ctx: Context) -> None:
    stream = await connected(ctx, ctx.user())
    for text in ('{"type": "subscribe", "channel": "*"}', "[1, 2]", '{"data": {}}'):
        await stream.send_text(text)
        ctx.shape(await stream.expect("error", timeout=ctx.target.frame_timeout))
    await stream.ping()
    await stream.expect("pong", timeout=ctx.target.frame_timeout)


@case("binary-frame-1003", "4.3", "a binary frame closes the stream with 1003")
async def binary_frame(ctx: Context) -> None:
    stream = await connected(ctx, ctx.user())
    await stream.send_bytes(b'{"type": "ping"}')
    await closes_with(ctx, stream, CloseCode.UNSUPPORTED_DATA, "a binary frame")


@case("oversize-frame-1009", "4.4", "a frame over WS_MAX_MESSAGE_BYTES closes the stream with 1009")
async def oversize_frame(ctx: Context) -> None:
    stream = await connected(ctx, ctx.user())
    await stream.send_text(json.dumps({"type": "ping", "pad": "x" * ctx.limits.max_message_bytes}))
    await closes_with(ctx, stream, CloseCode.MESSAGE_TOO_BIG, "an oversized frame")


@case(
    "invalid-utf8-1007",
    "4.5",
    "a text frame that is not UTF-8 closes the stream with 1007 (RFC 6455 8.1)",
)
async def invalid_utf8(ctx: Context) -> None:
    stream = await connected(ctx, ctx.user())
    await stream.send_text_bytes(b'{"type": "ping", "x": "\xff\xfe"}')
    await stream.until_closed(ctx.target.frame_timeout * 2)  # not closing at all is a fail
    ctx.should(
        stream.close_code == CloseCode.INVALID_DATA,
        f"a text frame with invalid UTF-8: closed with {describe(stream.close_code)}, not 1007",
    )


@case(
    "compressed-frame-1009",
    "4.4",
    "a compressed frame that inflates past WS_MAX_MESSAGE_BYTES closes the stream with 1009",
)
async def compression_bomb(ctx: Context) -> None:
    stream = await connected(ctx, ctx.user(), compression="deflate")
    if "permessage-deflate" not in stream.extensions:
        raise NotApplicable("the server did not accept permessage-deflate (compression off)")
    # 64x the limit of one repeated byte deflates to about a thousandth of its size on the wire.
    pad = "x" * (64 * ctx.limits.max_message_bytes)
    await stream.send_text(json.dumps({"type": "ping", "pad": pad}))
    await closes_with(ctx, stream, CloseCode.MESSAGE_TOO_BIG, "a compressed frame over the limit")


# Frames written to break naive servers, each with the replies docs/contract.md 4 allows: markup,
# query and template injection, NUL bytes, prototype keys, a number too long for some parsers,
# arrays nested deeper than a recursive JSON parser goes.
ERROR, PONG, EITHER = ("error",), ("pong",), ("error", "pong")
HOSTILE_FRAMES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ('{"type": "<script>alert(1)</script>"}', ERROR),
    ('{"type": "\'; DROP TABLE notifications; --"}', ERROR),
    ('{"type": "${jndi:ldap://127.0.0.1/a}", "data": "{{7*7}}"}', ERROR),
    ('{"type": "ping\\u0000"}', ERROR),
    ('{"type": "notifications:*"}', ERROR),
    ('{"__proto__": {"type": "ping"}, "constructor": {"prototype": {"admin": true}}}', ERROR),
    ('{"type": {"$ne": null}}', ERROR),
    ('{"type": "ping", "n": ' + "9" * 5000 + "}", EITHER),
    ("[" * 50_000, ERROR),
    ('{"type": "ping", "data": {"$where": "sleep(1000)"}}', PONG),
)


@case(
    "hostile-frames",
    "11.4",
    "injection strings, NUL bytes, huge numbers and deep nesting get `error` (or `pong` for a "
    "ping); no stack trace, and the stream stays open",
)
async def hostile_frames(ctx: Context) -> None:
    per_stream = max(1, ctx.limits.client_rate // 2)  # stay well under the flood limit
    user = ctx.user()
    for start in range(0, len(HOSTILE_FRAMES), per_stream):
        stream = await connected(ctx, user)
        for text, allowed in HOSTILE_FRAMES[start : start + per_stream]:
            await stream.send_text(text)
            reply = await stream.recv(ctx.target.frame_timeout)
            while reply.type == "heartbeat":
                reply = await stream.recv(ctx.target.frame_timeout)
            ctx.shape(reply)
            ctx.must(
                reply.type in allowed,
                f"{text[:40]!r} got `{reply.type}`, not {' or '.join(allowed)}",
            )
            ctx.must(
                "Traceback" not in json.dumps(reply.data),
                f"the reply to {text[:40]!r} carries a stack trace",
            )
        await stream.ping()
        await stream.expect("pong", timeout=ctx.target.frame_timeout)
        await stream.close()
