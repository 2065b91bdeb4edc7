"""Every figure of a load run, declared once: its key (the field's name), label, unit, the tables
it shows in, whether a threshold may name it, and how "not measured" shows.

The run's headline (terminal, summary.md, report.html), the comparison's table and plots and the
peers' table are all generated from this one declaration; summary.json holds every field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, Final

NOT_MEASURED: Final = "not measured"
SPEC: Final = "figure"


class Table(StrEnum):
    HEADLINE = "headline"  # the run's own table: the terminal, summary.md, report.html
    COMPARE = "compare"  # the comparison's side-by-side table
    PLOT = "plot"  # the comparison's bar charts
    PEERS = "peers"  # the peers' table
    RATIO = "ratio"  # the peers' ratios to the reference
    GENERATORS = "generators"  # the generators side by side


@dataclass(frozen=True)
class Spec:
    label: str
    unit: str
    tables: frozenset[Table]
    threshold: bool  # a threshold may name it (`--threshold 'p99_ms<250'`)
    missing: str  # what None shows as
    default: str | None  # a threshold every run applies unless it names the figure ("==0")


def figure(
    label: str,
    unit: str = "",
    *tables: Table,
    threshold: bool = True,
    missing: str = NOT_MEASURED,
    default: str | None = None,
) -> Any:
    """A field of `Figures`: None until measured."""
    spec = Spec(label, unit, frozenset(tables), threshold, missing, default)
    return field(default=None, metadata={SPEC: spec})


H, C, P, PE, R, G = (
    Table.HEADLINE,
    Table.COMPARE,
    Table.PLOT,
    Table.PEERS,
    Table.RATIO,
    Table.GENERATORS,
)


@dataclass(frozen=True)
class Figures:
    """A run's figures: the clients' counts, latency, and what the sampler saw of the processes.
    Declaration order is the order of every table."""

    # -- the clients' counts (never the server's)
    streams_connected: int | None = figure("streams connected (the clients' count)", "", H, G)
    never_connected_streams: int | None = figure(
        "streams that never got `connected`", "", H, default="==0"
    )
    misrouted_streams: int | None = figure(
        "streams whose `connected` named another user", "", H, default="==0"
    )
    unreported_streams: int | None = figure(
        "streams no generator worker reported (a worker lost)", "", H
    )
    generator_workers_lost: int | None = figure(
        "generator workers that never reported their streams", "", H, default="==0"
    )
    broadcasts: int | None = figure("broadcasts", "", H, G)
    published: int | None = figure("notifications published (acknowledged)", "", H)
    publish_failures: int | None = figure("publishes refused or failed", "", H)
    notifications: int | None = figure("notifications received", "", H, G)
    heartbeats: int | None = figure("heartbeats received", "", H)
    frames_received: int | None = figure("frames received, all kinds", "", G)
    owed: int | None = figure("deliveries owed (the clients' count)", "", H, G)
    delivered: int | None = figure("deliveries made", "", H, PE)
    lost: int | None = figure("lost (owed - delivered)", "", H, C, PE, G, default="==0")
    silent_streams: int | None = figure("streams owed something that got none of it", "", H)
    gaps: int | None = figure("gaps seen by clients", "", H, G)
    duplicates: int | None = figure("duplicates", "", H)
    connect_failures: int | None = figure("connect failures", "", H, C)
    unexpected_closes: int | None = figure("unexpected closes", "", H, C, PE)
    # -- latency
    p50_ms: float | None = figure("delivery latency p50", "ms", H, C, P, PE, G)
    p95_ms: float | None = figure("delivery latency p95", "ms", H)
    p99_ms: float | None = figure("delivery latency p99", "ms", H, C, P, PE, R, G)
    max_ms: float | None = figure("delivery latency max", "ms", H)
    latency_measured_from: str | None = figure(
        "delivery latency measured from", "", H, threshold=False
    )
    connect_p50_ms: float | None = figure("connect time p50", "ms", H, C, P)
    connect_p99_ms: float | None = figure("connect time p99", "ms", H)
    # -- the server, sampled
    peak_connections: float | None = figure("peak connections", "", H)
    connections_held: float | None = figure("connections held (median of the hold)", "", H, C)
    mem_per_conn_kb: float | None = figure("server memory per connection", "KB", H, C, P, PE, R)
    cpu_us_per_msg: float | None = figure("server CPU per delivered frame", "µs", H, C, P)
    cpu_us_per_delivered: float | None = figure(
        "server CPU of the hold per delivered notification", "µs", H, PE, R
    )
    loop_lag_ramp_max_ms: float | None = figure("server event-loop lag, max of the ramp", "ms", H)
    loop_lag_max_ms: float | None = figure("server event-loop lag, max of the hold", "ms", H, PE)
    gc_pause_ramp_max_ms: float | None = figure("server GC pause, max of the ramp", "ms", H)
    gc_pause_max_ms: float | None = figure("server GC pause, max of the hold", "ms", H)
    server_fds_max: float | None = figure("server open files (max)", "", C, P)
    server_rss_baseline_mb: float | None = figure("server memory before the run", "MB")
    server_rss_hold_mb: float | None = figure("server memory in the hold (median)", "MB")
    server_rss_slope_mb_per_min: float | None = figure("server memory slope of the hold", "MB/min")
    server_rss_slope_last_third_mb_per_min: float | None = figure(
        "server memory slope, last third of the hold", "MB/min", H
    )
    server_fds_slope_last_third_per_min: float | None = figure(
        "server open files slope, last third of the hold", "/min", H
    )
    nginx_mem_per_conn_kb: float | None = figure("nginx memory per connection", "KB", H)
    nginx_cpu_seconds_in_hold: float | None = figure("nginx CPU of the hold", "s")
    nginx_cpu_us_per_delivered: float | None = figure(
        "nginx CPU of the hold per delivered notification", "µs", H
    )
    redis_cpu_seconds_in_hold: float | None = figure("Redis CPU of the hold", "s")
    redis_cpu_us_per_published: float | None = figure(
        "Redis CPU of the hold per published notification", "µs", H
    )
    frames_sent_in_hold: float | None = figure("frames the server sent in the hold")
    server_cpu_seconds_in_hold: float | None = figure("server CPU of the hold", "s")
    prepared_streams_max: float | None = figure("streams on prepared frames (max)")
    server_loops: tuple[str, ...] | None = figure("server event loops", threshold=False)
    # -- the load generator
    generator_cpu_us_per_received: float | None = figure(
        "generator CPU of the hold per received notification", "µs", H, PE, G
    )
    generator_mem_per_conn_kb: float | None = figure("generator memory per stream", "KB", H, PE, G)
    generator_cpu_seconds_in_hold: float | None = figure("generator CPU of the hold", "s", G)
    generator_streams_per_process: float | None = figure("streams per generator process", "", G)
    generator_cpu_max_percent: float | None = figure("generator CPU, max of one process", "%")
    generator_saturated: bool | None = figure(
        "load generator saturated (>= 90% CPU)", "", H, threshold=False
    )
    # -- Redis
    redis_clients_max: float | None = figure("Redis connections (max)", "", C, P)
    redis_pubsub_clients_max: float | None = figure("Redis PubSub connections (max)", "", C, P)
    # -- once every user left (the leak check)
    redis_clients_after: float | None = figure("Redis connections after the clients left", "", C, P)
    streams_after: float | None = figure("streams left after the clients left")
    server_rss_after_mb: float | None = figure("server memory after the clients left", "MB")
    server_rss_growth_mb: float | None = figure("server memory growth over the run", "MB")
    server_fds_baseline: float | None = figure("server open files before the run")
    server_fds_after: float | None = figure("server open files after the clients left")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figures:
        """The figures a saved run holds (keys this version does not know are dropped)."""
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Figure:
    """A row of the table: the key and what is declared of it."""

    key: str
    spec: Spec

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def unit(self) -> str:
        return self.spec.unit

    @property
    def heading(self) -> str:
        """The label with its unit, for a column."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def of(self, figures: Figures) -> Any:
        return getattr(figures, self.key)

    def show(self, value: Any) -> str:
        """The value with its unit; None shows as declared ("not measured")."""
        if value is None:
            return self.spec.missing
        if isinstance(value, float):
            value = f"{value:,.2f}".rstrip("0").rstrip(".")
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        return f"{value} {self.unit}".strip()


NONE_MEASURED: Final = Figures()  # a run that did not happen
FIGURES: Final = tuple(Figure(f.name, f.metadata[SPEC]) for f in fields(Figures))
BY_KEY: Final = {f.key: f for f in FIGURES}
THRESHOLD_KEYS: Final = frozenset(f.key for f in FIGURES if f.spec.threshold)
# Applied to every run unless the run names the same figure itself (`--threshold 'lost<=5'`):
# a run that lost, misrouted or never connected a stream fails by default.
DEFAULT_THRESHOLDS: Final = tuple(f"{f.key}{f.spec.default}" for f in FIGURES if f.spec.default)


def in_table(table: Table) -> tuple[Figure, ...]:
    return tuple(f for f in FIGURES if table in f.spec.tables)


def shown(figures: Figures, table: Table = Table.HEADLINE) -> list[tuple[str, str]]:
    """(label, shown value) of each figure of `table`."""
    return [(f.label, f.show(f.of(figures))) for f in in_table(table)]
