"""Fault rows across simulated hosts: a server host's link down and back, the Redis host's link
down and back. The stack runs on network namespaces (`notify_stack.hosts`); the clients and the
publisher go through nginx on its own host, as users would.

A link taken down drops packets without a reset: nothing tells the server or nginx that the
peer is gone. So the clients here use the contract's watchdog (rule 7.6, no frame for
WATCHDOG_BEATS heartbeats) instead of the fault table's 60 s of silence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from notify_client.waiting import until_true
from notify_contract.reconnect import WATCHDOG_BEATS
from notify_contract.tokens import Minter
from notify_faults.fleet import Archive, Client, WsClient
from notify_faults.load import Load, delivery, user_names
from notify_faults.registry import Scale
from notify_faults.table import Facts, Row
from notify_stack.hosts import Fabric, Host

REDIS_OUTAGE_MAX_S = 30.0  # the outage lasts until a publish is refused, at most this


@dataclass(frozen=True)
class Across:
    """The stack on simulated hosts, as the rows need it."""

    fabric: Fabric
    entry: str  # nginx, on its host
    servers: tuple[Host, ...]
    redis: Host
    tokens: Minter
    heartbeat: float  # the servers' WS_HEARTBEAT_INTERVAL


@dataclass(frozen=True)
class CrossRow:
    id: str
    title: str
    expected: str
    run: Callable[[Across, Scale, Row], Awaitable[Row]]

    def row(self) -> Row:
        return Row(self.id, "fault", self.title, self.expected)


@dataclass
class LinkFacts(Facts):
    streams: int
    host: str
    outage_s: float
    streams_moved: int
    resyncs: int
    gave_up: int
    ws_closed: int


def _clients(across: Across, users: list[str], archive: Archive) -> list[Client]:
    clients: list[Client] = []
    for i, user in enumerate(users):
        client = WsClient(f"ws-{i}", user, across.entry, across.tokens.mint(user), archive)
        client.silence = WATCHDOG_BEATS * across.heartbeat
        clients.append(client)
    return clients


async def _start(across: Across, scale: Scale, prefix: str) -> tuple[Load, list[Client]]:
    admin = across.tokens.mint("faults-admin", admin=True)
    users = user_names(prefix, scale.clients)
    archive = Archive(across.entry, admin)
    clients = _clients(across, users, archive)
    return await Load.start(clients, archive, [across.entry], admin, users, scale), clients


def _facts(clients: list[Client], host: Host, outage: float, load: Load) -> LinkFacts:
    return LinkFacts(
        streams=len(clients),
        host=f"{host.name} ({host.address})",
        outage_s=round(outage, 2),
        streams_moved=sum(1 for c in clients if len(c.life.opens) > 1),
        resyncs=sum(c.session.resyncs for c in clients),
        gave_up=len(load.fleet.gave_up()),
        ws_closed=sum(len(c.life.closes) for c in clients),
    )


async def server_link_down(across: Across, scale: Scale, row: Row) -> Row:
    """The first server host drops off the network until every stream it held has moved."""
    load, clients = await _start(across, scale, "link")
    host = across.servers[0]
    down = time.time()
    await asyncio.to_thread(across.fabric.link, host, False)

    async def moved() -> bool:
        gone = [c for c in clients if c.life.closes]
        return bool(gone) and all(c.life.up.is_set() for c in clients)

    try:
        await until_true(moved, 30 * WATCHDOG_BEATS * across.heartbeat, "streams moved")
        moved_at: float | None = time.time()
    except TimeoutError:
        moved_at = None
    finally:
        await asyncio.to_thread(across.fabric.link, host, True)
    up = time.time()
    counted = await load.finish(scale)
    delivery(row, load.ledger, counted, clients, down)
    facts = _facts(clients, host, up - down, load)
    row.facts = facts
    row.recovery_s = None if moved_at is None else round(moved_at - down, 3)
    row.check(moved_at is not None, "the streams of the host that went away never all came back")
    row.check(facts.streams_moved > 0, f"no stream was on {host.name}: the fault hit nothing")
    row.check(facts.gave_up == 0, f"{facts.gave_up} clients gave up")
    return row.finish(
        f"{facts.streams_moved} of {len(clients)} streams were on {host.name}: they noticed the "
        f"silence and reconnected through nginx to the other server in {row.recovery_s} s "
        f"({facts.resyncs} fetched the archive); link back after {facts.outage_s} s; "
        f"{load.ledger.total} published, {counted.delivered} of {counted.owed} deliveries made"
    )


async def redis_link_down(across: Across, scale: Scale, row: Row) -> Row:
    """The Redis host drops off the network until the publisher sees it (a refused publish:
    its 5 s timeout) and comes back."""
    load, clients = await _start(across, scale, "redis-link")
    refused = load.ledger.refused
    down = time.time()
    await asyncio.to_thread(across.fabric.link, across.redis, False)

    async def noticed() -> bool:
        return load.ledger.refused > refused

    try:
        await until_true(noticed, REDIS_OUTAGE_MAX_S, "a publish refused")
    except TimeoutError:
        pass  # the check below says so
    finally:
        await asyncio.to_thread(across.fabric.link, across.redis, True)
    up = time.time()
    refused_during = load.ledger.refused - refused
    await load.publisher.reached(load.ledger.total + int(scale.publish_rate))
    counted = await load.finish(scale)
    delivery(row, load.ledger, counted, clients, down)
    facts = _facts(clients, across.redis, up - down, load)
    row.facts = facts
    row.check(facts.ws_closed == 0, f"{facts.ws_closed} streams closed while Redis was away")
    row.check(refused_during > 0, "no publish was refused during the outage: was the link down?")
    row.check(facts.gave_up == 0, f"{facts.gave_up} clients gave up")
    return row.finish(
        f"{len(clients)} streams stayed open through a {facts.outage_s} s outage of the Redis "
        f"host; {refused_during} publishes refused and retried; {load.ledger.total} published, "
        f"{counted.delivered} of {counted.owed} deliveries made"
    )


ROWS = (
    CrossRow(
        "server-host-link-down",
        "A server host's link taken down (`ip link set ... down`) under load through nginx, "
        "and back once its streams have moved",
        "every stream on that host notices the silence (watchdog, rule 7.6), reconnects through "
        "nginx to the other server host and resumes from its last id; lost 0",
        server_link_down,
    ),
    CrossRow(
        "redis-host-link-down",
        "The first Redis host's link (partition 0 of the bus: presence, tasks and every "
        "broadcast's id) taken down under load until a publish is refused, and back",
        "streams stay open (heartbeats go on); publishes during the outage are refused and "
        "retried; everything acknowledged is delivered once the link is back; lost 0",
        redis_link_down,
    ),
)
