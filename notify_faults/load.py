"""The load every fault row runs under: clients, a publisher and the archive, and the scoring of
what they saw into a row (lost, duplicates, misrouted, latency)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from notify_client.ledger import Tally, percentile
from notify_client.target import Target, TokenSource
from notify_faults.fleet import Archive, Client, Fleet, RetryingPublisher, WsClient, delivered
from notify_faults.lab import Lab
from notify_faults.ledger import Ledger, missing, tally
from notify_faults.registry import Scale
from notify_faults.table import DeliveryFacts, LostSample, Row


def user_names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def delivery(
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
        expected_deliveries=counted.owed,
        lost_acknowledged_before_fault=lost_before,
        out_of_order=counted.out_of_order,
        unacknowledged=counted.unowed,
        delivered_from_archive=counted.from_archive,
        latency_p50_ms=latency_ms(counted, 0.50),
        latency_p99_ms=latency_ms(counted, 0.99),
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


def latency_ms(counted: Tally, q: float) -> float | None:
    value = percentile(counted.latencies_ms, q)
    return None if value is None else round(value, 1)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class Load:
    """Clients, a publisher and the archive the clients catch up from, running against a lab.
    `finish` goes on publishing for a while, stops, waits until everything acknowledged is
    delivered (or the drain timeout), stops the clients and tallies."""

    def __init__(
        self,
        fleet: Fleet,
        publisher: RetryingPublisher,
        archive: Archive,
        users: list[str],
        rate: float,
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
        publisher = RetryingPublisher(bases, admin, Ledger(), driver_cmd)
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


def ws_clients(
    lab: Lab, users: list[str], base: str, archive: Archive, client: type[WsClient] = WsClient
) -> list[Client]:
    """One WebSocket client per user, all on `base`."""
    return [client(f"ws-{i}", u, base, lab.token(u), archive) for i, u in enumerate(users)]


def quantile(values: list[float], q: float) -> float | None:
    """The shared nearest-rank percentile (`q` in (0, 1]), to the millisecond."""
    value = percentile(values, q)
    return None if value is None else round(value, 3)
