"""What each simulated host spent, and the plan's prediction for the same run beside it.

The orchestrator samples every host's processes itself (all namespaces share this machine's
process table), once a second: CPU seconds and resident memory of each process it started on a
host and of their children. A tier's cost over the load run's hold is the sum of its hosts';
the plan (`loadtests.plan`) predicts the same two numbers from the per-stream and per-delivery
costs of the run it reads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from loadtests import process_tree
from loadtests.generator_hosts import at
from loadtests.plan import Cost

SAMPLE_EVERY = 1.0
WITHIN = 0.25  # the bound on the plan's error, per tier


class HostSampler:
    """Every host's processes (root pids, children included) sampled on a thread."""

    def __init__(self, roots: dict[str, list[int]]) -> None:
        self.roots = roots  # host name -> pids started there; the orchestrator appends to it
        # Roots counted by their children only: the load run's own process (its sampler and
        # report), which a generator's cost on one box does not include either.
        self.children_only: set[int] = set()
        self.rows: list[dict[str, Any]] = []
        self.pids: dict[int, str] = {}  # every pid ever seen under a host's roots
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="host-sampler", daemon=True)

    def sample(self) -> None:
        wall = time.time()
        for host, roots in self.roots.items():
            cpu, rss = 0.0, 0
            for root in list(roots):
                procs = process_tree.tree(root)
                if root in self.children_only:
                    procs = procs[1:]
                for proc in procs:
                    self.pids.setdefault(proc.pid, host)
                cpu += process_tree.cpu_of(procs)
                rss += process_tree.rss_of(procs)
            self.rows.append(
                {"wall": wall, "host": host, "cpu_seconds": cpu, "rss_mb": rss / 2**20}
            )

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            self.sample()

    def __enter__(self) -> HostSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sample()


@dataclass(frozen=True)
class HostSpend:
    """One host over the hold: CPU seconds, and memory at mid-hold over its first sample."""

    host: str
    cpu_seconds: float | None  # None: its samples do not span the hold
    mem_mb: float | None


def spend(rows: list[dict[str, Any]], hold_from: float, hold_until: float) -> list[HostSpend]:
    by_host: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_host.setdefault(row["host"], []).append(row)
    out = []
    for host, mine in by_host.items():
        mine.sort(key=lambda r: r["wall"])
        if len(mine) < 2 or mine[0]["wall"] > hold_from or mine[-1]["wall"] < hold_until:
            out.append(HostSpend(host, None, None))
            continue
        cpu = at(mine, hold_until, "cpu_seconds") - at(mine, hold_from, "cpu_seconds")
        mem = at(mine, (hold_from + hold_until) / 2, "rss_mb") - mine[0]["rss_mb"]
        out.append(HostSpend(host, round(cpu, 3), round(mem, 2)))
    return out


@dataclass(frozen=True)
class TierCheck:
    """A tier's predicted and measured CPU (seconds of the hold) and memory (MB over idle)."""

    tier: str
    hosts: tuple[str, ...]
    cpu_predicted: float | None
    cpu_measured: float | None
    mem_predicted: float | None
    mem_measured: float | None

    @staticmethod
    def _error(predicted: float | None, measured: float | None) -> float | None:
        if predicted is None or measured is None or measured <= 0:
            return None
        return (predicted - measured) / measured

    @property
    def cpu_error(self) -> float | None:
        return self._error(self.cpu_predicted, self.cpu_measured)

    @property
    def mem_error(self) -> float | None:
        return self._error(self.mem_predicted, self.mem_measured)

    @property
    def within(self) -> bool | None:
        """Both within WITHIN of the measurement; None when either was not measured."""
        errors = (self.cpu_error, self.mem_error)
        if any(e is None for e in errors):
            return None
        return all(abs(e) <= WITHIN for e in errors if e is not None)


def check_tier(
    tier: str,
    hosts: tuple[str, ...],
    cost: Cost,
    spent: list[HostSpend],
    *,
    streams: int,
    delivered: int,
) -> TierCheck:
    """The plan's cost per delivery and per stream applied to this run, against its hosts."""
    mine = [s for s in spent if s.host in hosts]
    complete = len(mine) == len(hosts)
    cpus = [s.cpu_seconds for s in mine]
    mems = [s.mem_mb for s in mine]
    return TierCheck(
        tier,
        hosts,
        None if cost.cpu_us is None else round(cost.cpu_us * delivered / 1e6, 3),
        round(sum(c for c in cpus if c is not None), 3) if complete and None not in cpus else None,
        None if cost.kb_per_stream is None else round(cost.kb_per_stream * streams / 1024, 2),
        round(sum(m for m in mems if m is not None), 2) if complete and None not in mems else None,
    )
