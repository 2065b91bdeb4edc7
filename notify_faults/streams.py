"""Fault rows about the streams themselves: a consumer too slow to keep up, peers that stop
answering pings, one user's connects racing the per-user limit."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from notify_client.client import Closed, StreamClient
from notify_client.driver import Driver
from notify_client.waiting import until_true
from notify_contract.codes import WS_4408_SLOW_CONSUMER, WS_4429_TOO_MANY_CONNECTIONS
from notify_contract.protocol import WS_NOTIFICATIONS_PATH
from notify_faults import plots
from notify_faults.fleet import Archive
from notify_faults.lab import Lab
from notify_faults.load import Load, delivery, ms, quantile, user_names, ws_clients
from notify_faults.registry import Scale, fault
from notify_faults.table import Facts, Row


@dataclass
class SlowConsumerFacts(Facts):
    streams: int
    slow_close_code: int | None
    slow_closed_after_s: float | None
    notifications_to_the_slow_reader: int
    before_p50_ms: float | None
    before_p99_ms: float | None
    during_p50_ms: float | None
    during_p99_ms: float | None


@fault(
    "slow-consumer",
    title="one client stops reading while {clients} others are served",
    expected="the reader that stopped is closed with 4408 once its queue is full; the others' "
    "latency is unchanged (distributions side by side); lost 0 for the others",
)
async def slow_consumer(lab: Lab, scale: Scale, out: Path, row: Row) -> Row:
    server = lab.start_server(lab.settings(WS_HEARTBEAT_INTERVAL="5", WS_SEND_QUEUE="64"))
    users = user_names("calm", scale.clients)
    archive = Archive(server.base, lab.admin)
    clients = ws_clients(lab, users, server.base, archive)
    load = await Load.start(clients, archive, [server.base], lab.admin, users, scale)
    phase = scale.settle * 2
    await asyncio.sleep(phase)  # a baseline of this length
    split = time.time()
    slow = await StreamClient.open(
        server.base, WS_NOTIFICATIONS_PATH, lab.token("slow"), max_queue=1
    )
    await slow.expect("connected")
    slow.ws.transport.pause_reading()
    stopped = time.monotonic()
    flooder = Driver(server.base, lab.admin)
    pad = "x" * 16_384
    sent_to_slow = 0
    closed_after: float | None = None
    try:
        # The reader does not read, so it cannot see its own close: the server's stats tell.
        while sent_to_slow < 5000:
            await flooder.publish("slow", f"s{sent_to_slow}", pad=pad)
            sent_to_slow += 1
            if sent_to_slow % 16 == 0 and "slow" not in (await flooder.stats())["users"]:
                closed_after = time.monotonic() - stopped
                break
        slow.ws.transport.resume_reading()
        with contextlib.suppress(Closed):
            await slow.until_closed(30)
    finally:
        await flooder.aclose()
    await asyncio.sleep(max(0.0, phase - (time.time() - split)))  # the second phase as long
    counted = await load.finish(scale, keep_publishing=False)
    delivery(row, load.ledger, counted, clients, split)
    before = sorted(
        c.receipts.arrived[n] - load.ledger.sent_at[n]
        for c in clients
        for n in c.receipts.ids
        if n in load.ledger.sent_at and load.ledger.sent_at[n] < split
    )
    during = sorted(
        c.receipts.arrived[n] - load.ledger.sent_at[n]
        for c in clients
        for n in c.receipts.ids
        if n in load.ledger.sent_at and load.ledger.sent_at[n] >= split
    )
    plot = plots.latency_side_by_side(
        out / "slow-consumer-latency.png", before, during, "no slow reader", "one slow reader"
    )
    row.plots.append(plot.name)
    row.recovery_s = None
    p = SlowConsumerFacts(
        streams=len(clients),
        slow_close_code=slow.close_code,
        slow_closed_after_s=None if closed_after is None else round(closed_after, 3),
        notifications_to_the_slow_reader=sent_to_slow,
        before_p50_ms=ms(quantile(before, 0.5)),
        before_p99_ms=ms(quantile(before, 0.99)),
        during_p50_ms=ms(quantile(during, 0.5)),
        during_p99_ms=ms(quantile(during, 0.99)),
    )
    row.facts = p
    row.check(slow.close_code == WS_4408_SLOW_CONSUMER, f"the slow reader got {slow.close_code}")
    row.check(closed_after is not None, "the slow reader was still open after 5000 notifications")
    b99, d99 = p.before_p99_ms, p.during_p99_ms
    row.check(
        b99 is not None and d99 is not None and d99 <= 3 * b99 + 50,
        f"the others' p99 went from {b99} ms to {d99} ms",
    )
    return row.finish(
        f"the slow reader was closed with {slow.close_code} after {sent_to_slow} notifications "
        f"of 16 KB, {closed_after and round(closed_after, 2)} s after it stopped reading; the "
        f"other {len(clients)} streams' latency p50/p99: "
        f"{p.before_p50_ms}/{p.before_p99_ms} ms without it, "
        f"{p.during_p50_ms}/{p.during_p99_ms} ms with it"
    )


HALF_OPEN_ROUNDS = 3
PING_INTERVAL = PING_TIMEOUT = 1.0
DROP_BOUND = 2 * PING_INTERVAL + PING_TIMEOUT + 0.5  # the ping may come due a whole interval late


@dataclass
class HalfOpenFacts(Facts):
    peers_per_round: int
    dropped_after_s: list[float | None]
    files: list[int]
    rss_mb: list[float]


@fault(
    "half-open-client",
    title=f"{HALF_OPEN_ROUNDS} rounds of {{half_open}} clients that stop answering WebSocket "
    "pings without closing",
    expected=f"each dropped within WS_PING_INTERVAL + WS_PING_TIMEOUT "
    f"({PING_INTERVAL + PING_TIMEOUT:g} s; {DROP_BOUND:g} s allowing for the ping to come due); "
    "slots and descriptors freed; memory reused (no growth from round to round)",
)
async def half_open(lab: Lab, scale: Scale, out: Path, row: Row) -> Row:
    interval, timeout, rounds, bound = PING_INTERVAL, PING_TIMEOUT, HALF_OPEN_ROUNDS, DROP_BOUND
    server = lab.start_server(
        lab.settings(
            WS_HEARTBEAT_INTERVAL="30",
            WS_PING_INTERVAL=str(interval),
            WS_PING_TIMEOUT=str(timeout),
        )
    )
    driver = Driver(server.base, lab.admin)
    files = [lab.open_files(server)]
    rss = [lab.rss(server)]
    drops: list[float | None] = []
    users = user_names("mute", scale.half_open)

    async def gone() -> bool:
        return bool((await driver.stats())["total_connections"] == 0)

    for _ in range(rounds):
        mutes = [
            await StreamClient.open(server.base, WS_NOTIFICATIONS_PATH, lab.token(u)) for u in users
        ]
        for m in mutes:
            await m.expect("connected")
        for m in mutes:
            m.ws.transport.pause_reading()  # the peer no longer sees pings, and answers none
        muted = time.monotonic()
        try:
            await until_true(gone, 30, "the mute peers dropped")
            drops.append(round(time.monotonic() - muted, 3))
        except TimeoutError:
            drops.append(None)
        for m in mutes:
            m.ws.transport.abort()
        files.append(lab.open_files(server))
        rss.append(lab.rss(server))
    again = await StreamClient.open(server.base, WS_NOTIFICATIONS_PATH, lab.token(users[0]))
    hello = await again.expect("connected")
    await again.close()
    await driver.aclose()
    worst = max((d for d in drops if d is not None), default=None)
    row.recovery_s = worst
    mb = [round(r / 2**20, 1) for r in rss]
    row.facts = HalfOpenFacts(len(users), drops, files, mb)
    row.check(None not in drops, "a round's peers were never all dropped within 30 s")
    row.check(worst is not None and worst <= bound, f"dropped after {worst} s, bound {bound}")
    row.check(max(files[1:]) <= files[0] + 1, f"server descriptors per round: {files}")
    row.check(mb[-1] <= mb[1] + 2.0, f"RSS grew from round to round: {mb} MB")
    row.check(hello.type == "connected", "the user could not connect again")
    return row.finish(
        f"{rounds} rounds of {len(users)} mute peers, each round dropped after {drops} s "
        f"(bound {bound:g} s); server descriptors {files}; RSS {mb} MB (CPython keeps freed "
        "memory for reuse: the first round grows it, later rounds do not); the slot was free again"
    )


@dataclass
class LimitRaceFacts(Facts):
    rounds: int
    held_per_round: list[int]
    outcomes: dict[str, int]


@fault(
    "per-user-limit-race",
    title="{limit_rounds} rounds of 12 simultaneous connects of one user, across 2 instances",
    expected="never more than WS_MAX_CONNECTIONS_PER_USER (3) open; the rest closed with 4429",
    ci=True,
)
async def limit_race(lab: Lab, scale: Scale, out: Path, row: Row) -> Row:
    lab.start_redis()
    settings = lab.settings(WS_HEARTBEAT_INTERVAL="30")
    servers = [lab.start_server(settings), lab.start_server(settings)]
    bases = [s.base for s in servers]
    return await race(row, scale.limit_rounds, 3, lab.token, lambda i: bases[i % 2])


EXTRA = 9  # connects over the limit in each round


async def race(
    row: Row,
    rounds: int,
    limit: int,
    token: Callable[[str], str],
    base: Callable[[int], str],
    token_in: str = "query",
) -> Row:
    """`rounds` rounds of `limit` + EXTRA simultaneous connects of one user (connect i goes to
    `base(i)`): never more than `limit` held, the rest closed with 4429."""
    held: list[int] = []
    codes: dict[str, int] = {}
    for r in range(rounds):
        tok = token(f"race-{r}-{time.time_ns()}")
        streams = await asyncio.gather(
            *(StreamClient.open(base(i), WS_NOTIFICATIONS_PATH, tok) for i in range(limit + EXTRA))
        )
        results = await asyncio.gather(*(_first_frame(s) for s in streams))
        held.append(sum(1 for r in results if r == "connected"))
        for res in results:
            codes[res] = codes.get(res, 0) + 1
        for s in streams:
            await s.close()
    row.facts = LimitRaceFacts(len(held), held, codes)
    row.check(max(held) <= limit, f"a user held {max(held)} streams at once")
    row.check(min(held) == limit, f"a round held only {min(held)}: the limit is not reachable")
    row.check(
        codes.get(str(int(WS_4429_TOO_MANY_CONNECTIONS)), 0) == EXTRA * len(held),
        f"outcomes {codes}: the extra streams were not all closed with 4429",
    )
    return row.finish(
        f"{len(held)} rounds of {limit + EXTRA}: held {min(held)}-{max(held)} per round; "
        f"outcomes {codes}"
    )


async def _first_frame(stream: StreamClient) -> str:
    """`connected`, or the close code if the server closed the stream first."""
    try:
        return (await stream.recv(10)).type
    except Closed as exc:
        return str(exc.code)
