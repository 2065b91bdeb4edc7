"""What a load run is: its scenario and sizes, the profiles, and the budget it must fit in.

This machine's limits shape the run: 20,000 open files per process (hard), two descriptors per
WebSocket in nginx, and one source address reaching one destination through at most the
ephemeral port range. The budget is checked before anything starts, not discovered midway.
"""

from __future__ import annotations

import json
import resource
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from notify_contract.settings import DEFAULTS

SCENARIOS = ("idle", "fanout", "personal", "churn", "tasks", "sse", "mixed")
FD_MARGIN = 200  # listening sockets, logs, pipes, the odd HTTP connection
PORT_MARGIN = 500


class BudgetError(ValueError):
    """The run does not fit this machine; the message says which limit and what to change."""


@dataclass(frozen=True)
class RunConfig:
    """A load run. Durations in seconds; `rate` is connections opened per second."""

    scenario: str = "fanout"
    users: int = 10_000
    rate: float = 500.0
    hold: float = 60.0
    instances: int = 1
    generator_workers: int = 2
    # Workers on other hosts (`notify-harness worker --master HOST:PORT`): the master waits for
    # them and gives each a herd; `master_bind` is where it listens for them.
    remote_workers: int = 0
    master_bind: str = "127.0.0.1"
    master_port: int | None = None
    nginx_workers: int = 2
    via_nginx: bool = True
    broadcast_interval: float = 5.0
    publish_rate: float = 50.0
    churn_hold: float = 3.0
    sse_mode: str = "shared"
    heartbeat_interval: float = DEFAULTS.heartbeat_interval
    redis: bool = False
    source_addresses: tuple[str, ...] = ()
    offer_compression: bool = False  # clients offer permessage-deflate, as browsers do
    # After each broadcast, ask the server's stats how many streams it holds (a cross-check
    # shown per broadcast). Off where the server's cost of answering would skew a comparison.
    stats_cross_check: bool = True
    thresholds: tuple[str, ...] = ()
    server_settings: dict[str, str] = field(default_factory=dict)

    @property
    def ramp(self) -> float:
        return self.users / self.rate

    @property
    def duration(self) -> float:
        """Ramp, then hold."""
        return self.ramp + self.hold

    @property
    def all_workers(self) -> int:
        """Every locust worker of the run: this host's and the remote ones."""
        return self.generator_workers + self.remote_workers

    @property
    def needs_redis(self) -> bool:
        return self.redis or self.instances > 1 or self.sse_mode == "per-connection"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROFILES: dict[str, RunConfig] = {
    # Under two minutes, for CI: the whole path (nginx, locust master and worker, sampler, report).
    "smoke": RunConfig(
        users=300,
        rate=150,
        hold=20,
        generator_workers=1,
        nginx_workers=1,
        broadcast_interval=2.0,
        heartbeat_interval=5.0,
    ),
    # The default: 10k WebSocket streams through nginx, a broadcast every 5 s.
    "capacity": RunConfig(),
    # 100,000 streams through nginx for 5 minutes, on one box: eight instances joined by Redis
    # and eight source addresses (12,500 connections per source and destination, under half the
    # port range), twelve nginx workers and six generator workers (16,667 streams each, under
    # the 20,000 open files a process). Pings and heartbeats every 60 s and a broadcast every
    # 30 s: at 100k on two cores, pings every 20 s alone would take about a core.
    "100k": RunConfig(
        scenario="fanout",
        users=100_000,
        rate=300,  # about what this box holds to the end of the ramp, so the hold is at 100k
        hold=330,
        instances=8,
        generator_workers=6,
        nginx_workers=12,
        broadcast_interval=30.0,
        heartbeat_interval=60.0,
        source_addresses=tuple(f"127.0.0.{i}" for i in range(2, 10)),
        server_settings={"WS_PING_INTERVAL": "60", "WS_PING_TIMEOUT": "60"},
    ),
    # An hour of mixed load on Redis (nox -s soak; --duration shortens it): does it level off?
    "soak": RunConfig(
        scenario="mixed",
        users=1000,
        rate=50,
        hold=3600,
        generator_workers=1,
        nginx_workers=1,
        broadcast_interval=10.0,
        publish_rate=10.0,
        redis=True,
    ),
}


def from_profile(name: str, **changes: Any) -> RunConfig:
    if name not in PROFILES:
        raise BudgetError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    known = {f.name for f in fields(RunConfig)}
    unknown = set(changes) - known
    if unknown:
        raise BudgetError(f"unknown run settings {sorted(unknown)}")
    config = replace(PROFILES[name], **{k: v for k, v in changes.items() if v is not None})
    if config.scenario not in SCENARIOS:
        raise BudgetError(f"unknown scenario {config.scenario!r}; choose one of {SCENARIOS}")
    return config


def port_range() -> int:
    """How many ephemeral ports there are here."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(high) - int(low) + 1
    except (OSError, ValueError):
        return 28_232  # Linux's default range


def open_file_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def check_budget(
    config: RunConfig,
    fd_limit: int | None = None,
    ports: int | None = None,
    *,
    ours: bool = True,
) -> list[str]:
    """Raise BudgetError if the run cannot fit; return the budget lines for the report.
    `ours`: the servers and nginx are ours to budget too (not a target we did not start)."""
    fd_limit = fd_limit or open_file_limit()
    ports = ports or port_range()
    usable = fd_limit - FD_MARGIN
    # Linux's connect() takes even ephemeral ports first (odd ones are for bind()); past half
    # the range every connect to that destination scans the even half before an odd port. A
    # 100k run with 16,667-20,000 connections per (source, destination) pair slowed its ramp
    # from 400 to 150 connects a second there, the generator and nginx in __inet_hash_connect.
    pair_ports = ports // 2 - PORT_MARGIN
    sources = max(1, len(config.source_addresses))
    per_instance = -(-config.users // config.instances)
    per_generator = -(-config.users // config.all_workers)
    per_nginx = -(-2 * config.users // config.nginx_workers)
    per_source = -(-config.users // sources)
    checks = []
    if ours:
        checks.append(
            (
                per_instance,
                usable,
                f"server instance: {per_instance} streams",
                "add --instances (Redis joins them)",
            )
        )
    checks += [
        (
            per_generator,
            usable,
            f"generator worker: {per_generator} connections",
            "add --generator-workers",
        ),
        (
            per_source,
            pair_ports,
            f"source address: {per_source} ports to one destination",
            "add --source-addresses 127.0.0.2,127.0.0.3,...",
        ),
    ]
    if config.via_nginx and ours:
        checks.append(
            (
                per_nginx,
                usable,
                f"nginx worker: {per_nginx} descriptors (2 a stream)",
                "add --nginx-workers",
            )
        )
        checks.append(
            (
                per_instance,
                pair_ports,
                f"nginx to one instance: {per_instance} ports",
                "add --instances",
            )
        )
    lines, problems = [], []
    for need, have, what, fix in checks:
        lines.append(f"{what} of {have} available")
        if need > have:
            problems.append(f"{what} exceeds {have} ({fix})")
    if problems:
        raise BudgetError("the run does not fit this machine: " + "; ".join(problems))
    return lines


# The user classes of loadtests/locustfile.py each scenario runs, named on locust's command line.
# A HerdUser holds a worker's share of the streams (loadtests.herd): one per worker.
SCENARIO_USERS: dict[str, tuple[str, ...]] = {
    "idle": ("HerdUser",),
    "fanout": ("HerdUser", "Publisher"),
    "personal": ("HerdUser", "Publisher"),
    "churn": ("ChurnUser",),
    "tasks": ("TaskUser",),
    "sse": ("SseUser", "Publisher"),
    # The soak: idle streams, churn and tasks (8:1:1), broadcasts and personal notifications.
    "mixed": ("IdleUser", "ChurnUser", "TaskUser", "Publisher"),
}


@dataclass(frozen=True)
class LoadEnv:
    """What the locust processes need to know of the run, as one JSON value: the locustfile's
    option `--notify-run`, passed as LOCUST_NOTIFY_RUN, which locust's own parser reads (the
    secret stays out of the process list)."""

    target: str
    secret: str
    scenario: str
    run_dir: Path
    publish_from: float
    publish_until: float
    broadcast_interval: float
    publish_rate: float
    users: int
    rate: float  # streams opened a second, over all workers
    generator_workers: int
    churn_hold: float
    source_addresses: tuple[str, ...]
    driver_cmd: str  # "" : the HTTP driver API
    offer_compression: bool = False
    stats_cross_check: bool = True

    OPTION: ClassVar[str] = "notify_run"
    VARIABLE: ClassVar[str] = "LOCUST_NOTIFY_RUN"

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "run_dir": str(self.run_dir)})

    @classmethod
    def from_json(cls, text: str) -> LoadEnv:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        missing = sorted(known - data.keys())
        if missing:
            raise RuntimeError(f"{cls.VARIABLE} lacks {', '.join(missing)}")
        data = {k: v for k, v in data.items() if k in known}
        return cls(
            **{
                **data,
                "run_dir": Path(data["run_dir"]),
                "source_addresses": tuple(data["source_addresses"]),
            }
        )

    def to_environ(self) -> dict[str, str]:
        return {self.VARIABLE: self.to_json()}

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        """Register `--notify-run` as a locust option (`init_command_line_parser`); not in a
        group: locust's parser takes its keywords itself only."""
        parser.add_argument(
            "--notify-run",
            dest=cls.OPTION,
            env_var=cls.VARIABLE,
            default=None,
            include_in_web_ui=False,
        )

    @classmethod
    def from_options(cls, options: Any) -> LoadEnv:
        """The run from locust's parsed options; without it, say how to start locust."""
        text = getattr(options, cls.OPTION, None)
        if text is None:
            raise RuntimeError(
                f"locust started without --notify-run ({cls.VARIABLE}): run it through "
                "`python -m loadtests` (nox -s load), which sets the run's options"
            )
        return cls.from_json(text)
