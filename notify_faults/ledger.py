"""What was published and what each stream received: lost, duplicates, order, latency.

Pure bookkeeping, no I/O: the fleet and the publisher write into it, a row reads the tally.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Receipts:
    """One logical client's stream (across its reconnects): ids in arrival order."""

    name: str
    user: str
    ids: list[str] = field(default_factory=list)
    arrived: dict[str, float] = field(default_factory=dict)  # first arrival, wall clock
    fetched: set[str] = field(default_factory=set)  # ids from the archive after a `resync`
    overlap: int = 0  # live arrivals of an id the archive already gave: the client skips them

    def got(self, nid: str, at: float, *, archive: bool = False) -> None:
        if archive:
            if nid in self.arrived:
                return
            self.fetched.add(nid)
        elif nid in self.fetched:
            self.overlap += 1
            return
        self.ids.append(nid)
        self.arrived.setdefault(nid, at)


@dataclass
class Ledger:
    """Publishes the server acknowledged (201), in order per user, and when they were sent."""

    published: dict[str, list[str]] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)
    refused: int = 0  # publishes answered with an error: signalled to the publisher, retried
    refusals: dict[str, int] = field(default_factory=dict)  # how: "HTTP 503", "ReadTimeout"
    abandoned: int = 0  # publishes still refused when the publisher stopped retrying
    owner: dict[str, str] = field(default_factory=dict)  # id -> the user it was published for

    def refusal(self, how: str) -> None:
        self.refused += 1
        self.refusals[how] = self.refusals.get(how, 0) + 1

    def acknowledged(self, user: str, nid: str, sent_at: float) -> None:
        self.published.setdefault(user, []).append(nid)
        self.sent_at[nid] = sent_at
        self.owner[nid] = user

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.published.values())


@dataclass(frozen=True)
class Tally:
    expected: int  # deliveries owed: each acknowledged publish times its user's streams
    delivered: int  # distinct owed ids that arrived
    lost: int
    duplicates: int  # arrivals of an id the stream already had
    out_of_order: int  # arrivals earlier in publish order than one already seen
    unacknowledged: int  # ids that arrived but whose publish was never acknowledged
    from_archive: int  # deliveries made by the client's archive fetch, not by a stream
    latencies: tuple[float, ...]  # seconds from send to first arrival, one per delivery

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        if len(self.latencies) == 1:
            return self.latencies[0]
        return statistics.quantiles(self.latencies, n=1000, method="inclusive")[round(q * 10) - 1]


def tally(ledger: Ledger, streams: Iterable[Receipts]) -> Tally:
    """Every stream owes every id published for its user (streams open before publishing)."""
    expected = delivered = duplicates = out_of_order = unacknowledged = from_archive = 0
    latencies: list[float] = []
    for stream in streams:
        owed = ledger.published.get(stream.user, [])
        rank = {nid: i for i, nid in enumerate(owed)}
        expected += len(owed)
        seen: set[str] = set()
        highest = -1
        for nid in stream.ids:
            if nid in seen:
                duplicates += 1
                continue
            seen.add(nid)
            if nid not in rank:
                unacknowledged += 1
                continue
            delivered += 1
            from_archive += nid in stream.fetched
            if rank[nid] < highest:
                out_of_order += 1
            highest = max(highest, rank[nid])
            sent = ledger.sent_at.get(nid)
            if sent is not None:
                latencies.append(max(0.0, stream.arrived[nid] - sent))
    return Tally(
        expected,
        delivered,
        expected - delivered,
        duplicates,
        out_of_order,
        unacknowledged,
        from_archive,
        tuple(sorted(latencies)),
    )


def missing(ledger: Ledger, streams: Iterable[Receipts]) -> list[tuple[str, str]]:
    """(stream name, id) of every delivery owed and never made, for a row's evidence."""
    return [
        (stream.name, nid)
        for stream in streams
        for nid in ledger.published.get(stream.user, [])
        if nid not in stream.arrived
    ]
