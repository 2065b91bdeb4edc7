"""A latency histogram a load generator keeps per process and merges across processes (and
hosts): counts in buckets, so percentiles are taken over the merged counts, never averaged.

Buckets as locust rounds its response times: 1 ms below 100 ms, 10 ms below 1 s, 100 ms below
10 s, 1 s above; a percentile is the bucket's value, so it is off by at most that width.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


def bucket(ms: float) -> int:
    """The bucket a latency falls in (its rounded value)."""
    if ms < 100:
        return round(ms)
    if ms < 1000:
        return int(round(ms, -1))
    if ms < 10_000:
        return int(round(ms, -2))
    return int(round(ms, -3))


@dataclass
class Histogram:
    """Counts of latencies (ms) by bucket, with the exact count and maximum."""

    counts: dict[int, int] = field(default_factory=dict)
    count: int = 0
    max_ms: float | None = None

    def add(self, ms: float) -> None:
        key = bucket(ms)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.count += 1
        if self.max_ms is None or ms > self.max_ms:
            self.max_ms = ms

    def merge(self, other: Histogram) -> None:
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        self.count += other.count
        if other.max_ms is not None and (self.max_ms is None or other.max_ms > self.max_ms):
            self.max_ms = other.max_ms

    def percentile(self, q: float) -> float | None:
        """The nearest-rank percentile (`q` in (0, 1]) of the bucketed values; None if empty."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for key in sorted(self.counts):
            seen += self.counts[key]
            if seen >= rank:
                return float(key)
        return float(max(self.counts))

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": {str(k): n for k, n in self.counts.items()},
            "count": self.count,
            "max": self.max_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        counts = {int(k): int(n) for k, n in data.get("counts", {}).items()}
        return cls(counts, int(data.get("count", sum(counts.values()))), data.get("max"))

    @classmethod
    def merged(cls, parts: Iterable[Histogram]) -> Histogram:
        out = cls()
        for part in parts:
            out.merge(part)
        return out
