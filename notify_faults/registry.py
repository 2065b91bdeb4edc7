"""How big a fault run is (`Scale`) and how a row is declared: a fault on the reference stack
(`@fault`) or an attack on any target (`@attack`). The rows themselves are listed, in order, in
`catalogue.py`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from notify_client.target import Target
from notify_faults.lab import Lab
from notify_faults.table import Row


@dataclass(frozen=True)
class Scale:
    """How big each fault is: CI keeps it small, `nox -s faults` uses a few thousand clients."""

    name: str
    restart_clients: int  # streams through nginx when the server is killed
    clients: int  # streams in the other rows
    publish_rate: float  # notifications a second
    limit_rounds: int  # rounds of simultaneous connects of one user
    half_open: int  # peers that stop answering pings
    drain: float = 60.0  # seconds to wait for every owed delivery before counting the lost
    stalled: int = 800  # half-sent handshakes held open at once
    exhaust_max: int = 2500  # connections an exhaustion attack opens at most
    exhaust_cap: int = 2000  # WS_MAX_CONNECTIONS of the reference server in that row
    flood_seconds: float = 10.0  # how long bad-token handshakes flood in
    churn: int = 2000  # connects and closes in the tight loop

    @property
    def settle(self) -> float:
        """Seconds of publishing before and after each fault."""
        return 2.0 if self.name == "ci" else 4.0


CI = Scale(
    "ci",
    restart_clients=200,
    clients=60,
    publish_rate=40,
    limit_rounds=5,
    half_open=10,
    drain=30,
    stalled=200,
    exhaust_max=400,
    exhaust_cap=300,
    flood_seconds=3.0,
    churn=200,
)
FULL = Scale(
    "full", restart_clients=3000, clients=600, publish_rate=150, limit_rounds=30, half_open=200
)

Scenario = Callable[[Lab, Scale, Path, Row], Awaitable[Row]]


@dataclass(frozen=True)
class FaultRow:
    """A declared fault: its id, what it does and what is expected (either may name a field of
    the Scale, as `{clients}`), whether CI runs it, and the scenario that fills its Row."""

    id: str
    title: str
    expected: str
    ci: bool
    run: Scenario

    def row(self, scale: Scale) -> Row:
        sizes = asdict(scale)
        return Row(self.id, "fault", self.title.format(**sizes), self.expected.format(**sizes))


def fault(
    fault_id: str, *, title: str, expected: str, ci: bool = False
) -> Callable[[Scenario], FaultRow]:
    """Declare a fault row, as the contract suite declares its cases; the catalogue lists it."""

    def declare(fn: Scenario) -> FaultRow:
        return FaultRow(fault_id, title, expected, ci, fn)

    return declare


@dataclass
class Victim:
    """What a row knows of the target's process: its pid (for CPU and descriptors), if any."""

    pid: int | None = None

    def cpu_seconds(self) -> float | None:
        if self.pid is None:
            return None
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def open_files(self) -> int | None:
        return None if self.pid is None else psutil.Process(self.pid).num_fds()

    def rss_mb(self) -> float | None:
        if self.pid is None:
            return None
        return round(psutil.Process(self.pid).memory_info().rss / 2**20, 1)


AttackFn = Callable[[Target, Scale, Victim, Row], Awaitable[Row]]


@dataclass(frozen=True)
class Attack:
    id: str
    rule: str
    title: str
    expected: str
    ci: bool
    run: AttackFn

    def row(self, scale: Scale, where: str = "") -> Row:
        sizes = vars(scale)
        title = self.title.format(**sizes) + (f" ({where})" if where else "")
        return Row(self.id, "attack", title, self.expected.format(**sizes))


def attack(
    attack_id: str, *, rule: str, title: str, expected: str, ci: bool = False
) -> Callable[[AttackFn], Attack]:
    """Declare an attack row, as faults and contract cases are declared; the catalogue lists it."""

    def declare(fn: AttackFn) -> Attack:
        return Attack(attack_id, rule, title, expected, ci, fn)

    return declare
