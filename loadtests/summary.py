"""Figures of a finished run, from locust's CSV files and the sampler's rows; thresholds."""

from __future__ import annotations

import csv
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import median
from typing import Any

from loadtests.figures import BY_KEY, DEFAULT_THRESHOLDS, THRESHOLD_KEYS, Figures
from loadtests.latencies import Latencies
from loadtests.run_files import PUBLISHED, STREAMS_GLOB, read_jsonl
from loadtests.sampler import GC_PAUSE, LOOP_LAG
from notify_client.histogram import Histogram
from notify_client.ledger import Published, StreamLog, Tally, count, percentile

GENERATOR_SATURATED_CPU = 90.0  # percent of one core: locust's own warning level


def read_stats(path: Path) -> dict[str, dict[str, str]]:
    """locust's *_stats.csv by request name (the `Aggregated` row included)."""
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def read_failures(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _num(row: dict[str, str] | None, key: str) -> float | None:
    if not row or row.get(key) in (None, "", "N/A"):
        return None
    return float(row[key])


@dataclass(frozen=True)
class Latency:
    """How many, and the spread, of one kind of timing (ms)."""

    count: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


def latency(row: dict[str, str] | None) -> Latency:
    """A row of locust's statistics."""
    return Latency(
        _num(row, "Request Count"),
        _num(row, "50%"),
        _num(row, "95%"),
        _num(row, "99%"),
        _num(row, "Max Response Time"),
    )


def of_histogram(histogram: Histogram) -> Latency:
    """The spread of what the generator's streams measured (their merged histogram)."""
    if not histogram.count:
        return Latency(0.0)
    top = None if histogram.max_ms is None else round(histogram.max_ms, 2)
    at = histogram.percentile
    return Latency(float(histogram.count), at(0.50), at(0.95), at(0.99), top)


def spread(values_ms: Sequence[float]) -> Latency:
    """p50, p95, p99 and max of latencies measured by the clients themselves."""

    def at(q: float) -> float | None:
        value = percentile(values_ms, q)
        return None if value is None else round(value, 1)

    return Latency(float(len(values_ms)), at(0.50), at(0.95), at(0.99), at(1.0))


def read_tally(run_dir: Path) -> tuple[Tally, list[dict[str, Any]]]:
    """The clients' tally from published.jsonl and every streams-*.jsonl; and the raw
    publish lines (errors included)."""
    lines = read_jsonl(run_dir / PUBLISHED)
    published = [
        Published(str(e["id"]), e["user"], e["sent_at"], e["acked_at"])
        for e in lines
        if e.get("id") and not e.get("error")
    ]
    streams = [
        StreamLog(
            e["name"],
            e["user"],
            e["connected_at"],
            e["ended_at"],
            tuple(e["ids"]),
            e.get("misnamed"),
            tuple((str(nid), float(at)) for nid, at in e.get("arrivals", ())),
        )
        for path in sorted(run_dir.glob(STREAMS_GLOB))
        for e in read_jsonl(path)
    ]
    return count(published, streams), lines


@dataclass(frozen=True)
class Broadcast:
    """One broadcast: when, how many streams were owed it and got it (the clients' count),
    what the server's stats said it held (a cross-check only), its latency."""

    seq: int
    sent_at: float
    owed: int
    received: int
    lost: int
    server_streams: int | None
    error: str | None
    latency: Latency


def per_broadcast(
    measured: Latencies | None, published: list[dict[str, Any]], tally: Tally
) -> list[Broadcast]:
    out = []
    for entry in published:
        if entry.get("seq") is None:
            continue
        owed, got = tally.per_id.get(str(entry.get("id")), (0, 0))
        out.append(
            Broadcast(
                entry["seq"],
                entry["sent_at"],
                owed,
                got,
                owed - got,
                entry.get("server_streams"),
                entry.get("error"),
                of_histogram(
                    (measured.per_broadcast if measured else {}).get(entry["seq"], Histogram())
                ),
            )
        )
    return out


def _series(
    rows: list[dict[str, Any]], pick: Callable[[dict[str, Any]], float | None]
) -> list[float]:
    return [v for v in (pick(r) for r in rows) if v is not None]


def _servers(row: dict[str, Any], key: str) -> float:
    return _sum(row, "servers", key)


def _sum(row: dict[str, Any], group: str, key: str) -> float:
    return float(sum(s.get(key, 0) or 0 for s in row.get(group, [])))


def _hold_rows(
    rows: list[dict[str, Any]], hold_from: float, hold_until: float
) -> list[dict[str, Any]]:
    return [r for r in rows if hold_from <= r["wall"] <= hold_until] or rows[-3:]


def _server_cpu(hold: list[dict[str, Any]]) -> tuple[float | None, float | None, float | None]:
    """CPU seconds of the hold, frames sent and µs per frame (None: no server sampled)."""
    first, last = (hold[0], hold[-1]) if len(hold) > 1 else (None, None)
    if first is None or last is None:
        return None, None, None
    cpu = _servers(last, "cpu_seconds") - _servers(first, "cpu_seconds")
    frames = _servers(last, "frames_sent") - _servers(first, "frames_sent")
    per_frame = round(cpu / frames * 1e6, 2) if frames > 0 else None
    return round(cpu, 3) or None, frames, per_frame


@dataclass(frozen=True)
class GeneratorCost:
    """The load generator's own cost in the hold."""

    cpu_seconds: float | None
    rss_mb: float
    cpu_max_percent: float | None
    saturated: bool


def _cpu_in_hold(
    hold: list[dict[str, Any]], pick: Callable[[dict[str, Any]], float | None]
) -> float | None:
    """CPU seconds a part of the stack spent in the hold (None: not sampled at both ends)."""
    if len(hold) < 2:
        return None
    first, last = pick(hold[0]), pick(hold[-1])
    if first is None or last is None:
        return None
    return round(last - first, 3)


def _nginx_cpu(row: dict[str, Any]) -> float | None:
    return _sum(row, "nginx", "cpu_seconds") if row.get("nginx") else None


def _redis_cpu(row: dict[str, Any]) -> float | None:
    value = (row.get("redis") or {}).get("cpu_seconds")
    return float(value) if value is not None else None


def _generator(rows: list[dict[str, Any]], hold: list[dict[str, Any]]) -> GeneratorCost:
    first, last = (hold[0], hold[-1]) if len(hold) > 1 else (None, None)
    cpu_s = None
    if first and last:
        cpu_s = round(
            _sum(last, "generators", "cpu_seconds") - _sum(first, "generators", "cpu_seconds"), 3
        )
    rss = median([sum(g.get("rss_mb", 0) for g in r["generators"]) for r in hold]) if hold else 0.0
    busiest = _series(
        rows, lambda r: max((g["cpu_percent"] for g in r["generators"]), default=None)
    )
    return GeneratorCost(
        cpu_s or None,
        rss,
        max(busiest, default=None),
        any(c >= GENERATOR_SATURATED_CPU for c in busiest),
    )


def _worst(rows: list[dict[str, Any]], key: str = LOOP_LAG) -> float | None:
    """The largest of a server figure over `rows` (None: no server reported it)."""
    values = _series(
        rows,
        lambda r: max((s[key] for s in r["servers"] if s.get(key) is not None), default=None),
    )
    return max(values, default=None)


def resources(
    rows: list[dict[str, Any]],
    baseline: dict[str, Any],
    hold_from: float,
    hold_until: float = float("inf"),
    streams: int | None = None,
) -> Figures:
    """Memory and CPU figures of the hold phase: after the ramp, before the users leave.
    Streams per the server's own figures; `streams` (the clients' count) where it has none."""
    hold = _hold_rows(rows, hold_from, hold_until)
    held = _series(hold, lambda r: r.get("total_connections"))
    conns = median(held) if held else (streams or 0)
    rss_base = _servers(baseline, "rss_mb")
    rss_hold = median([_servers(r, "rss_mb") for r in hold]) if hold else rss_base
    nginx_hold = (
        median([sum(n["rss_mb"] for n in r.get("nginx", [])) for r in hold]) if hold else 0.0
    )
    nginx_base = sum(n["rss_mb"] for n in baseline.get("nginx", []))
    # A target run without --server-pid samples no server: its figures are not measured (None),
    # never the 0 that sums over no process give.
    servers_seen = bool(baseline.get("servers")) and all(r.get("servers") for r in hold)
    server_cpu, frames, per_frame = _server_cpu(hold) if servers_seen else (None, None, None)
    generator = _generator(rows, hold)
    redis_rows = [r["redis"] for r in rows if r.get("redis")]
    ramp = [r for r in rows if r["wall"] < hold_from]
    # Whether a long run levels off: the slopes over the last third of the hold (the soak).
    late = hold[len(hold) * 2 // 3 :]
    return Figures(
        connections_held=conns,
        peak_connections=max(_series(rows, lambda r: r.get("total_connections")), default=None),
        server_rss_baseline_mb=round(rss_base, 1) if servers_seen else None,
        server_rss_hold_mb=round(rss_hold, 1) if servers_seen else None,
        # A leak shows as memory that keeps growing while the load is steady (churn).
        server_rss_slope_mb_per_min=_per_minute(hold, "rss_mb", 2),
        server_rss_slope_last_third_mb_per_min=_per_minute(late, "rss_mb", 3),
        server_fds_slope_last_third_per_min=_per_minute(late, "fds", 3),
        mem_per_conn_kb=(
            round((rss_hold - rss_base) * 1024 / conns, 2) if conns and servers_seen else None
        ),
        nginx_mem_per_conn_kb=(
            round((nginx_hold - nginx_base) * 1024 / conns, 2) if conns and nginx_base else None
        ),
        frames_sent_in_hold=frames,
        # CPU seconds of the hold; divided by the clients' own count of deliveries (headline).
        server_cpu_seconds_in_hold=server_cpu,
        generator_cpu_seconds_in_hold=generator.cpu_seconds,
        nginx_cpu_seconds_in_hold=_cpu_in_hold(hold, _nginx_cpu),
        redis_cpu_seconds_in_hold=_cpu_in_hold(hold, _redis_cpu),
        cpu_us_per_msg=per_frame,
        # The ramp apart: a connect burst that stalls deliveries shows here, not in the hold;
        # the GC's own pauses beside the lag say how much of it was the collector.
        loop_lag_ramp_max_ms=_worst(ramp),
        loop_lag_max_ms=_worst(hold),
        gc_pause_ramp_max_ms=_worst(ramp, GC_PAUSE),
        gc_pause_max_ms=_worst(hold, GC_PAUSE),
        # Which settings the CPU figures were measured with (the server's own report).
        server_loops=tuple(sorted({s["loop"] for r in hold for s in r["servers"] if "loop" in s})),
        prepared_streams_max=max(
            _series(hold, lambda r: _servers(r, "prepared_streams") if r["servers"] else None),
            default=None,
        ),
        server_fds_max=max(
            _series(rows, lambda r: max((s.get("fds", 0) for s in r["servers"]), default=None)),
            default=None,
        ),
        generator_cpu_max_percent=generator.cpu_max_percent,
        # Whole locust processes (master included) over the streams they hold.
        generator_mem_per_conn_kb=round(generator.rss_mb * 1024 / conns, 2) if conns else None,
        generator_saturated=generator.saturated,
        redis_clients_max=max((r.get("connected_clients", 0) for r in redis_rows), default=None),
        redis_pubsub_clients_max=max(
            (r.get("pubsub_clients", 0) for r in redis_rows), default=None
        ),
    )


def _per_minute(rows: list[dict[str, Any]], key: str, digits: int) -> float | None:
    """The servers' `key` summed, its least-squares slope per minute over `rows`."""
    slope = _slope([(r["t"], _servers(r, key)) for r in rows])
    return None if slope is None else round(slope * 60, digits)


def leftovers(figures: Figures, baseline: dict[str, Any], after: dict[str, Any]) -> Figures:
    """What the run left behind once every user left: the leak check of `churn`."""
    return replace(
        figures,
        streams_after=after.get("total_connections"),
        server_rss_after_mb=round(_servers(after, "rss_mb"), 1),
        server_rss_growth_mb=round(_servers(after, "rss_mb") - _servers(baseline, "rss_mb"), 1),
        server_fds_baseline=_servers(baseline, "fds"),
        server_fds_after=_servers(after, "fds"),
        redis_clients_after=(after.get("redis") or {}).get("connected_clients"),
    )


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x."""
    if len(points) < 3:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return None if var == 0 else sum((x - mx) * (y - my) for x, y in points) / var


def failures(rows: list[dict[str, str]]) -> dict[str, int]:
    """Failure occurrences by kind: connect, close <code>, gap, duplicate, publish."""
    out: dict[str, int] = {}
    for row in rows:
        name = row["Name"]
        kind = "publish" if row["Method"] == "HTTP" else name
        out[kind] = out.get(kind, 0) + int(row["Occurrences"])
    return out


def headline(
    stats: dict[str, dict[str, str]],
    fails: dict[str, int],
    broadcasts: list[Broadcast],
    res: Figures,
    tally: Tally,
    measured: Latencies | None,
) -> Figures:
    """Every figure of the run: the sampled ones in `res` with the clients' counts and latency.
    `measured` None: no user wrote its histograms, so nothing received was counted."""
    note = of_histogram(measured.every) if measured is not None else Latency()
    # The clients counted every frame they got: none is 0 received, a measurement.
    received = None if measured is None else int((note.count or 0) + measured.untimed)
    measured_from = "the payload's sent_at" if note.count else None
    if not note.count and tally.latencies_ms:
        note = spread(tally.latencies_ms)
        measured_from = "the publisher's send time (the payload has no sent_at)"
    connect = latency(stats.get("connect"))
    return replace(
        res,
        connect_p50_ms=connect.p50_ms,
        connect_p99_ms=connect.p99_ms,
        connect_failures=fails.get("connect", 0),
        unexpected_closes=sum(n for k, n in fails.items() if k.startswith("close")),
        notifications=received,
        heartbeats=None if measured is None else measured.heartbeats,
        p50_ms=note.p50_ms,
        p95_ms=note.p95_ms,
        p99_ms=note.p99_ms,
        max_ms=note.max_ms,
        latency_measured_from=measured_from,
        streams_connected=tally.streams,
        broadcasts=len(broadcasts),
        published=tally.published,
        owed=tally.owed,
        delivered=tally.delivered,
        lost=tally.lost,
        silent_streams=tally.silent,
        misrouted_streams=tally.misrouted,
        never_connected_streams=tally.never_connected,
        gaps=fails.get("gap", 0),
        duplicates=tally.duplicates,
        publish_failures=fails.get("publish", 0),
        cpu_us_per_delivered=_per(res.server_cpu_seconds_in_hold, tally.delivered),
        generator_cpu_us_per_received=_per(res.generator_cpu_seconds_in_hold, tally.delivered),
        nginx_cpu_us_per_delivered=_per(res.nginx_cpu_seconds_in_hold, tally.delivered),
        redis_cpu_us_per_published=_per(res.redis_cpu_seconds_in_hold, tally.published or 0),
    )


def _per(cpu_seconds: float | None, deliveries: int) -> float | None:
    """Microseconds of CPU per delivered notification (the clients' count), or None."""
    if not cpu_seconds or deliveries <= 0:
        return None
    return round(cpu_seconds / deliveries * 1e6, 2)


_THRESHOLD = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=|==|!=|<|>)\s*(-?[0-9.]+)\s*$")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str
    value: float
    default: bool = False

    @classmethod
    def parse(cls, text: str, known: frozenset[str] = THRESHOLD_KEYS) -> Threshold:
        match = _THRESHOLD.match(text)
        if not match:
            raise ValueError(f"threshold {text!r} is not METRIC OP NUMBER (e.g. 'p99_ms<250')")
        metric, op, value = match.groups()
        if metric not in known:
            raise ValueError(f"threshold {text!r} names no figure; known: {sorted(known)}")
        return cls(metric, op, float(value))

    def check(self, figures: Figures) -> tuple[bool, str]:
        seen = BY_KEY[self.metric].of(figures)
        if seen is None or isinstance(seen, bool):
            return False, f"{self.metric} {self.op} {self.value:g}: not measured"
        ok = _OPS[self.op](float(seen), self.value)
        said = "met" if ok else "MISSED"
        if self.default:
            said += ", a default: name the figure in --threshold to change it"
        return ok, f"{self.metric} {self.op} {self.value:g}: {seen} ({said})"


def applied(given: Iterable[str], known: frozenset[str] = THRESHOLD_KEYS) -> list[Threshold]:
    """The run's thresholds: the defaults whose figure the run does not name, then its own."""
    own = [Threshold.parse(t, known) for t in given]
    named = {t.metric for t in own}
    defaults = [Threshold.parse(t, known) for t in DEFAULT_THRESHOLDS]
    return [replace(t, default=True) for t in defaults if t.metric not in named] + own
