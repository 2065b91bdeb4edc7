"""Attack rows on any target (rules 11.x): slow and oversized handshakes, descriptor exhaustion, a
bad-token flood, a tight open-close loop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from websockets.exceptions import InvalidHandshake, InvalidStatus

from notify_client.client import Closed, ProtocolViolation, StreamClient
from notify_client.target import Target, TokenSource
from notify_client.waiting import until_true
from notify_contract.protocol import WS_NOTIFICATIONS_PATH
from notify_faults.load import delivery, quantile, under_load
from notify_faults.raw import (
    BACK_WITHIN,
    CLOSED,
    EXTRA_HEADERS,
    HEAD_DEADLINE,
    LEGIT_CONNECT_P99,
    SLACK,
    attacker_address,
    attacker_stream,
    eof_after,
    needs_tokens,
    new_user_joins,
    raw_connection,
    status_code,
    status_line,
    upgrade_head,
)
from notify_faults.registry import Scale, Victim, attack
from notify_faults.table import Facts, Row

# -- the rows ----------------------------------------------------------------------------------


@dataclass
class StallFacts(Facts):
    stalled: int
    closed: int
    closed_after_p50_s: float | None
    closed_after_max_s: float | None
    newcomer_connect_s: float | None


@attack(
    "slow-handshake",
    rule="11.6",
    title="{stalled} connections send half a handshake and stall",
    expected=f"each closed within {HEAD_DEADLINE:g} s (rule 11.6); a new user connects meanwhile",
    ci=True,
)
async def slow_handshake(target: Target, scale: Scale, victim: Victim, row: Row) -> Row:
    tokens = needs_tokens(target, row)
    if tokens is None:
        return row
    started = time.monotonic()
    peers = []
    for _ in range(scale.stalled):
        reader, writer = await raw_connection(target)
        writer.write(upgrade_head(target, end=False))  # the request line and some headers, no end
        peers.append((reader, writer))
    joined, why = await new_user_joins(target, tokens, "stall-newcomer")
    waits = await asyncio.gather(*(eof_after(r, started, HEAD_DEADLINE + SLACK) for r, _ in peers))
    for _, writer in peers:
        writer.close()
    done = sorted(w for w in waits if w is not None)
    p50 = round(done[len(done) // 2], 2) if done else None
    worst = round(done[-1], 2) if done else None
    row.facts = StallFacts(len(peers), len(done), p50, worst, joined and round(joined, 3))
    row.recovery_s = worst
    row.check(
        len(done) == len(peers),
        f"{len(peers) - len(done)} of {len(peers)} still open {HEAD_DEADLINE + SLACK:g} s in",
    )
    row.check(worst is None or worst <= HEAD_DEADLINE + SLACK, f"closed after {worst} s")
    row.check(joined is not None, f"a new user could not connect meanwhile: {why}")
    newcomer = (
        f"a new user connected in {joined * 1000:.0f} ms meanwhile"
        if joined is not None
        else "no new user could connect meanwhile"
    )
    return row.finish(
        f"{len(done)} of {len(peers)} stalled connections closed by the target, p50/max "
        f"{p50}/{worst} s after they stalled; {newcomer}"
    )


@dataclass
class ExhaustionFacts(Facts):
    attackers_held: int
    refused_at: int | None
    refusals: dict[str, int]
    fleet_closed: int
    newcomer_after_s: float | None
    server_files: list[int] = field(default_factory=list)


@attack(
    "descriptor-exhaustion",
    rule="11.7",
    title="connections held until the target refuses (at most {exhaust_max}), under load",
    expected="a clean refusal where the limit is hit; open streams keep their deliveries, none "
    f"closes, lost 0; once the attackers leave a new user connects within {BACK_WITHIN:g} s",
)
async def exhaustion(target: Target, scale: Scale, victim: Victim, row: Row) -> Row:
    tokens = needs_tokens(target, row)
    if tokens is None:
        return row
    load, clients = await under_load(target, tokens, scale, "exhaust")
    hit = time.time()
    held: list[StreamClient] = []
    refusals: dict[str, int] = {}
    refused_at = None
    files = [f for f in [victim.open_files()] if f is not None]
    batch = 50
    for start in range(0, scale.exhaust_max, batch):
        count = min(batch, scale.exhaust_max - start)
        outcomes = await asyncio.gather(
            *(
                attacker_stream(
                    target, tokens.mint(f"exhaust-{start + i}"), attacker_address(target)
                )
                for i in range(count)
            )
        )
        for outcome in outcomes:
            if isinstance(outcome, StreamClient):
                held.append(outcome)
            else:
                refusals[outcome] = refusals.get(outcome, 0) + 1
        if refusals:
            refused_at = len(held) + len(clients)
            break
    files += [f for f in [victim.open_files()] if f is not None]
    await load.publisher.reached(load.ledger.total + int(scale.publish_rate * scale.settle))
    for stream in held:
        stream.ws.transport.abort()
    left = time.monotonic()
    joined, why = await new_user_joins(target, tokens, "exhaust-newcomer")
    counted = await load.finish(scale)
    files += [f for f in [victim.open_files()] if f is not None]
    delivery(row, load.ledger, counted, clients, hit)
    closed = sum(len(c.life.closes) for c in clients)
    after = None if joined is None else round(time.monotonic() - left, 2)
    row.facts = ExhaustionFacts(len(held), refused_at, refusals, closed, after, files)
    row.recovery_s = after
    row.check(closed == 0, f"{closed} of the open streams closed during the attack")
    row.check(joined is not None, f"no new user could connect after the attackers left: {why}")
    clean = {k: v for k, v in refusals.items() if k.startswith(("HTTP 5", "closed 1013"))}
    limit = (
        f"refused from connection {refused_at} on ({refusals})"
        if refused_at
        else f"no limit within {scale.exhaust_max} connections"
    )
    if refusals and not clean:
        row.problems.append(f"the refusal was not clean (503 or 1013): {refusals}")
    return row.finish(
        f"held {len(held)} attacker streams beside {len(clients)} open ones; {limit}; "
        f"{closed} open streams closed; {counted.delivered} of {counted.owed} deliveries; "
        + (
            f"a new user connected {after} s after the attackers left"
            if after is not None
            else "no new user could connect after the attackers left"
        )
        + f"; server descriptors {files or 'n/a'}"
    )


@dataclass
class FloodFacts(Facts):
    bad_handshakes: int
    per_second: float
    legit_connects: int
    legit_failed: int
    legit_p50_s: float | None
    legit_p99_s: float | None
    cpu_us_per_refused: float | None


async def _bad_handshake(target: Target) -> bool:
    """One handshake with a bad token; True once the target refused it (4xx/503, or 4401)."""
    try:
        stream = await StreamClient.open(
            target.base,
            WS_NOTIFICATIONS_PATH,
            "not.a.token",
            open_timeout=10,
            local_address=attacker_address(target),
            token_in=target.token_in,
        )
    except InvalidStatus:
        return True
    except (InvalidHandshake, OSError, TimeoutError):
        return False
    try:
        await stream.recv(timeout=10)
        stream.ws.transport.abort()
        return False  # it served a frame to a bad token
    except Closed:
        return True
    except (ProtocolViolation, TimeoutError):
        stream.ws.transport.abort()
        return False


@attack(
    "handshake-flood",
    rule="11.7",
    title="handshakes with bad tokens as fast as 32 loops can send them, {flood_seconds:g} s",
    expected=f"every bad one refused; legitimate users still connect, p99 under "
    f"{LEGIT_CONNECT_P99:g} s; CPU per refused handshake measured (with the server's pid)",
)
async def handshake_flood(target: Target, scale: Scale, victim: Victim, row: Row) -> Row:
    tokens = needs_tokens(target, row)
    if tokens is None:
        return row
    stop = asyncio.Event()
    refused = [0, 0]  # refused, not refused

    async def flood() -> None:
        while not stop.is_set():
            refused[0 if await _bad_handshake(target) else 1] += 1

    legit: list[float | None] = []

    async def users() -> None:
        n = 0
        while not stop.is_set():
            user = f"flood-legit-{time.time_ns()}-{n}"
            started = time.monotonic()
            try:
                stream = await StreamClient.open(
                    target.base,
                    WS_NOTIFICATIONS_PATH,
                    tokens.mint(user),
                    open_timeout=10,
                    token_in=target.token_in,
                )
                await stream.expect("connected", timeout=10)
                legit.append(time.monotonic() - started)
                await stream.close()
            except (InvalidHandshake, OSError, TimeoutError, Closed, ProtocolViolation):
                legit.append(None)
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)

    cpu_before = victim.cpu_seconds()
    started = time.monotonic()
    jobs = [asyncio.create_task(flood()) for _ in range(32)] + [asyncio.create_task(users())]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), scale.flood_seconds)
    stop.set()
    await asyncio.gather(*jobs)
    took = time.monotonic() - started
    cpu_after = victim.cpu_seconds()
    ok = sorted(t for t in legit if t is not None)
    p50, p99 = quantile(ok, 0.5), quantile(ok, 0.99)
    per = None
    if cpu_before is not None and cpu_after is not None and refused[0]:
        per = round((cpu_after - cpu_before) / refused[0] * 1e6, 1)
    failed = sum(t is None for t in legit)
    row.facts = FloodFacts(
        refused[0], round(refused[0] / took, 1), len(legit), failed, p50, p99, per
    )
    row.check(refused[1] == 0, f"{refused[1]} bad-token handshakes were not refused")
    row.check(len(ok) > 0 and failed == 0, f"{failed} of {len(legit)} legitimate connects failed")
    row.check(p99 is not None and p99 <= LEGIT_CONNECT_P99, f"legitimate connect p99 {p99} s")
    cpu = f"{per} µs of server CPU per refused handshake" if per is not None else "CPU n/a"
    return row.finish(
        f"{refused[0]} bad handshakes refused ({refused[0] / took:.0f}/s); {len(ok)} of "
        f"{len(legit)} legitimate users connected, p50/p99 {p50}/{p99} s; {cpu}"
    )


@attack(
    "many-headers",
    rule="11.4",
    title=f"a handshake with {EXTRA_HEADERS} extra headers",
    expected="refused with a 4xx or a closed connection, never accepted; a new user connects",
    ci=True,
)
async def many_headers(target: Target, scale: Scale, victim: Victim, row: Row) -> Row:
    tokens = needs_tokens(target, row)
    if tokens is None:
        return row
    filler = [f"X-Filler-{i}: {'a' * 40}" for i in range(EXTRA_HEADERS)]
    status = await status_line(target, upgrade_head(target, *filler))
    return await _refused_then_serves(target, tokens, row, status)


@attack(
    "no-websocket-key",
    rule="1.7",
    title="a handshake without Sec-WebSocket-Key",
    expected="a 4xx answer, never 101 or 5xx; a new user connects",
    ci=True,
)
async def no_key(target: Target, scale: Scale, victim: Victim, row: Row) -> Row:
    tokens = needs_tokens(target, row)
    if tokens is None:
        return row
    status = await status_line(target, upgrade_head(target, key=False))
    row.check(status_code(status).startswith("4"), f"answered {status!r}, not a 4xx")
    return await _refused_then_serves(target, tokens, row, status)


async def _refused_then_serves(target: Target, tokens: TokenSource, row: Row, status: str) -> Row:
    code = status_code(status)
    row.check(code != "101", "the handshake was accepted")
    row.check(
        code.startswith("4") or status == CLOSED,
        f"not a clean refusal (a 4xx, or a closed connection): {status!r}",
    )
    joined, why = await new_user_joins(target, tokens, f"{row.id}-newcomer")
    row.check(joined is not None, f"no new user could connect afterwards: {why}")
    newcomer = "a new user connected" if joined is not None else "no new user could connect"
    return row.finish(f"answered {status!r}; afterwards {newcomer}")


@dataclass
class ChurnFacts(Facts):
    cycles: int
    served: int
    refused: dict[str, int]
    per_second: float
    server_files: list[int]


def _clean(refusal: str) -> bool:
    """A refusal a client can act on: 503 (a rate limit, capacity) or 429."""
    return refusal.startswith(("HTTP 503", "HTTP 429"))


@attack(
    "open-close-loop",
    rule="5.5",
    title="{churn} connects and closes in a tight loop from one address, 20 at a time",
    expected="each one served, or refused cleanly (503 or 429: a per-address rate limit); "
    "afterwards the same users get their 3 streams (no slot leaked), and the server holds no "
    "more descriptors than before (with its pid)",
    ci=True,
)
async def open_close_loop(target: Target, scale: Scale, victim: Victim, row: Row) -> Row:
    tokens = needs_tokens(target, row)
    if tokens is None:
        return row
    files = [f for f in [victim.open_files()] if f is not None]
    users = [f"churn-{time.time_ns()}-{i}" for i in range(20)]
    served, refused = 0, dict[str, int]()
    started = time.monotonic()
    for cycle in range(scale.churn // len(users)):
        outcomes = await asyncio.gather(*(attacker_stream(target, tokens.mint(u)) for u in users))
        for outcome in outcomes:
            if isinstance(outcome, StreamClient):
                served += 1
                if cycle % 2:
                    await outcome.close()  # a clean close, and (below) a dropped connection
                else:
                    outcome.ws.transport.abort()
            else:
                refused[outcome] = refused.get(outcome, 0) + 1
    took = time.monotonic() - started
    cycles = scale.churn // len(users) * len(users)

    async def three_each() -> bool:
        streams = [
            await attacker_stream(target, tokens.mint(u)) for u in users[:5] for _ in range(3)
        ]
        good = [s for s in streams if isinstance(s, StreamClient)]
        for s in good:
            await s.close()
        return len(good) == len(streams)

    # A rate limiter lets the address in again within seconds, if it is not hammered: one try
    # (15 handshakes) a second, as a client backing off would.
    try:
        await until_true(three_each, BACK_WITHIN, "every user's 3 streams again", poll=1.0)
        slots_free = True
    except TimeoutError:
        slots_free = False
    files += [f for f in [victim.open_files()] if f is not None]
    unclean = {k: n for k, n in refused.items() if not _clean(k)}
    row.facts = ChurnFacts(cycles, served, refused, round(cycles / took, 1), files)
    row.check(served > 0, "no connect was served")
    row.check(not unclean, f"connects that failed without a clean refusal: {unclean}")
    row.check(slots_free, "a user could not open its 3 streams afterwards: a slot leaked")
    if len(files) == 2:
        row.check(files[1] <= files[0] + 10, f"server descriptors {files[0]} -> {files[1]}")
    limited = f", {sum(refused.values())} refused ({refused})" if refused else ""
    after = "every user got its 3 streams" if slots_free else "users could not get their 3 streams"
    return row.finish(
        f"{served} of {cycles} connects served at {cycles / took:.0f}/s{limited}, half closed "
        f"cleanly, half dropped; afterwards {after}; server descriptors {files or 'n/a'}"
    )
