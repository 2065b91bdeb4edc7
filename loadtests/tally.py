"""What a load run owed each stream and what each stream got, from the clients' own records.

The server under test is never asked what to expect: a notification is owed to a stream when the
publisher sent it after that stream's `connected` frame and it was acknowledged (201) before the
generator stopped the stream. (A stream that connected while the publish was in flight may or may
not get it: it is neither owed nor counted against the server.) A stream that silently stops
receiving is counted at the end against everything it was owed; repeats are counted on their
own, never netted against losses.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


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
    """One stream as its client saw it: the first `connected` (None: never), when the
    generator stopped it, and every notification id in arrival order (repeats included)."""

    name: str
    user: str
    connected_at: float | None
    ended_at: float
    ids: tuple[str, ...]
    misnamed: str | None = None  # whom its `connected` named, when not its user
    arrivals: tuple[tuple[str, float], ...] = ()  # untimed notifications: id, arrival time


@dataclass(frozen=True)
class Tally:
    streams: int  # streams that got a `connected` frame
    never_connected: int
    published: int  # acknowledged publishes
    owed: int  # deliveries owed, summed over streams
    delivered: int  # of those, received at least once
    lost: int
    duplicates: int  # repeated receipts of one id on one stream
    unowed: int  # received though not owed (connected while it was in flight)
    silent: int  # streams owed something that received none of it
    lost_sample: tuple[tuple[str, str], ...] = field(default=())  # (stream, id), the first 20
    per_id: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (owed, delivered)
    misrouted: int = 0  # streams whose `connected` named another user
    # Milliseconds from the publisher sending each untimed notification to a stream getting it.
    from_publish_ms: tuple[float, ...] = ()


def owed(p: Published, s: StreamLog) -> bool:
    return (
        (p.user is None or p.user == s.user)
        and s.connected_at is not None
        and s.connected_at <= p.sent_at
        and p.acked_at <= s.ended_at
    )


def count(published: Iterable[Published], streams: Iterable[StreamLog]) -> Tally:
    published = list(published)
    broadcasts = [p for p in published if p.user is None]
    personal: dict[str, list[Published]] = {}
    for p in published:
        if p.user is not None:
            personal.setdefault(p.user, []).append(p)
    n_streams = never = total_owed = delivered = lost = duplicates = unowed = silent = 0
    misrouted = 0
    sent = {p.id: p.sent_at for p in published}
    from_publish: list[float] = []
    sample: list[tuple[str, str]] = []
    per_id = {p.id: [0, 0] for p in published}
    for s in streams:
        if s.connected_at is None:
            never += 1
            continue
        n_streams += 1
        misrouted += s.misnamed is not None
        firsts = {nid: at for nid, at in reversed(s.arrivals)}  # each id's first arrival
        from_publish += [(at - sent[nid]) * 1000 for nid, at in firsts.items() if nid in sent]
        got = Counter(s.ids)
        duplicates += sum(n - 1 for n in got.values())
        due = {p.id for p in (*broadcasts, *personal.get(s.user, ())) if owed(p, s)}
        arrived = due & got.keys()
        for nid in due:
            per_id[nid][0] += 1
            per_id[nid][1] += nid in arrived
        total_owed += len(due)
        delivered += len(arrived)
        missing = sorted(due - arrived)
        lost += len(missing)
        sample += [(s.name, nid) for nid in missing[: max(0, 20 - len(sample))]]
        unowed += len(got.keys() - due)
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
        tuple(from_publish),
    )
