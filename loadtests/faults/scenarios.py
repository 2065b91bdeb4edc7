"""The fault rows: each starts real processes in a Lab, runs clients and a publisher, injects
one failure, and fills its Row from what the clients and the ledger saw."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import redis

from contract_tests.context import Target, TokenSource
from harness.stack import BUS_CLIENT, ServerHandle
from loadtests.faults import plots
from loadtests.faults.fleet import Archive, Client, Fleet, Publisher, SseClient, WsClient, delivered
from loadtests.faults.lab import Lab
from loadtests.faults.ledger import Ledger, Tally, missing, tally
from loadtests.faults.table import DeliveryFacts, Facts, LostSample, Row
from notify_client.client import Closed, StreamClient
from notify_client.driver import Driver
from notify_client.waiting import until_true
from notify_contract.codes import WS_4408_SLOW_CONSUMER, WS_4429_TOO_MANY_CONNECTIONS, CloseCode
from notify_contract.protocol import WS_NOTIFICATIONS_PATH


@dataclass(frozen=True)
class Scale:
    """How big each fault is: CI keeps it small, `nox -s faults` uses a few thousand clients."""

    name: str
    restart_clients: int  # streams through nginx when the server is killed
    clients: int  # streams in the other rows
    publish_rate: float  # notifications a second
    limit_rounds: int  # rounds of simultaneous connects of one user
    half_open: int  # peers that stop answering pings
    drain: float = 60.0  # seconds to wait for every owed delivery before counting the lost
    stalled: int = 800  # half-sent handshakes held open at once
    exhaust_max: int = 2500  # connections an exhaustion attack opens at most
    exhaust_cap: int = 2000  # WS_MAX_CONNECTIONS of the reference server in that row
    flood_seconds: float = 10.0  # how long bad-token handshakes flood in
    churn: int = 2000  # connects and closes in the tight loop

    @property
    def settle(self) -> float:
        """Seconds of publishing before and after each fault."""
        return 2.0 if self.name == "ci" else 4.0


CI = Scale(
    "ci",
    restart_clients=200,
    clients=60,
    publish_rate=40,
    limit_rounds=5,
    half_open=10,
    drain=30,
    stalled=200,
    exhaust_max=400,
    exhaust_cap=300,
    flood_seconds=3.0,
    churn=200,
)
FULL = Scale(
    "full", restart_clients=3000, clients=600, publish_rate=150, limit_rounds=30, half_open=200
)

Scenario = Callable[[Lab, Scale, Path, Row], Awaitable[Row]]


@dataclass(frozen=True)
class FaultRow:
    """A declared fault: its id, what it does and what is expected (either may name a field of
    the Scale, as `{clients}`), whether CI runs it, and the scenario that fills its Row."""

    id: str
    title: str
    expected: str
    ci: bool
    run: Scenario

    def row(self, scale: Scale) -> Row:
        sizes = asdict(scale)
        return Row(self.id, "fault", self.title.format(**sizes), self.expected.format(**sizes))


FAULTS: dict[str, FaultRow] = {}


def fault(
    fault_id: str, *, title: str, expected: str, ci: bool = False
) -> Callable[[Scenario], Scenario]:
    """Declare a fault row, as the contract suite declares its cases."""

    def register(fn: Scenario) -> Scenario:
        if fault_id in FAULTS:
            raise ValueError(f"two fault rows named {fault_id!r}")
        FAULTS[fault_id] = FaultRow(fault_id, title, expected, ci, fn)
        return fn

    return register


def _users(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def _delivery(
    row: Row,
    ledger: Ledger,
    counted: Tally,
    clients: list[Client],
    fault_at: float,
    *,
    may_lose_before: bool = False,
) -> None:
    """Fill lost, duplicates and latency. `may_lose_before`: a loss of what was acknowledged
    before the fault is reported but is not a failure (the fault took the only copy)."""
    row.lost, row.duplicates = counted.lost, counted.duplicates
    gaps = missing(ledger, [c.receipts for c in clients])
    before = {nid for _, nid in gaps if ledger.sent_at[nid] < fault_at}
    lost_before = sum(1 for _, nid in gaps if nid in before)
    row.delivery = DeliveryFacts(
        published=ledger.total,
        refused_and_retried=ledger.refused,
        refusals=dict(ledger.refusals),
        publishes_abandoned=ledger.abandoned,
        expected_deliveries=counted.expected,
        lost_acknowledged_before_fault=lost_before,
        out_of_order=counted.out_of_order,
        unacknowledged=counted.unacknowledged,
        delivered_from_archive=counted.from_archive,
        latency_p50_ms=_ms(counted.percentile(50)),
        latency_p99_ms=_ms(counted.percentile(99)),
        # Evidence for whoever reads the row: which streams, and when the ids were sent.
        lost_sample=[
            LostSample(name, nid, round(ledger.sent_at[nid] - fault_at, 3))
            for name, nid in gaps[:20]
        ],
    )
    if may_lose_before:
        after = counted.lost - lost_before
        row.check(after == 0, f"{after} deliveries acknowledged after the fault lost")
    else:
        row.check(counted.lost == 0, f"{counted.lost} deliveries lost")
    row.check(counted.duplicates == 0, f"{counted.duplicates} duplicates")
    row.check(counted.out_of_order == 0, f"{counted.out_of_order} out of order")
    misnamed = [(c.name, c.user, c.session.misnamed) for c in clients if c.session.misnamed]
    row.check(
        not misnamed,
        f"{len(misnamed)} of {len(clients)} streams misrouted: `connected` named another user "
        + "; ".join(f"{name} ({user}) got {named}" for name, user, named in misnamed[:3]),
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class Load:
    """Clients, a publisher and the archive the clients catch up from, running against a lab.
    `finish` goes on publishing for a while, stops, waits until everything acknowledged is
    delivered (or the drain timeout), stops the clients and tallies."""

    def __init__(
        self, fleet: Fleet, publisher: Publisher, archive: Archive, users: list[str], rate: float
    ) -> None:
        self.fleet = fleet
        self.publisher = publisher
        self.archive = archive
        self.ledger = publisher.ledger
        self.rate = rate
        self.stop = asyncio.Event()
        self._job = asyncio.create_task(publisher.run(users, rate, self.stop, limit=1_000_000))

    @classmethod
    async def start(
        cls,
        clients: list[Client],
        archive: Archive,
        bases: list[str],
        admin: str,
        users: list[str],
        scale: Scale,
        driver_cmd: str | None = None,
    ) -> Load:
        """Connect every client, then publish until `scale.settle` seconds' worth went out."""
        fleet = Fleet(clients)
        try:
            await fleet.start(timeout=120)
        except BaseException:
            await fleet.close()
            await archive.aclose()
            raise
        publisher = Publisher(bases, admin, Ledger(), driver_cmd)
        load = cls(fleet, publisher, archive, users, scale.publish_rate)
        try:
            await load.publisher.reached(int(scale.publish_rate * scale.settle))
        except BaseException:
            await load.abort()
            raise
        return load

    async def abort(self) -> None:
        """Stop publishing and close everything at once: the row has failed already."""
        self.stop.set()
        self._job.cancel()
        with contextlib.suppress(BaseException):
            await self._job
        await self.fleet.close()
        await self.publisher.aclose()
        await self.archive.aclose()

    async def finish(self, scale: Scale, keep_publishing: bool = True) -> Tally:
        if keep_publishing:
            await asyncio.sleep(scale.settle)  # publishing goes on after the fault, this long
        self.stop.set()
        await self._job
        await delivered(self.ledger, self.fleet.clients, scale.drain)
        await self.fleet.close()
        await self.publisher.aclose()
        await self.archive.aclose()
        return tally(self.ledger, self.fleet.receipts)


async def under_load(
    target: Target, tokens: TokenSource, scale: Scale, prefix: str
) -> tuple[Load, list[Client]]:
    """A stream per user on the target and a publisher through its driver, all connected."""
    admin = tokens.mint("faults-admin", admin=True)
    users = [f"{prefix}-{time.time_ns()}-{i}" for i in range(scale.clients)]
    archive = Archive(target.base, admin)
    clients: list[Client] = [
        WsClient(f"ws-{i}", u, target.base, tokens.mint(u), archive, token_in=target.token_in)
        for i, u in enumerate(users)
    ]
    load = await Load.start(clients, archive, [target.base], admin, users, scale, target.driver_cmd)
    return load, clients


def _ws_clients(
    lab: Lab, users: list[str], base: str, archive: Archive, client: type[WsClient] = WsClient
) -> list[Client]:
    """One WebSocket client per user, all on `base`."""
    return [client(f"ws-{i}", u, base, lab.token(u), archive) for i, u in enumerate(users)]


# -- Redis ------------------------------------------------------------------------------------


@fault(
    "redis-restart",
    title="Redis (append-only file, fsync always) killed with SIGKILL and restarted; two "
    "instances, WebSocket and SSE clients",
    expected="WebSocket streams stay open (heartbeats go on); publishes during the outage are "
    "refused with 503 and retried (signalled, not dropped); subscriptions come back and deliver "
    "what they missed; SSE clients reconnect with Last-Event-ID; lost 0",
    ci=True,
)
async def redis_restart(lab: Lab, scale: Scale, out: Path, row: Row) -> Row:
    return await _redis_restart(lab, scale, row, persist=True)


@fault(
    "redis-restart-empty",
    title="Redis without persistence killed with SIGKILL and restarted empty; two instances, "
    "WebSocket and SSE clients",
    expected="as above, except that what lived only in Redis may go with it: a notification "
    "acknowledged just before the kill whose PUBLISH had not left Redis; nothing acknowledged "
    "after the kill is lost; ids move on and are never given twice",
)
async def redis_restart_empty(lab: Lab, scale: Scale, out: Path, row: Row) -> Row:
    return await _redis_restart(lab, scale, row, persist=False)


@dataclass
class RedisRestartFacts(Facts):
    streams: int
    outage_s: float
    refused_during_outage: int
    ws_closed: int
    ws_min_heartbeats_during_outage: int
    sse_reconnected: int
    resyncs: int
    gave_up: int
    first_notification_everywhere_s: float | None


async def _redis_restart(lab: Lab, scale: Scale, row: Row, *, persist: bool) -> Row:
    lab.start_redis(persist=persist)
    settings = lab.settings(
        WS_HEARTBEAT_INTERVAL="0.5", SSE_PUBSUB_MODE="per-connection", WS_HISTORY_SIZE="500"
    )
    a, b = lab.start_server(settings), lab.start_server(settings)
    users = _users("redis", scale.clients // 3)
    archive = Archive(a.base, lab.admin)
    clients: list[Client] = []
    for i, user in enumerate(users):
        tok = lab.token(user)
        clients += [
            WsClient(f"ws-a-{i}", user, a.base, tok, archive),
            WsClient(f"ws-b-{i}", user, b.base, tok, archive),
            SseClient(f"sse-{i}", user, (a, b)[i % 2].base, tok, archive),
        ]
    load = await Load.start(clients, archive, [a.base, b.base], lab.admin, users, scale)
    ws = [c for c in clients if isinstance(c, WsClient)]
    beats = [c.session.heartbeats for c in ws]
    refused = load.ledger.refused
    killed = time.time()
    await asyncio.to_thread(lab.kill_redis)
    await asyncio.sleep(3.0)  # the outage itself: three seconds without Redis
    beats_during = [c.session.heartbeats - n for c, n in zip(ws, beats, strict=True)]
    refused_during = load.ledger.refused - refused
    await asyncio.to_thread(lambda: lab.start_redis(persist=persist))
    up = time.time()
    resubscribed = await _subscriptions_back(lab, 2, 60)
    await load.publisher.reached(load.ledger.total + int(scale.publish_rate))
    counted = await load.finish(scale)
    _delivery(row, load.ledger, counted, clients, killed, may_lose_before=not persist)
    after = [
        nid
        for ids in load.ledger.published.values()
        for nid in ids
        if load.ledger.sent_at[nid] >= up
    ]
    row.recovery_s = None if resubscribed is None else round(resubscribed - up, 3)
    ws_closed = sum(len(c.life.closes) for c in ws)
    sse = [c for c in clients if isinstance(c, SseClient)]
    sse_reopened = sum(1 for c in sse if len(c.life.opens) > 1)
    resyncs = sum(c.session.resyncs for c in clients)
    row.facts = RedisRestartFacts(
        streams=len(clients),
        outage_s=round(up - killed, 2),
        refused_during_outage=refused_during,
        ws_closed=ws_closed,
        ws_min_heartbeats_during_outage=min(beats_during),
        sse_reconnected=sse_reopened,
        resyncs=resyncs,
        gave_up=len(load.fleet.gave_up()),
        first_notification_everywhere_s=_first_everywhere(load, after, up),
    )
    row.check(ws_closed == 0, f"{ws_closed} WebSocket streams closed during the outage")
    row.check(min(beats_during) > 0, "a WebSocket stream got no heartbeat during the outage")
    row.check(refused_during > 0, "no publish was refused during the outage: was Redis down?")
    row.check(sse_reopened == len(sse), f"{len(sse) - sse_reopened} SSE clients never reconnected")
    row.check(not load.fleet.gave_up(), f"{len(load.fleet.gave_up())} clients gave up")
    return row.finish(
        f"{len(ws)} WebSocket streams on 2 instances: 0 closed, at least {min(beats_during)} "
        f"heartbeats each during the {up - killed:.1f} s outage; {refused_during} publishes "
        f"refused (503) and retried; {sse_reopened}/{len(sse)} SSE clients reconnected with "
        f"Last-Event-ID ({resyncs} got `resync` and fetched the archive); both subscriptions "
        f"back {row.recovery_s} s after Redis; "
        f"{load.ledger.total} published, {counted.delivered} of {counted.expected} deliveries made"
    )


async def _subscriptions_back(lab: Lab, servers: int, timeout: float) -> float | None:
    """When (wall clock) every server's bus subscription was back in CLIENT LIST, or None."""
    assert lab.redis is not None
    admin = redis.Redis.from_url(lab.redis.url)

    async def back() -> bool:
        try:
            subs = admin.client_list(_type="pubsub")
        except redis.RedisError:
            return False
        return sum(1 for c in subs if c.get("name", "").startswith(BUS_CLIENT)) >= servers

    try:
        await until_true(back, timeout, "the servers' subscriptions", poll=0.02)
    except TimeoutError:
        return None
    finally:
        admin.close()
    return time.time()


def _first_everywhere(load: Load, ids: list[str], since: float) -> float | None:
    """Seconds from `since` until the first of `ids` had reached every stream of its user."""
    best: float | None = None
    for nid in ids:
        user = load.ledger.owner[nid]
        arrivals = [c.receipts.arrived.get(nid) for c in load.fleet.clients if c.user == user]
        if arrivals and all(a is not None for a in arrivals):
            done = max(a for a in arrivals if a is not None) - since
            best = done if best is None else min(best, done)
    return None if best is None else round(best, 3)


@dataclass
class PubsubFacts(Facts):
    streams: int
    subscriptions_killed: int


@fault(
    "redis-pubsub-killed",
    title="Redis kills the servers' PubSub connections (CLIENT KILL TYPE pubsub)",
    expected="each server notices, resubscribes and delivers what was published meanwhile; lost 0",
)
async def pubsub_killed(lab: Lab, scale: Scale, out: Path, row: Row) -> Row:
    lab.start_redis()
    settings = lab.settings(WS_HEARTBEAT_INTERVAL="5")
    a, b = lab.start_server(settings), lab.start_server(settings)
    users = _users("pubsub", scale.clients // 2)
    archive = Archive(a.base, lab.admin)
    clients: list[Client] = []
    for i, user in enumerate(users):
        tok = lab.token(user)
        clients += [
            WsClient(f"ws-a-{i}", user, a.base, tok, archive),
            WsClient(f"ws-b-{i}", user, b.base, tok, archive),
        ]
    load = await Load.start(clients, archive, [a.base, b.base], lab.admin, users, scale)
    assert lab.redis is not None
    admin = redis.Redis.from_url(lab.redis.url)
    try:
        before = len(admin.client_list(_type="pubsub"))
        killed_wall = time.time()
        killed = int(admin.client_kill_filter(_type="pubsub"))
    finally:
        admin.close()
    resubscribed = await _subscriptions_back(lab, 2, 30)
    back = None if resubscribed is None else resubscribed - killed_wall
    counted = await load.finish(scale)
    _delivery(row, load.ledger, counted, clients, killed_wall)
    row.recovery_s = None if back is None else round(back, 3)
    row.facts = PubsubFacts(streams=len(clients), subscriptions_killed=killed)
    row.check(killed == before == 2, f"killed {killed} of {before} subscriptions, expected 2")
    row.check(back is not None, "the subscriptions did not come back within 30 s")
    return row.finish(
        f"{killed} subscriptions killed; both back after {row.recovery_s} s; "
        f"{load.ledger.total} published, {counted.delivered} of {counted.expected} "
        f"deliveries made to {len(clients)} streams on 2 instances"
    )


# -- the server -------------------------------------------------------------------------------


@dataclass
class RestartFacts(Facts):
    streams: int
    exit_s: float
    restart_ready_s: float
    all_back_s: float
    close_codes: dict[str, int]
    reconnected: int
    reconnect_p10_s: float | None
    reconnect_p50_s: float | None
    reconnect_p90_s: float | None
    reconnect_stdev_s: float | None
    attempts: int
    attempt_p10_s: float | None
    attempt_p50_s: float | None
    attempt_p90_s: float | None
    busiest_100ms_share_of_attempts: float | None
    attempt_late_p50_ms: float | None
    attempt_late_p99_ms: float | None
    failed_attempts: int
    gave_up: int
    resyncs: int
    new_pid: int


async def _restart_under_load(
    lab: Lab,
    scale: Scale,
    out: Path,
    row: Row,
    sig: int,
    clients_n: int,
    client: type[WsClient] = WsClient,
) -> tuple[Load, RestartFacts]:
    lab.start_redis()
    settings = lab.settings(WS_HEARTBEAT_INTERVAL="5", WS_HISTORY_SIZE="100")
    server = lab.start_server(settings)
    # Each stream holds two nginx connections (client and upstream).
    room = max(4096, 2 * clients_n + 1024)
    # The clients all come from one loopback address and come back at once after the kill:
    # the per-address limits (for real users on their own addresses) are off here.
    proxy = lab.start_nginx(
        [server],
        worker_connections=room,
        worker_rlimit_nofile=room + 1024,
        conns_per_address=None,
        handshakes_per_second=None,
    )
    users = _users(f"restart-{sig}", clients_n)
    archive = Archive(proxy.base, lab.admin)
    clients = _ws_clients(lab, users, proxy.base, archive, client)
    load = await Load.start(clients, archive, [proxy.base], lab.admin, users, scale)
    hit = time.time()
    # In threads: the clients must keep running while the server goes down and comes back.
    exit_s = await asyncio.to_thread(lab.kill, server, sig)
    restarted: ServerHandle = await asyncio.to_thread(lab.restart, server)
    ready = time.time()
    back = await load.fleet.all_back(hit, timeout=120)
    counted = await load.finish(scale)
    _delivery(row, load.ledger, counted, clients, hit)
    row.recovery_s = round(back - hit, 3)
    first_codes: dict[str, int] = {}
    reopen: list[float] = []
    tries: list[float] = []
    late: list[float] = []
    for c in clients:
        after = [code for at, code in c.life.closes if at >= hit]
        label = str(after[0]) if after else "none"
        first_codes[label] = first_codes.get(label, 0) + 1
        again = [at for at in c.life.opens if at >= hit]
        if again:
            reopen.append(again[0] - hit)
        tries += [at - hit for at in c.life.due if at >= hit]
        late += c.life.late
    reopen.sort()
    tries.sort()
    late.sort()
    buckets: dict[int, int] = {}
    for t in tries:
        buckets[int(t * 10)] = buckets.get(int(t * 10), 0) + 1
    busiest = max(buckets.values()) if buckets else 0
    plot = plots.reconnects(out / f"{row.id}-reconnects.png", tries, reopen, ready - hit, row.title)
    row.plots.append(plot.name)
    gave_up = load.fleet.gave_up()
    facts = RestartFacts(
        streams=len(clients),
        exit_s=round(exit_s, 3),
        restart_ready_s=round(ready - hit, 3),
        all_back_s=round(back - hit, 3),
        close_codes=first_codes,
        reconnected=len(reopen),
        reconnect_p10_s=_q(reopen, 0.10),
        reconnect_p50_s=_q(reopen, 0.50),
        reconnect_p90_s=_q(reopen, 0.90),
        reconnect_stdev_s=round(statistics.pstdev(reopen), 3) if reopen else None,
        attempts=len(tries),
        attempt_p10_s=_q(tries, 0.10),
        attempt_p50_s=_q(tries, 0.50),
        attempt_p90_s=_q(tries, 0.90),
        busiest_100ms_share_of_attempts=round(busiest / len(tries), 3) if tries else None,
        attempt_late_p50_ms=_ms(_q(late, 0.5)),
        attempt_late_p99_ms=_ms(_q(late, 0.99)),
        failed_attempts=sum(c.life.failed_attempts for c in clients),
        gave_up=len(gave_up),
        resyncs=sum(c.session.resyncs for c in clients),
        new_pid=restarted.process.pid,
    )
    row.facts = facts
    row.check(len(reopen) == len(clients), f"{len(clients) - len(reopen)} clients never came back")
    row.check(not gave_up, f"{len(gave_up)} clients gave up after 5 attempts")
    row.check(
        busiest <= 0.2 * max(1, len(tries)),
        f"{busiest} of {len(tries)} connect attempts fell in one 100 ms: not spread out",
    )
    return load, facts


def _q(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


@fault(
    "server-sigkill",
    title="the server killed (SIGKILL) and restarted behind nginx, {restart_clients} streams",
    expected="clients reconnect with jittered backoff, spread out; resume with last_id from the "
    "Redis history; all back; lost 0",
    ci=True,
)
async def server_sigkill(lab: Lab, scale: Scale, out: Path, row: Row) -> Row:
    load, f = await _restart_under_load(lab, scale, out, row, signal.SIGKILL, scale.restart_clients)
    share = f.busiest_100ms_share_of_attempts or 0.0
    return row.finish(
        f"{f.streams} streams cut ({f.close_codes}); new server ready after "
        f"{f.restart_ready_s} s; {f.attempts} reconnect attempts scheduled by jittered "
        f"backoff at p10/p50/p90 {f.attempt_p10_s}/{f.attempt_p50_s}/{f.attempt_p90_s} s "
        f"after the kill (busiest 100 ms: {share:.0%}; started late by p50/p99 "
        f"{f.attempt_late_p50_ms}/{f.attempt_late_p99_ms} ms, the client process's own delay), "
        f"{f.failed_attempts} failed; reconnected at p10/p50/p90 "
        f"{f.reconnect_p10_s}/{f.reconnect_p50_s}/{f.reconnect_p90_s} s; "
        f"all back after {f.all_back_s} s; {load.ledger.total} published, "
        f"{load.ledger.refused} refused and retried"
    )


@fault(
    "server-sigterm",
    title="SIGTERM under load behind nginx, {clients} streams, then a restart",
    expected="every stream gets 1001; the server exits within SHUTDOWN_TIMEOUT (10 s); clients "
    "reconnect and resume; lost 0",
)
async def server_sigterm(lab: Lab, scale: Scale, out: Path, row: Row) -> Row:
    load, f = await _restart_under_load(lab, scale, out, row, signal.SIGTERM, scale.clients)
    codes = f.close_codes
    row.check(
        codes.get(str(int(CloseCode.GOING_AWAY)), 0) == f.streams,
        f"close codes after SIGTERM: {codes}, not 1001 for all",
    )
    row.check(f.exit_s <= 10.0, f"the server took {f.exit_s} s to exit")
    return row.finish(
        f"{f.streams} streams, close codes {codes}; the server exited {f.exit_s} s after "
        f"SIGTERM; all back {f.all_back_s} s after it; {load.ledger.total} published"
    )


# -- nginx ------------------------------------------------------------------------------------


@dataclass
class ReloadFacts(Facts):
    streams: int
    nginx_processes: list[int]  # per configuration generation
    closed: int


@fault(
    "nginx-reload",
    title="nginx reloaded twice (nginx -s reload) under load, {clients} streams",
    expected="existing streams stay open and keep receiving; new streams connect; lost 0",
)
async def nginx_reload(lab: Lab, scale: Scale, out: Path, row: Row) -> Row:
    server = lab.start_server(lab.settings(WS_HEARTBEAT_INTERVAL="5"))
    # {clients} streams connect from one loopback address: no per-address limits here.
    proxy = lab.start_nginx([server], conns_per_address=None, handshakes_per_second=None)
    users = _users("reload", scale.clients)
    archive = Archive(server.base, lab.admin)
    clients = _ws_clients(lab, users, proxy.base, archive)
    load = await Load.start(clients, archive, [server.base], lab.admin, users, scale)
    generations = [lab.nginx_workers(proxy)]
    reloaded = time.time()
    for _ in range(2):
        old = set(generations[-1])
        await asyncio.to_thread(lab.reload_nginx, proxy)

        async def renewed(old: set[int] = old) -> bool:
            return bool(set(lab.nginx_workers(proxy)) - old)

        await until_true(renewed, 30, "nginx workers of the new configuration")
        generations.append(lab.nginx_workers(proxy))
        await load.publisher.reached(load.ledger.total + int(scale.publish_rate))
    fresh = await StreamClient.open(proxy.base, WS_NOTIFICATIONS_PATH, lab.token("after-reload"))
    hello = await fresh.expect("connected", timeout=10)
    await fresh.close()
    counted = await load.finish(scale)
    _delivery(row, load.ledger, counted, clients, reloaded)
    closed = sum(len(c.life.closes) for c in clients)
    row.facts = ReloadFacts(len(clients), [len(g) for g in generations], closed)
    row.check(closed == 0, f"{closed} streams closed across the reloads")
    row.check(hello.type == "connected", "a new stream after the reloads did not connect")
    return row.finish(
        f"{len(clients)} streams through 2 reloads: {closed} closed; nginx child processes per "
        f"generation {[len(g) for g in generations]} (old workers keep their streams); a new "
        f"stream connected; {load.ledger.total} published, {counted.delivered} of "
        f"{counted.expected} delivered"
    )


# -- clients that misbehave -------------------------------------------------------------------


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
    users = _users("calm", scale.clients)
    archive = Archive(server.base, lab.admin)
    clients = _ws_clients(lab, users, server.base, archive)
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
    _delivery(row, load.ledger, counted, clients, split)
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
        before_p50_ms=_ms(_q(before, 0.5)),
        before_p99_ms=_ms(_q(before, 0.99)),
        during_p50_ms=_ms(_q(during, 0.5)),
        during_p99_ms=_ms(_q(during, 0.99)),
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
    users = _users("mute", scale.half_open)

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
