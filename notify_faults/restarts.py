"""Fault rows that take a process away: Redis restarted (with and without its data), its Pub/Sub
clients killed, the server killed or stopped, nginx reloaded."""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from notify_client.client import StreamClient
from notify_client.waiting import until_true
from notify_contract.codes import CloseCode
from notify_contract.protocol import WS_NOTIFICATIONS_PATH
from notify_faults import plots
from notify_faults.fleet import Archive, Client, SseClient, WsClient
from notify_faults.lab import Lab
from notify_faults.load import Load, delivery, ms, quantile, user_names, ws_clients
from notify_faults.registry import Scale, fault
from notify_faults.table import Facts, Row
from notify_stack.stack import BUS_CLIENT, ServerHandle

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


def _on_both(
    lab: Lab,
    servers: tuple[ServerHandle, ServerHandle],
    users: list[str],
    archive: Archive,
    *,
    sse: bool,
) -> list[Client]:
    """Each user's stream on both instances (a publish must reach the one that did not take
    it), and with `sse` an SSE stream on one of them, in turn."""
    a, b = servers
    clients: list[Client] = []
    for i, user in enumerate(users):
        tok = lab.token(user)
        clients += [
            WsClient(f"ws-a-{i}", user, a.base, tok, archive),
            WsClient(f"ws-b-{i}", user, b.base, tok, archive),
        ]
        if sse:
            clients.append(SseClient(f"sse-{i}", user, servers[i % 2].base, tok, archive))
    return clients


async def _redis_restart(lab: Lab, scale: Scale, row: Row, *, persist: bool) -> Row:
    lab.start_redis(persist=persist)
    settings = lab.settings(
        WS_HEARTBEAT_INTERVAL="0.5", SSE_PUBSUB_MODE="per-connection", WS_HISTORY_SIZE="500"
    )
    a, b = lab.start_server(settings), lab.start_server(settings)
    users = user_names("redis", scale.clients // 3)
    archive = Archive(a.base, lab.admin)
    clients = _on_both(lab, (a, b), users, archive, sse=True)
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
    delivery(row, load.ledger, counted, clients, killed, may_lose_before=not persist)
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
        f"{load.ledger.total} published, {counted.delivered} of {counted.owed} deliveries made"
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
    users = user_names("pubsub", scale.clients // 2)
    archive = Archive(a.base, lab.admin)
    clients = _on_both(lab, (a, b), users, archive, sse=False)
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
    delivery(row, load.ledger, counted, clients, killed_wall)
    row.recovery_s = None if back is None else round(back, 3)
    row.facts = PubsubFacts(streams=len(clients), subscriptions_killed=killed)
    row.check(killed == before == 2, f"killed {killed} of {before} subscriptions, expected 2")
    row.check(back is not None, "the subscriptions did not come back within 30 s")
    return row.finish(
        f"{killed} subscriptions killed; both back after {row.recovery_s} s; "
        f"{load.ledger.total} published, {counted.delivered} of {counted.owed} "
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


@dataclass(frozen=True)
class Reconnects:
    """What the clients did after the fault at `hit`: first close codes, when each opened
    again, every attempt and how late each attempt came against its due time (sorted)."""

    first_codes: dict[str, int]
    reopen: list[float]
    tries: list[float]
    late: list[float]

    @classmethod
    def of(cls, clients: list[Client], hit: float) -> Reconnects:
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
        return cls(first_codes, sorted(reopen), sorted(tries), sorted(late))

    @property
    def busiest_100ms(self) -> int:
        """Attempts in the busiest 100 ms: a herd shows as one crowded slot."""
        buckets: dict[int, int] = {}
        for t in self.tries:
            buckets[int(t * 10)] = buckets.get(int(t * 10), 0) + 1
        return max(buckets.values()) if buckets else 0


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
    users = user_names(f"restart-{sig}", clients_n)
    archive = Archive(proxy.base, lab.admin)
    clients = ws_clients(lab, users, proxy.base, archive, client)
    load = await Load.start(clients, archive, [proxy.base], lab.admin, users, scale)
    hit = time.time()
    # In threads: the clients must keep running while the server goes down and comes back.
    exit_s = await asyncio.to_thread(lab.kill, server, sig)
    restarted: ServerHandle = await asyncio.to_thread(lab.restart, server)
    ready = time.time()
    back = await load.fleet.all_back(hit, timeout=120)
    counted = await load.finish(scale)
    delivery(row, load.ledger, counted, clients, hit)
    row.recovery_s = round(back - hit, 3)
    seen = Reconnects.of(clients, hit)
    reopen, tries, late, busiest = seen.reopen, seen.tries, seen.late, seen.busiest_100ms
    plot = plots.reconnects(out / f"{row.id}-reconnects.png", tries, reopen, ready - hit, row.title)
    row.plots.append(plot.name)
    gave_up = load.fleet.gave_up()
    facts = RestartFacts(
        streams=len(clients),
        exit_s=round(exit_s, 3),
        restart_ready_s=round(ready - hit, 3),
        all_back_s=round(back - hit, 3),
        close_codes=seen.first_codes,
        reconnected=len(reopen),
        reconnect_p10_s=quantile(reopen, 0.10),
        reconnect_p50_s=quantile(reopen, 0.50),
        reconnect_p90_s=quantile(reopen, 0.90),
        reconnect_stdev_s=round(statistics.pstdev(reopen), 3) if reopen else None,
        attempts=len(tries),
        attempt_p10_s=quantile(tries, 0.10),
        attempt_p50_s=quantile(tries, 0.50),
        attempt_p90_s=quantile(tries, 0.90),
        busiest_100ms_share_of_attempts=round(busiest / len(tries), 3) if tries else None,
        attempt_late_p50_ms=ms(quantile(late, 0.5)),
        attempt_late_p99_ms=ms(quantile(late, 0.99)),
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
    users = user_names("reload", scale.clients)
    archive = Archive(server.base, lab.admin)
    clients = ws_clients(lab, users, proxy.base, archive)
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
    delivery(row, load.ledger, counted, clients, reloaded)
    closed = sum(len(c.life.closes) for c in clients)
    row.facts = ReloadFacts(len(clients), [len(g) for g in generations], closed)
    row.check(closed == 0, f"{closed} streams closed across the reloads")
    row.check(hello.type == "connected", "a new stream after the reloads did not connect")
    return row.finish(
        f"{len(clients)} streams through 2 reloads: {closed} closed; nginx child processes per "
        f"generation {[len(g) for g in generations]} (old workers keep their streams); a new "
        f"stream connected; {load.ledger.total} published, {counted.delivered} of "
        f"{counted.owed} delivered"
    )


# -- clients that misbehave -------------------------------------------------------------------
