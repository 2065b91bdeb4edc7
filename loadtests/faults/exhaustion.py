"""Resource exhaustion, over the network only, so every row runs against any target: half-sent
handshakes, connections until the target refuses, a flood of bad-token handshakes, abusive
handshakes and a tight open-close loop. Declared with `@attack`; `nox -s faults` runs each on
the reference stack directly and through nginx, `--target` against the user's server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil
from websockets.exceptions import InvalidHandshake, InvalidStatus

from contract_tests.context import Target, TokenSource
from loadtests.faults.fleet import Archive, Fleet, WsClient
from loadtests.faults.lab import Lab
from loadtests.faults.scenarios import Scale, Scenario, _delivery, _q, fault, under_load
from loadtests.faults.table import Facts, Outcome, Row
from notify_client.client import Closed, ProtocolViolation, StreamClient
from notify_client.waiting import until_true
from notify_contract.protocol import NOTIFICATIONS_PATH, WS_NOTIFICATIONS_PATH
from notify_contract.rules import Level, rule

HEAD_DEADLINE = 10.0  # rule 11.6: a request head not complete by then is closed
SLACK = 3.0  # the closes of hundreds of peers land over a moment
BACK_WITHIN = 20.0  # after an attack, a new user connects by the reconnect policy within this
LEGIT_CONNECT_P99 = 2.0  # seconds: what a legitimate user may wait for `connected` under a flood
EXTRA_HEADERS = 500
ATTACKER_ADDRESS = "127.0.0.2"
CLOSED = "closed without an answer"
BODY_DEADLINE = 10.0  # rule 11.9: a request body not complete by then is ended
OVERSIZED_BODY = 64 * 2**20  # rule 11.8: far past any limit a notification API needs
TRICKLE_BYTES = 60  # at a byte a second, past BODY_DEADLINE and its slack
RSS_GROWTH_MB = 32.0  # the body is refused unread: the server's memory stays about where it was


@dataclass
class Victim:
    """What a row knows of the target's process: its pid (for CPU and descriptors), if any."""

    pid: int | None = None

    def cpu_seconds(self) -> float | None:
        if self.pid is None:
            return None
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def open_files(self) -> int | None:
        return None if self.pid is None else psutil.Process(self.pid).num_fds()

    def rss_mb(self) -> float | None:
        if self.pid is None:
            return None
        return round(psutil.Process(self.pid).memory_info().rss / 2**20, 1)


AttackFn = Callable[[Target, Scale, Victim, Row], Awaitable[Row]]


@dataclass(frozen=True)
class Attack:
    id: str
    rule: str
    title: str
    expected: str
    ci: bool
    run: AttackFn

    def row(self, scale: Scale, where: str = "") -> Row:
        sizes = vars(scale)
        title = self.title.format(**sizes) + (f" ({where})" if where else "")
        return Row(self.id, "attack", title, self.expected.format(**sizes))


ATTACKS: dict[str, Attack] = {}


def attack(
    attack_id: str, *, rule: str, title: str, expected: str, ci: bool = False
) -> Callable[[AttackFn], AttackFn]:
    """Declare an attack row, as faults and contract cases are declared."""

    def register(fn: AttackFn) -> AttackFn:
        if attack_id in ATTACKS:
            raise ValueError(f"two attack rows named {attack_id!r}")
        ATTACKS[attack_id] = Attack(attack_id, rule, title, expected, ci, fn)
        return fn

    return register


# -- raw connections -------------------------------------------------------------------------


def _address(target: Target) -> tuple[str, int, str]:
    parts = urlsplit(target.base)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "127.0.0.1", port, parts.path.rstrip("/") + WS_NOTIFICATIONS_PATH


def _head(target: Target, *lines: str, key: bool = True, end: bool = True) -> bytes:
    host, port, path = _address(target)
    head = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
    ]
    if key:
        head.append("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
    head += lines
    return ("\r\n".join(head) + ("\r\n\r\n" if end else "\r\n")).encode()


async def _raw(target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port, _ = _address(target)
    source = attacker_address(target)
    return await asyncio.open_connection(host, port, local_addr=(source, 0) if source else None)


async def _status(target: Target, head: bytes, timeout: float = 10.0) -> str:
    """The status line the target answers `head` with, or how the connection ended."""
    try:
        reader, writer = await asyncio.wait_for(_raw(target), timeout)
    except (OSError, TimeoutError) as exc:
        return f"no connection ({type(exc).__name__})"
    try:
        writer.write(head)
        line = await asyncio.wait_for(reader.readline(), timeout)
        return line.decode("latin-1").strip() or CLOSED
    except (OSError, TimeoutError) as exc:
        return f"no answer ({type(exc).__name__})"
    finally:
        writer.close()


async def _eof_after(reader: asyncio.StreamReader, since: float, limit: float) -> float | None:
    """Seconds from `since` until the peer closed, or None if not by `limit` seconds."""
    try:
        async with asyncio.timeout(max(0.0, limit - (time.monotonic() - since))):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return None
    except OSError:
        pass
    return time.monotonic() - since


async def _newcomer(target: Target, tokens: TokenSource, name: str) -> tuple[float | None, str]:
    """A new user connecting by the reconnect policy: seconds until `connected`, or why not."""
    user = f"{name}-{time.time_ns()}"
    archive = Archive(target.base, tokens.mint("faults-admin", admin=True))
    client = WsClient(name, user, target.base, tokens.mint(user), archive, token_in=target.token_in)
    fleet = Fleet([client])
    started = time.monotonic()
    try:
        await fleet.start(timeout=BACK_WITHIN)
        return time.monotonic() - started, ""
    except TimeoutError as exc:
        return None, str(exc)
    finally:
        await fleet.close()
        await archive.aclose()


def _needs_tokens(target: Target, row: Row) -> TokenSource | None:
    if target.tokens is None:
        row.outcome, row.observed = (
            Outcome.NOT_RUN,
            "needs tokens: give --jwt-secret or --token-cmd",
        )
    return target.tokens


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
    tokens = _needs_tokens(target, row)
    if tokens is None:
        return row
    started = time.monotonic()
    peers = []
    for _ in range(scale.stalled):
        reader, writer = await _raw(target)
        writer.write(_head(target, end=False))  # the request line and some headers, no end
        peers.append((reader, writer))
    joined, why = await _newcomer(target, tokens, "stall-newcomer")
    waits = await asyncio.gather(*(_eof_after(r, started, HEAD_DEADLINE + SLACK) for r, _ in peers))
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


def attacker_address(target: Target) -> str | None:
    """Attacks come from their own loopback address, as they would from their own host, so
    that a per-address limit (nginx's) can tell them from the legitimate users."""
    host = urlsplit(target.base).hostname or ""
    return ATTACKER_ADDRESS if host.startswith("127.") else None


async def _attacker(target: Target, token: str, source: str | None = None) -> StreamClient | str:
    """A stream held open by an attacker, or how the target refused it."""
    try:
        stream = await StreamClient.open(
            target.base,
            WS_NOTIFICATIONS_PATH,
            token,
            open_timeout=10,
            local_address=source,
            token_in=target.token_in,
        )
    except InvalidStatus as exc:
        return f"HTTP {exc.response.status_code}"
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        return type(exc).__name__
    try:
        await stream.expect("connected", timeout=10)
    except (Closed, ProtocolViolation, TimeoutError) as exc:
        stream.ws.transport.abort()
        return f"closed {exc.code}" if isinstance(exc, Closed) else type(exc).__name__
    return stream


@attack(
    "descriptor-exhaustion",
    rule="11.7",
    title="connections held until the target refuses (at most {exhaust_max}), under load",
    expected="a clean refusal where the limit is hit; open streams keep their deliveries, none "
    f"closes, lost 0; once the attackers leave a new user connects within {BACK_WITHIN:g} s",
)
async def exhaustion(target: Target, scale: Scale, victim: Victim, row: Row) -> Row:
    tokens = _needs_tokens(target, row)
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
                _attacker(target, tokens.mint(f"exhaust-{start + i}"), attacker_address(target))
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
    joined, why = await _newcomer(target, tokens, "exhaust-newcomer")
    counted = await load.finish(scale)
    files += [f for f in [victim.open_files()] if f is not None]
    _delivery(row, load.ledger, counted, clients, hit)
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
        f"{closed} open streams closed; {counted.delivered} of {counted.expected} deliveries; "
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
    tokens = _needs_tokens(target, row)
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
    p50, p99 = _q(ok, 0.5), _q(ok, 0.99)
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
    tokens = _needs_tokens(target, row)
    if tokens is None:
        return row
    filler = [f"X-Filler-{i}: {'a' * 40}" for i in range(EXTRA_HEADERS)]
    status = await _status(target, _head(target, *filler))
    return await _refused_then_serves(target, tokens, row, status)


@attack(
    "no-websocket-key",
    rule="1.7",
    title="a handshake without Sec-WebSocket-Key",
    expected="a 4xx answer, never 101 or 5xx; a new user connects",
    ci=True,
)
async def no_key(target: Target, scale: Scale, victim: Victim, row: Row) -> Row:
    tokens = _needs_tokens(target, row)
    if tokens is None:
        return row
    status = await _status(target, _head(target, key=False))
    row.check(_code(status).startswith("4"), f"answered {status!r}, not a 4xx")
    return await _refused_then_serves(target, tokens, row, status)


def _code(status: str) -> str:
    """The status code of a status line ('' if the connection ended without one)."""
    return status.split(" ", 2)[1] if status.startswith("HTTP/") and " " in status else ""


async def _refused_then_serves(target: Target, tokens: TokenSource, row: Row, status: str) -> Row:
    code = _code(status)
    row.check(code != "101", "the handshake was accepted")
    row.check(
        code.startswith("4") or status == CLOSED,
        f"not a clean refusal (a 4xx, or a closed connection): {status!r}",
    )
    joined, why = await _newcomer(target, tokens, f"{row.id}-newcomer")
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
    tokens = _needs_tokens(target, row)
    if tokens is None:
        return row
    files = [f for f in [victim.open_files()] if f is not None]
    users = [f"churn-{time.time_ns()}-{i}" for i in range(20)]
    served, refused = 0, dict[str, int]()
    started = time.monotonic()
    for cycle in range(scale.churn // len(users)):
        outcomes = await asyncio.gather(*(_attacker(target, tokens.mint(u)) for u in users))
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
        streams = [await _attacker(target, tokens.mint(u)) for u in users[:5] for _ in range(3)]
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


# -- request bodies (rules 11.8, 11.9) ------------------------------------------------------


def _post_head(target: Target, *lines: str) -> bytes:
    """A publish request's head, without a token: the body must be judged before any auth."""
    host, port, _ = _address(target)
    path = urlsplit(target.base).path.rstrip("/") + NOTIFICATIONS_PATH
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    return ("\r\n".join([*head, *lines]) + "\r\n\r\n").encode()


@dataclass(frozen=True)
class BodyAnswer:
    """How the target ended one request body: its status line (or how the connection ended),
    the body bytes sent by then, and the seconds from the head."""

    status: str
    sent: int
    after_s: float

    @property
    def ended(self) -> bool:
        return _code(self.status).startswith("4") or self.status == CLOSED


async def _send_body(
    target: Target, head: bytes, pieces: AsyncIterator[bytes], limit: float
) -> BodyAnswer:
    """Sends `head`, then `pieces` while watching for an answer; stops at the first answer, at
    the end of `pieces` (then waits for one), or at `limit` seconds."""
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(_raw(target), limit)
    except (OSError, TimeoutError) as exc:
        return BodyAnswer(f"no connection ({type(exc).__name__})", 0, 0.0)
    sent = 0

    async def feed() -> None:
        nonlocal sent
        writer.write(head)
        async for piece in pieces:
            writer.write(piece)
            await writer.drain()
            sent += len(piece)

    feeding = asyncio.create_task(feed())
    try:
        async with asyncio.timeout(limit):
            line = await reader.readline()
        status = line.decode("latin-1").strip() or CLOSED
    except TimeoutError:
        status = f"no answer within {limit:g} s"
    except OSError:
        status = CLOSED
    finally:
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await feeding
        writer.close()
    return BodyAnswer(status, sent, round(time.monotonic() - started, 2))


async def _chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    piece = b"%x\r\n%s\r\n" % (size, b"a" * size)
    for _ in range(total // size):
        yield piece
    yield b"0\r\n\r\n"


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""


async def _trickle(size: int, every: float) -> AsyncIterator[bytes]:
    for _ in range(size):
        yield b"a"
        await asyncio.sleep(every)


@dataclass
class BodyFacts(Facts):
    declared: BodyAnswer
    chunked: BodyAnswer
    server_rss_mb: list[float] = field(default_factory=list)


@attack(
    "oversized-body",
    rule="11.8",
    title=f"a POST of {OVERSIZED_BODY // 2**20} MB without a token, declared and then chunked",
    expected="refused (a 4xx or a closed connection) before the body is read: the declared one "
    "with none of it sent, the chunked one long before its end; server memory grows by less than "
    f"{RSS_GROWTH_MB:g} MB (with its pid); a new user connects",
    ci=True,
)
async def oversized_body(target: Target, scale: Scale, victim: Victim, row: Row) -> Row:
    tokens = _needs_tokens(target, row)
    if tokens is None:
        return row
    rss = [r for r in [victim.rss_mb()] if r is not None]
    declared = await _send_body(
        target, _post_head(target, f"Content-Length: {OVERSIZED_BODY}"), _nothing(), BODY_DEADLINE
    )
    chunked = await _send_body(
        target,
        _post_head(target, "Transfer-Encoding: chunked"),
        _chunks(OVERSIZED_BODY),
        BODY_DEADLINE,
    )
    rss += [r for r in [victim.rss_mb()] if r is not None]
    row.facts = BodyFacts(declared, chunked, rss)
    row.check(declared.ended, f"declared {OVERSIZED_BODY} bytes, sent none: {declared.status!r}")
    row.check(
        chunked.ended and chunked.sent < OVERSIZED_BODY,
        f"chunked: {chunked.status!r} after {chunked.sent} of {OVERSIZED_BODY} bytes",
    )
    if len(rss) == 2:
        row.check(rss[1] - rss[0] < RSS_GROWTH_MB, f"server memory {rss[0]} -> {rss[1]} MB")
    joined, why = await _newcomer(target, tokens, f"{row.id}-newcomer")
    row.check(joined is not None, f"no new user could connect afterwards: {why}")
    memory = f"; server memory {rss[0]} -> {rss[1]} MB" if len(rss) == 2 else ""
    return row.finish(
        f"declared: {declared.status!r} in {declared.after_s} s; chunked: {chunked.status!r} "
        f"after {chunked.sent // 1024} KB{memory}; afterwards "
        + ("a new user connected" if joined is not None else "no new user could connect")
    )


@dataclass
class TrickleFacts(Facts):
    answer: BodyAnswer


@attack(
    "trickled-body",
    rule="11.9",
    title=f"a POST body of {TRICKLE_BYTES} bytes sent a byte a second, without a token",
    expected=f"answered (a 4xx, 408) or closed within {BODY_DEADLINE:g} s of its head; a new "
    "user connects meanwhile",
    ci=True,
)
async def trickled_body(target: Target, scale: Scale, victim: Victim, row: Row) -> Row:
    tokens = _needs_tokens(target, row)
    if tokens is None:
        return row
    trickled = asyncio.create_task(
        _send_body(
            target,
            _post_head(target, f"Content-Length: {TRICKLE_BYTES}"),
            _trickle(TRICKLE_BYTES, 1.0),
            BODY_DEADLINE + SLACK,
        )
    )
    joined, why = await _newcomer(target, tokens, f"{row.id}-newcomer")
    answer = await trickled
    row.facts = TrickleFacts(answer)
    row.recovery_s = answer.after_s if answer.ended else None
    row.check(answer.ended, f"{answer.status!r} after {answer.sent} bytes in {answer.after_s} s")
    row.check(
        answer.after_s <= BODY_DEADLINE + SLACK,
        f"ended {answer.after_s} s after its head, past {BODY_DEADLINE:g} s",
    )
    row.check(joined is not None, f"a new user could not connect meanwhile: {why}")
    return row.finish(
        f"{answer.status!r} after {answer.sent} of {TRICKLE_BYTES} bytes, {answer.after_s} s "
        "after its head; "
        + ("a new user connected meanwhile" if joined is not None else "no new user connected")
    )


def merge(runs: list[tuple[str, Row]], into: Row) -> Row:
    """One table row from the same attack on several paths (directly, through nginx)."""
    for where, r in runs:
        into.problems += [f"{where}: {p}" for p in r.problems]
    recoveries = [r.recovery_s for _, r in runs if r.recovery_s is not None]
    into.recovery_s = max(recoveries) if recoveries else None
    losts = [r.lost for _, r in runs if r.lost is not None]
    into.lost = sum(losts) if losts else None
    dups = [r.duplicates for _, r in runs if r.duplicates is not None]
    into.duplicates = sum(dups) if dups else None
    observed = " | ".join(f"{where}: {r.observed}" for where, r in runs)
    if all(r.outcome is Outcome.NOT_RUN for _, r in runs):
        into.outcome, into.observed = Outcome.NOT_RUN, observed
        return into
    return into.finish(observed)


async def run_attack(attack: Attack, target: Target, scale: Scale, victim: Victim) -> Row:
    """One attack against one target; a row that raises is a failed row, with why. A SHOULD
    rule's row that is not met is non-strict: reported, never a failed run."""
    row = attack.row(scale)
    try:
        row = await asyncio.wait_for(attack.run(target, scale, victim, row), timeout=600)
    except Exception as exc:
        row.problems.append(f"{type(exc).__name__}: {exc}"[:600])
        row.finish("the attack raised")
    if row.outcome is Outcome.FAIL and rule(attack.rule).level is Level.SHOULD:
        row.outcome = Outcome.NON_STRICT
    return row


def _on_the_stack(attack: Attack) -> Scenario:
    """The attack against the reference server directly and through nginx (strict)."""

    async def scenario(lab: Lab, scale: Scale, out: Path, row: Row) -> Row:
        settings = lab.settings(
            WS_HEARTBEAT_INTERVAL="2", WS_MAX_CONNECTIONS=str(scale.exhaust_cap)
        )
        server = lab.start_server(settings)
        proxy = lab.start_nginx([server])
        victim = Victim(server.process.pid)
        runs = []
        for where, base in (("directly", server.base), ("through nginx", proxy.base)):
            target = Target(base, where, tokens=lab.tokens, heartbeat_interval=2.0)
            runs.append((where, await run_attack(attack, target, scale, victim)))
        return merge(runs, row)

    return scenario


for _attack in list(ATTACKS.values()):
    fault(
        _attack.id,
        title=_attack.title + ", directly and through nginx",
        expected=_attack.expected,
        ci=_attack.ci,
    )(_on_the_stack(_attack))
