"""Delivery latency as the generator measures it: each locust user keeps histograms for its
streams (all notifications, and each broadcast) and writes them once when it stops, one line of
`latency-<pid>.jsonl`; the run merges every line. No locust event per notification: firing two
of them per received notification was a fifth of the generator's CPU. Heartbeats are counted
here too, not fired: one event each was a tenth of what the notifications cost."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.run_files import LATENCY_GLOB
from notify_client.histogram import Histogram


@dataclass
class Latencies:
    """What one user's streams measured: every timed notification, each broadcast (`seq`), and
    how many notifications carried no send time (their latency comes from the publish log),
    and how many heartbeats came."""

    every: Histogram = field(default_factory=Histogram)
    per_broadcast: dict[int, Histogram] = field(default_factory=dict)
    untimed: int = 0
    heartbeats: int = 0

    def add(self, ms: float, seq: int | None) -> None:
        self.every.add(ms)
        if seq is not None:
            self.per_broadcast.setdefault(seq, Histogram()).add(ms)

    def merge(self, other: Latencies) -> None:
        self.every.merge(other.every)
        for seq, histogram in other.per_broadcast.items():
            self.per_broadcast.setdefault(seq, Histogram()).merge(histogram)
        self.untimed += other.untimed
        self.heartbeats += other.heartbeats

    def to_dict(self) -> dict[str, Any]:
        return {
            "every": self.every.to_dict(),
            "per_broadcast": {str(k): h.to_dict() for k, h in self.per_broadcast.items()},
            "untimed": self.untimed,
            "heartbeats": self.heartbeats,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Latencies:
        return cls(
            Histogram.from_dict(data.get("every", {})),
            {int(k): Histogram.from_dict(h) for k, h in data.get("per_broadcast", {}).items()},
            int(data.get("untimed", 0)),
            int(data.get("heartbeats", 0)),
        )

    @classmethod
    def merged(cls, parts: Iterable[Latencies]) -> Latencies:
        out = cls()
        for part in parts:
            out.merge(part)
        return out


def write(path: Path, latencies: Latencies) -> None:
    """Append one user's histograms to its process's file."""
    with path.open("a") as f:
        f.write(json.dumps(latencies.to_dict()) + "\n")


def read(run_dir: Path) -> Latencies | None:
    """Every user's histograms of the run, merged; None when no user wrote any (a worker
    killed before its users stopped): not measured, never 0 received."""
    lines = [
        json.loads(line)
        for path in sorted(run_dir.glob(LATENCY_GLOB))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    if not lines:
        return None
    return Latencies.merged(Latencies.from_dict(line) for line in lines)
