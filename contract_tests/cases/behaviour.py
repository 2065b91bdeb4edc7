"""docs/contract.md section 5: heartbeat, fan-out, per-user limit, slow consumers, resume."""

from __future__ import annotations

import asyncio
import itertools
import time

from contract_tests.cases.helpers import closes_with, connected, refused_after_accept
from contract_tests.context import Context
from contract_tests.registry import case
from notify_client.client import Closed, Frame, StreamClient, notifications_until
from notify_client.waiting import until_true
from notify_contract.codes import WS_4408_SLOW_CONSUMER, WS_4429_TOO_MANY_CONNECTIONS, describe
from notify_contract.protocol import HEARTBEAT_SLACK_S, HEARTBEAT_SPAN, HEARTBEAT_TOLERANCE
from notify_contract.verdicts import Need

DRIVEN = (Need.TOKENS, Need.DRIVER)
# Skipped while waiting for heartbeats: everything a notification or task stream may send else.
OTHER_THAN_HEARTBEATS = ("notification", "progress", "resync")


async def heartbeats(ctx: Context, stream: StreamClient, interval: float) -> list[Frame]:
    """HEARTBEAT_SPAN + 1 heartbeats in a row, other frames skipped."""
    wait = interval * 1.5 + ctx.target.frame_timeout
    return [
        await stream.expect("heartbeat", timeout=wait, skip=OTHER_THAN_HEARTBEATS)
        for _ in range(HEARTBEAT_SPAN + 1)
    ]


def judge_beats(ctx: Context, beats: list[Frame], interval: float) -> None:
    """Rule 5.1's tolerance on the heartbeats as seen: the span, then no beat missed."""
    gaps = [round(b.at - a.at, 3) for a, b in itertools.pairwise(beats)]
    span = round(beats[-1].at - beats[0].at, 3)
    expected = len(gaps) * interval
    off = HEARTBEAT_TOLERANCE * expected + HEARTBEAT_SLACK_S
    ctx.note("suite", "note", f"heartbeat gaps {gaps} s: {span} s for {HEARTBEAT_SPAN} intervals")
    ctx.must(
        abs(span - expected) <= off,
        f"{HEARTBEAT_SPAN} heartbeat intervals took {span} s, not {expected:g} s within "
        f"{off:.2f} s (WS_HEARTBEAT_INTERVAL = {interval} s; gaps {gaps} s)",
    )
    ctx.must(
        max(gaps) < 2 * interval,
        f"a heartbeat gap of {max(gaps)} s: a beat missed (WS_HEARTBEAT_INTERVAL = {interval} s)",
    )


@case(
    "heartbeat-cadence",
    "5.1",
    "a `heartbeat` every WS_HEARTBEAT_INTERVAL seconds (4 intervals within 10% + 0.1 s)",
    timeout=600,
    estimate=lambda t: (HEARTBEAT_SPAN + 1) * t.limits.heartbeat_interval,
)
async def heartbeat_cadence(ctx: Context) -> None:
    interval = ctx.limits.heartbeat_interval
    stream = await connected(ctx, ctx.user())
    judge_beats(ctx, await heartbeats(ctx, stream, interval), interval)


@case(
    "idle-stream-survives",
    "5.1",
    "an idle stream stays open (heartbeats keep proxies from timing it out)",
    timeout=600,
    estimate=lambda t: t.hold,
)
async def idle_stream_survives(ctx: Context) -> None:
    hold = ctx.target.hold
    stream = await connected(ctx, ctx.user())
    started = time.monotonic()
    beats = 0
    try:
        while (left := hold - (time.monotonic() - started)) > 0:
            try:
                frame = await stream.recv(timeout=left)
            except TimeoutError:
                break
            beats += frame.type == "heartbeat"
    except Closed as closed:
        after = round(time.monotonic() - started, 2)
        if closed.code in (1006, None) and beats == 0:
            ctx.must(
                False,
                f"proxy read timeout shorter than the heartbeat: the idle stream was "
                f"dropped after {after} s without a close frame and before its first "
                f"heartbeat (WS_HEARTBEAT_INTERVAL {ctx.limits.heartbeat_interval} s); raise "
                "proxy_read_timeout above the interval or lower the interval",
            )
        ctx.must(
            False,
            f"the idle stream closed after {after} s with {closed.code} ({beats} heartbeats seen)",
        )


@case(
    "fanout-every-stream-once-in-order",
    "5.3",
    "each notification reaches every stream of its user exactly once, in publish order",
    needs=DRIVEN,
)
async def fanout_once_in_order(ctx: Context) -> None:
    user = ctx.user()
    streams = [
        await connected(ctx, user) for _ in range(min(3, ctx.limits.max_connections_per_user))
    ]
    ids = [(await ctx.driver.publish(user, f"n{i}"))["id"] for i in range(10)]
    ctx.must(len(set(ids)) == len(ids), f"notification ids repeat: {ids}")
    await ctx.driver.publish(user, "end")
    for n, stream in enumerate(streams, 1):
        got = [f.data["id"] for f in await notifications_until(stream, "end")][:-1]
        ctx.must(got == ids, f"stream {n} of {len(streams)} got {got}, published {ids}")


@case("fanout-isolation", "5.3", "a notification reaches no stream of any other user", needs=DRIVEN)
async def fanout_isolation(ctx: Context) -> None:
    alice, bob = ctx.user("alice"), ctx.user("bob")
    a, b = await connected(ctx, alice), await connected(ctx, bob)
    for i in range(5):
        await ctx.driver.publish(alice, f"for alice {i}")
    await ctx.driver.publish(bob, "end")
    await ctx.driver.publish(alice, "end")
    titles = [f.data["title"] for f in await notifications_until(b, "end")]
    ctx.must(titles == ["end"], f"bob's stream got another user's notifications: {titles}")
    ctx.must(len(await notifications_until(a, "end")) == 6, "alice missed notifications")


@case(
    "broadcast-reaches-everyone",
    "5.3",
    "a broadcast reaches every open notification stream, each of a user's streams alike",
    needs=DRIVEN,
)
async def broadcast(ctx: Context) -> None:
    streams = [await connected(ctx, ctx.user()) for _ in range(3)]
    twice = ctx.user("two-streams")  # one user with two streams, where the limit allows
    streams += [
        await connected(ctx, twice) for _ in range(min(2, ctx.limits.max_connections_per_user))
    ]
    sent = await ctx.driver.broadcast("to everyone")
    for stream in streams:
        got = ctx.shape(await stream.expect("notification", timeout=ctx.target.frame_timeout))
        ctx.must(got.data["id"] == sent["id"], f"a stream got {got.data['id']}, not the broadcast")


@case(
    "limit-4429",
    "5.5",
    "one stream over WS_MAX_CONNECTIONS_PER_USER is closed with 4429; the "
    "user's other streams are untouched",
    needs=DRIVEN,
)
async def limit_4429(ctx: Context) -> None:
    user = ctx.user()
    held = [await connected(ctx, user) for _ in range(ctx.limits.max_connections_per_user)]
    await refused_after_accept(
        ctx, ctx.token(user), WS_4429_TOO_MANY_CONNECTIONS, "one stream over the limit"
    )
    await ctx.driver.publish(user, "still here")
    for stream in held:
        got = await stream.expect("notification", timeout=ctx.target.frame_timeout)
        ctx.must(got.data["title"] == "still here", "a held stream lost its notification")


@case(
    "limit-slot-frees",
    "5.5",
    "closing one of the user's streams frees a slot (after one more was refused with 4429)",
    after=("limit-4429",),
)
async def limit_slot_frees(ctx: Context) -> None:
    user = ctx.user()
    held = [await connected(ctx, user) for _ in range(ctx.limits.max_connections_per_user)]
    await refused_after_accept(
        ctx, ctx.token(user), WS_4429_TOO_MANY_CONNECTIONS, "one stream over the limit"
    )
    await held[0].close()

    async def slot_free() -> bool:  # the server may see the close a moment after the client
        stream = await ctx.stream(user, label="again")
        try:
            await stream.expect("connected", timeout=ctx.target.frame_timeout)
            return True
        except Closed as closed:
            ctx.must(
                closed.code == WS_4429_TOO_MANY_CONNECTIONS,
                f"the stream after a close was refused with {describe(closed.code)}",
            )
            return False

    await until_true(slot_free, 5, "a free slot within 5 s of closing a stream", poll=0.1)


@case(
    "slow-consumer-4408",
    "5.6",
    "a stream that stops reading is closed with 4408; the user's "
    "other stream keeps getting everything",
    needs=(*DRIVEN, Need.STATS),
    timeout=180,
)
async def slow_consumer(ctx: Context) -> None:
    user = ctx.user()
    slow = await connected(ctx, user, max_queue=1, label="slow")
    fast = await connected(ctx, user, label="fast")
    slow.ws.transport.pause_reading()  # stops reading; the server's queue for it fills
    admin = ctx.admin
    received: list[str] = []

    async def read_fast() -> None:
        while True:
            frame = await fast.recv(timeout=60)
            if frame.type == "notification":
                received.append(frame.data["title"])
                if frame.data["title"] == "end":
                    return

    reader = asyncio.create_task(read_fast())
    try:
        sent = 0
        dropped = False
        deadline = time.monotonic() + 120
        while not dropped and sent < 5000 and time.monotonic() < deadline:
            await ctx.driver.publish(user, f"n{sent}", pad="x" * 60_000)
            sent += 1
            if sent % 20 == 0:
                stats = await ctx.driver.stats(admin)
                dropped = stats["users"].get(user) == 1
        ctx.note("suite", "note", f"{sent} notifications of 60 KB published")
        ctx.must(
            dropped,
            f"the stream that stopped reading was not dropped after {sent} notifications of 60 KB",
        )
        await ctx.driver.publish(user, "end")
        await asyncio.wait_for(reader, timeout=60)
    finally:
        reader.cancel()
    ctx.must(
        received == [f"n{i}" for i in range(sent)] + ["end"],
        "the reading stream missed notifications while the other one stalled",
    )
    slow.ws.transport.resume_reading()
    await closes_with(ctx, slow, WS_4408_SLOW_CONSUMER, "the stalled stream", timeout=60)


async def _resume(ctx: Context, user: str, last_id: str) -> StreamClient:
    return await connected(ctx, user, last_id=last_id, label="resumed")


@case(
    "resume-replay",
    "5.7",
    "a stream opened with last_id first gets what was published after "
    "it, in order, without duplicates, then live ones",
    needs=DRIVEN,
)
async def resume_replay(ctx: Context) -> None:
    user = ctx.user()
    ids = [(await ctx.driver.publish(user, f"n{i}"))["id"] for i in range(4)]
    stream = await _resume(ctx, user, ids[0])
    live = await ctx.driver.publish(user, "end")
    got = [f.data["id"] for f in await notifications_until(stream, "end")]
    ctx.must(got == [*ids[1:], live["id"]], f"resumed after {ids[0]}: got {got}")


@case(
    "resume-replay-broadcast",
    "5.7",
    "a resumed stream gets the broadcasts published after last_id too, in order with its own",
    needs=DRIVEN,
)
async def resume_replay_broadcast(ctx: Context) -> None:
    user = ctx.user()
    first = (await ctx.driver.publish(user, "own 1"))["id"]
    missed = [
        (await ctx.driver.broadcast("to everyone, missed"))["id"],
        (await ctx.driver.publish(user, "own 2"))["id"],
    ]
    stream = await _resume(ctx, user, first)
    live = await ctx.driver.publish(user, "end")
    got = [f.data["id"] for f in await notifications_until(stream, "end")]
    ctx.must(
        got == [*missed, live["id"]],
        f"resumed after {first}: got {got}, not the broadcast and own notification after it "
        f"({missed}) and then {live['id']}",
    )


@case(
    "resume-resync",
    "5.8",
    "a last_id older than the history gets `resync`; the archive lists exactly what came after",
    needs=(*DRIVEN, Need.ARCHIVE),
    timeout=180,
)
async def resume_resync(ctx: Context) -> None:
    user = ctx.user()
    ids = [
        (await ctx.driver.publish(user, f"n{i}"))["id"] for i in range(ctx.limits.history_size + 3)
    ]
    stream = await _resume(ctx, user, ids[0])
    ctx.shape(await stream.expect("resync", timeout=ctx.target.frame_timeout))
    items = [str(i.get("id")) for i in await ctx.driver.after(ctx.token(user), ids[0])]
    ctx.must(
        items == ids[1:],
        f"after a resync the archive after {ids[0]} lists {len(items)} notifications "
        f"({_ends(items)}), not the {len(ids) - 1} published after it ({_ends(ids[1:])})",
    )


def _ends(ids: list[str]) -> str:
    """The first and last of a list of ids, for a message."""
    if len(ids) <= 2:
        return ", ".join(ids) or "none"
    return f"{ids[0]} ... {ids[-1]}"
