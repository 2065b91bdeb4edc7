"""What was owed each stream and what each stream got, from the clients' own records: the one
delivery ledger of the load runs, the fault rows and the comparisons.

The server under test is never asked what to expect: a notification is owed to a stream when the
publisher sent it after that stream's `connected` frame and it was acknowledged (201) before the
stream ended. (A stream that connected while the publish was in flight may or may not get it: it
is neither owed nor counted against the server.) A stream that silently stops receiving is
counted at the end against everything it was owed; repeats are counted on their own, never
netted against losses.

Pure bookkeeping, no I/O.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

LOST_SAMPLE = 20  # (stream, id) pairs of lost deliveries kept as evidence
ALWAYS: tuple[float, float] = (-math.inf, math.inf)  # a stream open before and after it all


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (`q` in (0, 1]): the smallest value with at least that
    share of the values at or below it; None of nothing. Every table of this toolkit uses it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Published:
    """One acknowledged publish: its id, its user (None: a broadcast), when it was sent and
    when the acknowledgement came (wall clock)."""

    id: str
    user: str | None
    sent_at: float
    acked_at: float


@dataclass(frozen=True)
class StreamLog:
    """One stream as its client saw it (across its reconnects, where it resumes): the first
    `connected` (None: never), when it ended, and every id in arrival order (repeats
    included)."""

    name: str
    user: str
    connected_at: float | None
    ended_at: float
    ids: tuple[str, ...]
    misnamed: str | None = None  # whom its `connected` named, when not its user
    # First arrival times, for the latency from the publisher's send (the ids it has).
    arrivals: tuple[tuple[str, float], ...] = ()
    fetched: frozenset[str] = frozenset()  # ids the client took from the archive, not a stream


@dataclass(frozen=True)
class Tally:
    streams: int  # streams that got a `connected` frame
    never_connected: int
    published: int  # acknowledged publishes
    owed: int  # deliveries owed, summed over streams
    delivered: int  # of those, received at least once
    lost: int
    duplicates: int  # repeated receipts of one id on one stream
    unowed: int  # received though not owed (in flight when it connected; or never acknowledged)
    silent: int  # streams owed something that received none of it
    lost_sample: tuple[tuple[str, str], ...] = field(default=())  # (stream, id), the first 20
    per_id: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (owed, delivered)
    misrouted: int = 0  # streams whose `connected` named another user
    out_of_order: int = 0  # owed ids that arrived after one published later
    from_archive: int = 0  # deliveries made by the client's archive fetch, not by a stream
    # Milliseconds from the publisher's send to a stream's first receipt, one per delivery
    # with an arrival time, sorted.
    latencies_ms: tuple[float, ...] = ()


def owed(p: Published, s: StreamLog) -> bool:
    return (
        (p.user is None or p.user == s.user)
        and s.connected_at is not None
        and s.connected_at <= p.sent_at
        and p.acked_at <= s.ended_at
    )


Indexed = list[tuple[int, Published]]  # publishes with their place in the publish order


def _by_user(published: list[Published]) -> tuple[Indexed, dict[str, Indexed]]:
    broadcasts: Indexed = []
    personal: dict[str, Indexed] = {}
    for i, p in enumerate(published):
        if p.user is None:
            broadcasts.append((i, p))
        else:
            personal.setdefault(p.user, []).append((i, p))
    return broadcasts, personal


def _due(s: StreamLog, broadcasts: Indexed, personal: dict[str, Indexed]) -> list[str]:
    """The ids owed to `s`, in publish order (broadcasts and its user's own)."""
    mine = personal.get(s.user, [])
    return [p.id for _, p in heapq.merge(broadcasts, mine, key=lambda e: e[0]) if owed(p, s)]


def count(published: Iterable[Published], streams: Iterable[StreamLog]) -> Tally:
    """The tally; `published` in the order the publisher sent them (the order a stream owes)."""
    published = list(published)
    broadcasts, personal = _by_user(published)
    n_streams = never = total_owed = delivered = lost = duplicates = unowed = silent = 0
    misrouted = out_of_order = from_archive = 0
    sent = {p.id: p.sent_at for p in published}
    latencies: list[float] = []
    sample: list[tuple[str, str]] = []
    per_id = {p.id: [0, 0] for p in published}
    for s in streams:
        if s.connected_at is None:
            never += 1
            continue
        n_streams += 1
        misrouted += s.misnamed is not None
        due = _due(s, broadcasts, personal)
        rank = {nid: i for i, nid in enumerate(due)}
        got = Counter(s.ids)
        duplicates += sum(n - 1 for n in got.values())
        highest = -1
        for nid in dict.fromkeys(s.ids):  # each id at its first arrival
            if nid in rank:
                out_of_order += rank[nid] < highest
                highest = max(highest, rank[nid])
        arrived = rank.keys() & got.keys()
        firsts = dict(reversed(s.arrivals))
        latencies += [max(0.0, (firsts[n] - sent[n]) * 1000) for n in arrived if n in firsts]
        from_archive += len(arrived & s.fetched)
        for nid in due:
            per_id[nid][0] += 1
            per_id[nid][1] += nid in arrived
        total_owed += len(due)
        delivered += len(arrived)
        missing = [nid for nid in due if nid not in arrived]
        lost += len(missing)
        sample += [(s.name, nid) for nid in missing[: max(0, LOST_SAMPLE - len(sample))]]
        unowed += len(got.keys() - rank.keys())
        silent += bool(due) and not arrived
    return Tally(
        n_streams,
        never,
        len(published),
        total_owed,
        delivered,
        lost,
        duplicates,
        unowed,
        silent,
        tuple(sample),
        {nid: (o, d) for nid, (o, d) in per_id.items()},
        misrouted,
        out_of_order,
        from_archive,
        tuple(sorted(latencies)),
    )


def gaps(published: Iterable[Published], streams: Iterable[StreamLog]) -> list[tuple[str, str]]:
    """(stream, id) of every delivery owed and never made, for a row's evidence."""
    broadcasts, personal = _by_user(list(published))
    out = []
    for s in streams:
        if s.connected_at is not None:
            got = set(s.ids)
            out += [(s.name, nid) for nid in _due(s, broadcasts, personal) if nid not in got]
    return out
