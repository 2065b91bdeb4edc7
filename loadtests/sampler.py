"""Every second: RSS, CPU and open files of each process of the stack, Redis clients, nginx's
active connections, and each server's own figures (streams, frames sent, event-loop lag)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import psutil
import redis as redis_sync

from notify_client.driver import auth_header
from notify_stack.stack import BUS_CLIENT, FEED_CLIENT, METRICS_PATH


@dataclass
class Watched:
    """The processes and endpoints of one run."""

    servers: dict[int, str | None]  # pid -> base URL of our instance (None: not ours, no metrics)
    nginx_master: int | None
    redis_pid: int | None
    redis_url: str | None
    generators: list[int]
    status_url: str | None
    admin_token: str
    # A target's GET /api/ws/stats (rule 8.1), read every STATS_EVERY samples when no process
    # of it reports its own count: the server's streams beside the clients' count.
    stats_url: str | None = None


def _process(pid: int, cache: dict[int, psutil.Process]) -> dict[str, Any] | None:
    try:
        proc = cache.get(pid) or cache.setdefault(pid, psutil.Process(pid))
        with proc.oneshot():
            times = proc.cpu_times()
            return {
                "pid": pid,
                "rss_mb": round(proc.memory_info().rss / 2**20, 2),
                "cpu_percent": proc.cpu_percent(None),
                "cpu_seconds": round(times.user + times.system, 3),
                "fds": proc.num_fds(),
            }
    except psutil.Error:
        return None


def redis_clients(url: str) -> dict[str, int]:
    with redis_sync.Redis.from_url(url, socket_timeout=5) as client:
        listing = client.client_list()
    subscribed = [c for c in listing if int(c.get("sub", 0)) or int(c.get("psub", 0))]
    return {
        "connected_clients": len(listing),
        "pubsub_clients": len(subscribed),
        "sse_feed_clients": sum(c.get("name", "").startswith(FEED_CLIENT) for c in subscribed),
        "bus_subscriptions": sum(c.get("name", "").startswith(BUS_CLIENT) for c in subscribed),
    }


def nginx_active(status_url: str, http: httpx.Client) -> int | None:
    """`Active connections: N` from stub_status."""
    text = http.get(status_url).text
    first = text.splitlines()[0] if text else ""
    return int(first.split(":")[1]) if first.startswith("Active connections") else None


STATS_EVERY = 5  # a stats body grows with the users: read it every fifth sample only


def stats_total(http: httpx.Client, url: str, headers: dict[str, str]) -> int | None:
    """`total_connections` of a target's stats (rule 8.1), None if it gave none."""
    total = http.get(url, headers=headers).json().get("total_connections")
    return total if isinstance(total, int) and not isinstance(total, bool) else None


# The server's event-loop lag and its longest garbage-collection pause since the last sample, ms
# (None: the server does not report it).
LOOP_LAG: Final = "loop_lag_ms"
GC_PAUSE: Final = "gc_pause_ms"


def server_metrics(document: dict[str, Any]) -> dict[str, Any]:
    """The reference server's metrics document as a sample holds it: the loop lag and the GC
    pause flattened to their maxima (the document's `{"loop_lag_ms": {"max_ms": ...}}`)."""
    flat = {}
    for key in (LOOP_LAG, GC_PAUSE):
        value = document.get(key)
        flat[key] = value.get("max_ms") if isinstance(value, dict) else None
    return {**document, **flat}


@dataclass
class Sampler:
    """Samples in a thread until stopped; rows go to `rows` and to samples.jsonl."""

    watched: Watched
    out: Path
    interval: float = 1.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._procs: dict[int, psutil.Process] = {}
        self._started = time.monotonic()
        self._samples = 0
        self._stats: int | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    @property
    def latest(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {}

    def sample(self, http: httpx.Client) -> dict[str, Any]:
        w = self.watched
        row: dict[str, Any] = {"t": round(time.monotonic() - self._started, 2), "wall": time.time()}
        headers = auth_header(w.admin_token)
        servers = []
        for pid, base in w.servers.items():
            proc = _process(pid, self._procs) or {"pid": pid}
            if base is not None:
                try:
                    document = http.get(base + METRICS_PATH, headers=headers).json()
                    proc.update(server_metrics(document))
                except (httpx.HTTPError, ValueError) as exc:
                    proc["error"] = type(exc).__name__
            servers.append(proc)
        row["servers"] = servers
        nginx = []
        if w.nginx_master is not None:
            try:
                workers = psutil.Process(w.nginx_master).children()
            except psutil.Error:
                workers = []
            nginx = [p for p in (_process(c.pid, self._procs) for c in workers) if p]
        row["nginx"] = nginx
        row["generators"] = [p for p in (_process(g, self._procs) for g in w.generators) if p]
        if w.redis_url is not None:
            process = _process(w.redis_pid, self._procs) if w.redis_pid is not None else None
            row["redis"] = {
                **(process or {}),
                **self._try(lambda: redis_clients(w.redis_url or ""), {}),
            }
        if w.status_url:
            row["nginx_active"] = self._try(lambda: nginx_active(w.status_url or "", http), None)
        # Each process's own count, not GET /api/ws/stats: at 80k users that body is megabytes
        # and answering it every second loaded the server under test.
        counts = [s.get("notification_streams") for s in servers]
        known = bool(counts) and None not in counts
        row["total_connections"] = sum(c or 0 for c in counts) if known else None
        if not known and w.stats_url is not None:
            self._samples += 1
            if self._samples % STATS_EVERY == 1:
                self._stats = self._try(lambda: stats_total(http, w.stats_url or "", headers), None)
            row["total_connections"] = self._stats
        return row

    def sample_now(self) -> dict[str, Any]:
        """One sample outside the thread (the baseline before the load starts)."""
        with httpx.Client(timeout=5, trust_env=False) as http:
            return self.sample(http)

    def _try(self, fn: Any, default: Any) -> Any:
        try:
            return fn()
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return default

    def _loop(self) -> None:
        with (
            httpx.Client(timeout=5, trust_env=False) as http,
            (self.out / "samples.jsonl").open("a") as log,
        ):
            while not self._stop.is_set():
                due = time.monotonic() + self.interval
                row = self.sample(http)
                self.rows.append(row)
                log.write(json.dumps(row) + "\n")
                log.flush()
                self._stop.wait(max(0.0, due - time.monotonic()))
