"""One load run: check the budget, start the stack and locust (master + workers), sample,
summarise, report. Everything started here is stopped here."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests import latencies, report, summary
from loadtests.config import SCENARIO_USERS, LoadEnv, RunConfig, check_budget, open_file_limit
from loadtests.figures import Figures, shown
from loadtests.generator_hosts import HostCost, generator_hosts, workers_lost
from loadtests.run_files import HERDS
from loadtests.sampler import LOOP_LAG, Sampler, Watched
from notify_client.ledger import Tally
from notify_client.options import BY_NAME, flag_of
from notify_client.target import Target
from notify_contract.protocol import STATS_PATH
from notify_contract.redaction import leak_line, scrub
from notify_contract.tokens import Minter
from notify_contract.verdicts import Need
from notify_reports.folder import redacted, run_folder
from notify_stack.stack import StackSpec, free_port, scratch_dir, stack

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
SETTLE = 5.0  # seconds between the end of the ramp and the first publish


class LoadError(RuntimeError):
    """The run itself failed (not the system under test); the message says how."""


def stack_spec(config: RunConfig) -> StackSpec:
    """redis-server (when needed), the server instances, nginx in front (unless direct)."""
    limit = open_file_limit()
    return StackSpec(
        settings={
            "WS_HEARTBEAT_INTERVAL": f"{config.heartbeat_interval:g}",
            "SSE_PUBSUB_MODE": config.sse_mode,
            "WS_MAX_CONNECTIONS_PER_USER": "3",
            "REDIS_MAX_CONNECTIONS": str(max(1000, config.users + 100)),
            **config.server_settings,
        },
        instances=config.instances,
        redis=config.needs_redis,
        nginx=config.via_nginx,
        nginx_settings={
            "worker_processes": config.nginx_workers,
            "worker_rlimit_nofile": limit,
            "worker_connections": limit - 100,
            "backlog": 65535,
            # Every simulated user comes from a handful of loopback addresses, where real users
            # come from their own: the per-address limits would measure themselves, not nginx.
            "conns_per_address": None,
            "handshakes_per_second": None,
        },
        server_args=("--no-access-log",),
    )


@dataclass(frozen=True)
class Probes:
    """What a run may sample of a server it did not start."""

    server_pids: tuple[int, ...] = ()
    redis_url: str | None = None
    metrics: bool = False  # it serves the reference server's /api/ws/metrics (loop lag, ...)


NO_PROBES = Probes()

# The target options a load run acts on; the others describe the target for the contract suite
# and the faults, and a run that was given one says it does not use it.
USED = frozenset(
    flag_of(BY_NAME[name])
    for name in ("url", "jwt_secret", "jwt_alg", "token_cmd", "token_in", "driver_cmd", "without")
)


@dataclass
class System:
    """What the run measures: where clients go, the key their tokens are signed with, the
    processes watched, and why server resources are not measured (None: they are)."""

    entry: str
    secret: str
    watched: Watched
    driver_cmd: str | None
    unmeasured: str | None


@contextlib.contextmanager
def system(
    config: RunConfig, logs: Path, target: Target | None, probes: Probes
) -> Iterator[System]:
    """The reference stack (started and stopped here), or the user's target as it is."""
    if target is None:
        with stack(logs, stack_spec(config)) as st:
            watched = Watched(
                servers={s.process.pid: s.base for s in st.servers},
                nginx_master=st.proxy.process.pid if st.proxy else None,
                redis_pid=st.redis.process.pid if st.redis else None,
                redis_url=st.redis.url if st.redis else None,
                generators=[],
                status_url=st.proxy.status_url if st.proxy else None,
                admin_token=Minter(st.secret).mint("load-admin", admin=True, ttl=86400),
            )
            yield System(st.entry, st.secret, watched, None, None)
        return
    minter = target.minter
    if minter is None:
        raise ValueError("a load run against --target needs --jwt-secret")
    watched = Watched(
        servers={pid: target.base if probes.metrics else None for pid in probes.server_pids},
        nginx_master=None,
        redis_pid=None,
        redis_url=probes.redis_url,
        generators=[],
        status_url=None,
        admin_token=minter.mint("load-admin", admin=True, ttl=86400),
        stats_url=None if target.lacks(Need.STATS) else target.base.rstrip("/") + STATS_PATH,
    )
    unmeasured = (
        None
        if probes.server_pids
        else "server resources not measured: this run did not start the server; give "
        "--server-pid PID (repeatable) for its processes"
    )
    yield System(target.base, minter.key, watched, target.driver_cmd, unmeasured)


def locust_commands(
    config: RunConfig, port: int, csv_prefix: Path
) -> tuple[list[str], list[list[str]]]:
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    fixed = 1 if config.scenario in ("fanout", "personal", "sse") else 0
    classes = list(SCENARIO_USERS[config.scenario])  # locust runs the user classes named
    users, rate = config.users + fixed, config.rate
    if "HerdUser" in classes:  # one herd per worker, all at once; each paces its own streams
        users = rate = config.all_workers + fixed
    master = [
        *base,
        "--headless",
        "--master",
        "--master-bind-host",
        config.master_bind,
        "--master-bind-port",
        str(port),
        "--expect-workers",
        str(config.all_workers),
        "-u",
        str(users),
        "-r",
        f"{rate:g}",
        "-t",
        f"{round(config.duration + SETTLE)}s",
        "--stop-timeout",
        "15",
        "--csv",
        str(csv_prefix),
        "--only-summary",
    ]
    # This host's workers reach the master where it listens; on every address: on loopback.
    local = "127.0.0.1" if config.master_bind in ("0.0.0.0", "*", "") else config.master_bind  # noqa: S104
    worker = [*base, "--worker", "--master-host", local, "--master-port", str(port)]
    return [*master, *classes], [[*worker, *classes]] * config.generator_workers


@dataclass
class LoadRun:
    directory: Path
    figures: Figures
    verdicts: list[tuple[bool, str]]

    @property
    def ok(self) -> bool:
        return all(ok for ok, _ in self.verdicts)


@dataclass
class Measured:
    """What a run's processes and clients left: the samples, and when the hold was."""

    rows: list[dict[str, Any]]
    baseline: dict[str, Any]
    after: dict[str, Any]
    hold_from: float
    hold_until: float
    unmeasured: str | None
    sampler_errors: list[str]


def run(
    config: RunConfig,
    reports: Path,
    *,
    name: str | None = None,
    progress: Callable[[str], None] = print,
    target: Target | None = None,
    probes: Probes = NO_PROBES,
) -> LoadRun:
    """Run `config` against the reference stack, or against `target`; write
    reports/<name or scenario>-<UTC>/; return the figures."""
    if target is not None and config.scenario == "sse" and target.lacks(Need.SSE):
        raise ValueError("the target declares no SSE (--without sse): the sse scenario cannot run")
    budget = check_budget(config, ours=target is None)
    thresholds = summary.applied(config.thresholds)
    created = datetime.now(UTC)
    out = run_folder(reports, name or config.scenario, created)
    out.mkdir(parents=True, exist_ok=True)
    progress(
        f"run: {config.scenario}, {config.users} users at {config.rate:g}/s, hold "
        f"{config.hold:g}s -> {out}"
    )
    for line in budget:
        progress(f"budget: {line}")
    if target is not None:
        progress(f"target: {target.url} (not started by this run)")
        ignored = [flag for flag in target.given if flag not in USED]
        if ignored:
            progress(f"not used by a load run: {', '.join(ignored)} (they are the suite's)")
    measured = _measure(config, out, target, probes, progress)
    if not (out / "locust_stats.csv").exists():
        tail = (out / "locust-master.log").read_text(errors="replace")[-2000:]
        raise LoadError(f"locust wrote no statistics; the end of its log:\n{tail}")
    stats = summary.read_stats(out / "locust_stats.csv")
    fails = summary.failures(summary.read_failures(out / "locust_failures.csv"))
    tally, published = summary.read_tally(out)
    timed = latencies.read(out)
    broadcasts = summary.per_broadcast(timed, published, tally)
    m = measured
    res = summary.resources(m.rows, m.baseline, m.hold_from, m.hold_until, tally.streams)
    res = summary.leftovers(res, m.baseline, m.after)
    figures = summary.headline(stats, fails, broadcasts, res, tally, timed)
    hosts = generator_hosts(out, m.hold_from, m.hold_until)
    figures = of_workers(figures, hosts, config, out, tally)
    verdicts = [t.check(figures) for t in thresholds] + nothing_ran(config, figures)
    verdicts += too_little_room(out)
    data = {
        "created": created.isoformat(),
        "config": config.to_dict(),
        "budget": budget,
        "figures": figures.to_dict(),
        "failures": fails,
        "each_broadcast": [asdict(b) for b in broadcasts],
        "lost_sample": [list(pair) for pair in tally.lost_sample],
        "generator_hosts": [asdict(h) for h in hosts],
        "hold": {"from": m.hold_from, "until": m.hold_until},  # wall clock
        "thresholds": [{"ok": ok, "text": text} for ok, text in verdicts],
        "target": None if target is None else target.base,
        "server_resources": m.unmeasured or "measured",
        "sampler_errors": m.sampler_errors[:20],
        "environment": report.environment(),
        "command": " ".join(redacted(sys.argv)),
    }
    (out / "summary.json").write_text(json.dumps(data, indent=2) + "\n")
    report.write(out, data, figures, broadcasts, m.rows, m.baseline)
    leaked = leak_line(out)  # checked on what was written, so after summary.json
    if leaked is not None:
        verdicts.append((False, leaked))
    progress("headline (the clients' counts; server figures where measured):")
    for label, value in shown(figures):
        progress(f"  {label:<58} {value}")
    for h in hosts:  # each worker's own samples: its host's share of the generator's cost
        cpu = "not measured" if h.cpu_seconds_in_hold is None else f"{h.cpu_seconds_in_hold} s"
        progress(f"  generator worker {h.origin}: CPU of the hold {cpu}, {h.rss_mb:.1f} MB")
    for _, text in verdicts:
        progress(f"threshold {text}")
    progress(f"report: {out / 'report.html'}")
    return LoadRun(out, figures, verdicts)


def _measure(
    config: RunConfig,
    out: Path,
    target: Target | None,
    probes: Probes,
    progress: Callable[[str], None],
) -> Measured:
    """Start (or find) the system, run locust at it while sampling, stop; what was seen."""
    with scratch_dir("load-") as logs, system(config, logs, target, probes) as st:
        if st.unmeasured:
            progress(st.unmeasured)
        watched = st.watched
        sampler = Sampler(watched, out)
        baseline = sampler.sample_now()
        publish_from = time.time() + config.ramp + SETTLE
        # Nothing is published in the last seconds: users stopping must not count as lost.
        publish_until = publish_from + config.hold - max(3.0, config.broadcast_interval)
        env = LoadEnv(
            target=st.entry,
            secret=st.secret,
            scenario=config.scenario,
            run_dir=out,
            publish_from=publish_from,
            publish_until=publish_until,
            broadcast_interval=config.broadcast_interval,
            publish_rate=config.publish_rate,
            users=config.users,
            rate=config.rate,
            generator_workers=config.all_workers,
            churn_hold=config.churn_hold,
            # 127.0.0.x addresses are this host's: a remote worker connects from its own.
            source_addresses=() if config.remote_workers else config.source_addresses,
            driver_cmd=st.driver_cmd or "",
            offer_compression=config.offer_compression,
            stats_cross_check=config.stats_cross_check,
        ).to_environ()
        port = config.master_port or free_port(config.master_bind)
        master_cmd, worker_cmds = locust_commands(config, port, out / "locust")
        if config.remote_workers:
            progress(
                f"waiting for {config.remote_workers} remote worker(s): on each host run "
                f"`notify-harness worker --master {config.master_bind}:{port}`"
            )
        procs = _start_locust(master_cmd, worker_cmds, env, logs)
        watched.generators = [p.pid for p in procs]
        sampler.start()
        try:
            _follow(procs[0], sampler, config, progress)
        finally:
            _stop(procs)
            sampler.stop()
        after = _after(sampler)
        keep_logs(logs, out)
    hold_until = publish_until + config.broadcast_interval
    return Measured(
        sampler.rows, baseline, after, publish_from, hold_until, st.unmeasured, sampler.errors
    )


def of_workers(
    figures: Figures, hosts: list[HostCost], config: RunConfig, out: Path, tally: Tally
) -> Figures:
    """What the workers reported of themselves: lost workers, streams no worker reported (herds
    hold a fixed number: each one missing was lost with its worker) and, with workers on other
    hosts, the generator's cost from each worker's own samples."""
    if config.remote_workers:  # the sampler sees this host's processes only
        figures = remote_generator(hosts, config, figures)
    held = config.users if "HerdUser" in SCENARIO_USERS[config.scenario] else None
    unreported = None if held is None else max(0, held - tally.streams - tally.never_connected)
    return replace(figures, generator_workers_lost=workers_lost(out), unreported_streams=unreported)


def remote_generator(hosts: list[HostCost], config: RunConfig, figures: Figures) -> Figures:
    """The generator's cost over every host, from each worker's own samples: summed when every
    worker sampled the hold, else not measured (never this host's share as the whole). The
    sampler's per-process maximum and saturation are this host's only: not measured."""
    cpu = [h.cpu_seconds_in_hold for h in hosts]
    rss = [h.rss_mb for h in hosts]
    whole = len(hosts) >= config.all_workers and None not in cpu and None not in rss
    total_cpu = sum(c or 0 for c in cpu) if whole else None
    streams = figures.streams_connected or 0
    return replace(
        figures,
        generator_cpu_seconds_in_hold=total_cpu,
        generator_cpu_us_per_received=(
            round(total_cpu * 1e6 / figures.delivered, 2)
            if total_cpu and figures.delivered
            else None
        ),
        generator_mem_per_conn_kb=(
            round(sum(r or 0 for r in rss) * 1024 / streams, 2) if whole and streams else None
        ),
        generator_cpu_max_percent=None,
        generator_saturated=None,
    )


def keep_logs(logs: Path, out: Path, tail: int = 20_000) -> None:
    """The end of every log of the run (locust, servers, nginx's error log, redis) in the
    report's folder: an unexpected close or a refused connect is explained there."""
    for log in sorted(logs.rglob("*.log")):
        if log.name == "access.log":
            continue
        name = "-".join(log.relative_to(logs).parts)
        (out / name).write_text(scrub(log.read_text(errors="replace")[-tail:]))


def nothing_ran(config: RunConfig, figures: Figures) -> list[tuple[bool, str]]:
    """A run in which no stream connected, or nothing was published where the scenario
    publishes, shows nothing: it fails whatever thresholds it was given."""
    missed = []
    if config.scenario in ("idle", "fanout", "personal", "sse") and not figures.streams_connected:
        missed.append((False, "streams_connected > 0: 0 (MISSED: nothing was measured)"))
    if config.scenario in ("fanout", "personal", "sse") and not figures.published:
        missed.append((False, "published > 0: 0 (MISSED: nothing was published)"))
    return missed


def too_little_room(out: Path) -> list[tuple[bool, str]]:
    """The workers could hold fewer streams than the run's (`herds.json`): the run is not the
    one asked for, whatever its thresholds say."""
    herds = out / HERDS
    short = json.loads(herds.read_text())["shortfall"] if herds.exists() else 0
    if not short:
        return []
    return [(False, f"the workers could hold {short} streams fewer than the run's (herds.json)")]


def _start_locust(
    master: list[str], workers: list[list[str]], env: dict[str, str], logs: Path
) -> list[subprocess.Popen[bytes]]:
    import os

    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    procs = []
    for i, cmd in enumerate([master, *workers]):
        # The child keeps its own descriptor: this process's copy closes at once.
        with (logs / f"locust-{'master' if i == 0 else f'worker{i}'}.log").open("ab") as log:
            procs.append(
                subprocess.Popen(
                    cmd,
                    env=full_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )
    return procs


def _follow(
    master: subprocess.Popen[bytes],
    sampler: Sampler,
    config: RunConfig,
    progress: Callable[[str], None],
) -> None:
    """Print a progress line every 5 s until locust's master exits (bounded by the duration)."""
    deadline = time.monotonic() + config.duration + SETTLE + 120
    while master.poll() is None:
        if time.monotonic() > deadline:
            progress("locust did not stop in time; stopping it")
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            master.wait(5)
        row = sampler.latest
        if row:
            servers = row.get("servers", [])
            gen = max((g.get("cpu_percent", 0) for g in row.get("generators", [])), default=0)
            progress(
                f"  t={row['t']:>5.0f}s server's streams {_or_na(row.get('total_connections'))}/"
                f"{config.users}, {_server_line(servers)}  generator max {gen:.0f}% CPU"
            )


def _server_line(servers: list[dict[str, Any]]) -> str:
    """The sampled server processes' figures; none sampled (a target without --server-pid):
    "not measured", never zeros."""
    if not servers:
        return "server not measured (give --server-pid)"
    rss = sum(s.get("rss_mb", 0) for s in servers)
    cpu = sum(s.get("cpu_percent", 0) for s in servers)
    fds = sum(s.get("fds", 0) for s in servers)
    lags = [s[LOOP_LAG] for s in servers if s.get(LOOP_LAG) is not None]
    lag = f"loop lag {max(lags):.0f} ms" if lags else "loop lag not measured"
    return f"server files {fds}  server {rss:.0f} MB {cpu:.0f}% CPU, {lag}"


def _or_na(value: object) -> str:
    return "n/a" if value is None else str(value)


def _after(sampler: Sampler) -> dict[str, Any]:
    """A sample once the users are gone: streams back to zero (waited for, up to 15 s)."""
    deadline = time.monotonic() + 15
    row = sampler.sample_now()
    while (row.get("total_connections") or 0) > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        row = sampler.sample_now()
    return row


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate all at once, then wait (30 s in all), then kill what is left."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 30
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
