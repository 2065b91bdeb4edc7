"""What the fault rows' publisher and clients record as they go, handed to the one delivery
ledger (`notify_client.ledger`) to count: every stream is open before the first publish and
resumes across its reconnects, so each owes every id acknowledged for its user.

Pure bookkeeping, no I/O: the fleet and the publisher write into it, a row reads the tally.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from notify_client.ledger import ALWAYS, Published, StreamLog, Tally, count, gaps


@dataclass
class Receipts:
    """One logical client's stream (across its reconnects): ids in arrival order."""

    name: str
    user: str
    ids: list[str] = field(default_factory=list)
    arrived: dict[str, float] = field(default_factory=dict)  # first arrival, wall clock
    fetched: set[str] = field(default_factory=set)  # ids from the archive after a `resync`
    overlap: int = 0  # live arrivals of an id the archive already gave: the client skips them

    def log(self) -> StreamLog:
        """The stream for the ledger: open throughout, every first arrival timed."""
        opened, ended = ALWAYS
        arrivals = tuple(self.arrived.items())
        return StreamLog(
            self.name,
            self.user,
            opened,
            ended,
            tuple(self.ids),
            None,
            arrivals,
            frozenset(self.fetched),
        )

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

    def entries(self) -> list[Published]:
        """Every acknowledged publish, in each user's acknowledgement order."""
        return [
            Published(nid, user, self.sent_at[nid], self.sent_at[nid])
            for user, ids in self.published.items()
            for nid in ids
        ]


def tally(ledger: Ledger, streams: Iterable[Receipts]) -> Tally:
    """The shared ledger's count of what the clients received."""
    return count(ledger.entries(), [s.log() for s in streams])


def missing(ledger: Ledger, streams: Iterable[Receipts]) -> list[tuple[str, str]]:
    """(stream name, id) of every delivery owed and never made, for a row's evidence."""
    return gaps(ledger.entries(), [s.log() for s in streams])
