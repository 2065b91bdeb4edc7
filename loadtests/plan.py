"""`notify-harness plan`: how many hosts of which size each tier needs, from measured costs.

    notify-harness plan --streams 1000000 --broadcasts-per-s 0.2 [--personal-per-s 100]
                        [--from reports/fanout-<UTC> ...] [--host-cores 2] [--host-mem-gb 24]

The costs come from load runs' `summary.json` (the newest committed `fanout` run with the
server's default settings when no `--from` is given): CPU per delivered notification and memory
per stream of the servers, nginx and the generator, and Redis CPU per published notification
when a run had Redis (shown, not sized: over a hold with a broadcast every 5 s, Redis's CPU is
mostly work that does not grow with messages, so per message it would size Redis for nothing
it does). Every tier's hosts are the
largest of what its CPU, its memory and its descriptors need; the page says which limit
decided, and a tier whose cost no run measured is "not measured", never 0 hosts.

The CPU costs are of the source run's hold, idle traffic (heartbeats, pings) included at that
run's ratio of broadcasts to streams: a plan far from it (much rarer broadcasts) is less sure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from loadtests.config import FD_MARGIN, port_range
from loadtests.figures import NOT_MEASURED, Figures

REPORTS = Path(__file__).resolve().parent.parent / "reports"
DESCRIPTORS_PER_STREAM = {"servers": 1, "nginx": 2, "generator": 1}


@dataclass(frozen=True)
class Host:
    """One machine of a tier: its cores, memory and descriptors per process (one process per
    core), and the share of its CPU and memory a plan may fill."""

    cores: int = 2
    mem_gb: float = 24.0
    fds_per_process: int = 20_000
    headroom: float = 0.7


@dataclass(frozen=True)
class Load:
    streams: int
    broadcasts_per_s: float
    personal_per_s: float = 0.0

    @property
    def deliveries_per_s(self) -> float:
        """Notifications the clients receive a second (a personal one reaches one stream)."""
        return self.broadcasts_per_s * self.streams + self.personal_per_s


@dataclass(frozen=True)
class Cost:
    """What one tier costs, as measured (None: no run measured it)."""

    cpu_us: float | None  # per delivered notification
    kb_per_stream: float | None


@dataclass(frozen=True)
class Tier:
    name: str
    hosts: int | None  # None: not measured
    decided_by: str
    cores: float | None
    mem_gb: float | None
    descriptors: int


def costs(figures: Figures) -> dict[str, Cost]:
    return {
        "servers": Cost(figures.cpu_us_per_delivered, figures.mem_per_conn_kb),
        "nginx": Cost(figures.nginx_cpu_us_per_delivered, figures.nginx_mem_per_conn_kb),
        "generator": Cost(figures.generator_cpu_us_per_received, figures.generator_mem_per_conn_kb),
    }


def tier(name: str, cost: Cost, load: Load, host: Host) -> Tier:
    descriptors = DESCRIPTORS_PER_STREAM[name] * load.streams
    if cost.cpu_us is None or cost.kb_per_stream is None:
        return Tier(name, None, NOT_MEASURED, None, None, descriptors)
    cores = load.deliveries_per_s * cost.cpu_us / 1e6
    mem_gb = load.streams * cost.kb_per_stream / 2**20
    fds_per_host = host.cores * (host.fds_per_process - FD_MARGIN)
    needs = {
        "CPU": math.ceil(cores / (host.cores * host.headroom)),
        "memory": math.ceil(mem_gb / (host.mem_gb * host.headroom)),
        "descriptors": math.ceil(descriptors / fds_per_host),
    }
    limit = max(needs, key=lambda k: needs[k])
    return Tier(name, max(1, needs[limit]), limit, cores, mem_gb, descriptors)


def plan(load: Load, figures: Figures, host: Host) -> list[Tier]:
    return [tier(name, cost, load, host) for name, cost in costs(figures).items()]


def source_addresses(load: Load, entries: int) -> int:
    """Generator source addresses (127.0.0.x, or real ones) for the ephemeral ports: one
    address reaches one destination through at most the port range."""
    per_destination = math.ceil(load.streams / max(1, entries))
    return math.ceil(per_destination / port_range())


def newest_committed(instances: int | None = None) -> Path | None:
    """The newest committed `fanout` run with the server's settings as they ship (a run with
    pings off, say, would plan for less than a deployment costs); with `instances`, one that
    ran that many server processes (two share the Redis bus: each costs more per delivery)."""
    for path in sorted(REPORTS.glob("fanout-*/summary.json"), reverse=True):
        config = json.loads(path.read_text()).get("config") or {}
        if config.get("server_settings"):
            continue
        if instances is None or config.get("instances") == instances:
            return path
    return None


def read(path: Path) -> tuple[Figures, str]:
    """A run's figures and where they come from (its folder and commit)."""
    file = path / "summary.json" if path.is_dir() else path
    data = json.loads(file.read_text())
    figures = Figures.from_dict(data.get("figures", data))
    commit = (data.get("environment") or {}).get("git_commit") or "unknown commit"
    return figures, f"{file.parent.name} ({str(commit)[:7]})"


def merged(runs: list[Figures]) -> Figures:
    """Each cost from the last run that measured it."""
    values: dict[str, object] = {}
    for figures in runs:
        for key, value in figures.to_dict().items():
            if value is not None:
                values[key] = value
    return Figures.from_dict(values)


def render(
    load: Load, host: Host, tiers: list[Tier], sources: list[str], figures: list[Figures]
) -> str:
    def shown(value: float | None, unit: str) -> str:
        return NOT_MEASURED if value is None else f"{value:,.2f} {unit}"

    lines = [
        f"plan: {load.streams:,} streams, {load.broadcasts_per_s:g} broadcasts/s, "
        f"{load.personal_per_s:g} personal notifications/s: "
        f"{load.deliveries_per_s:,.0f} deliveries/s",
        f"hosts of {host.cores} cores and {host.mem_gb:g} GB, filled to {host.headroom:.0%}, "
        f"{host.fds_per_process:,} descriptors a process",
        f"costs from: {', '.join(sources)}",
        "",
        f"{'tier':<10} {'hosts':>12}  {'decided by':<12} {'CPU':>14} {'memory':>12} "
        f"{'descriptors':>12}",
    ]
    for t in tiers:
        hosts = NOT_MEASURED if t.hosts is None else str(t.hosts)
        lines.append(
            f"{t.name:<10} {hosts:>12}  {t.decided_by:<12} {shown(t.cores, 'cores'):>14} "
            f"{shown(t.mem_gb, 'GB'):>12} {t.descriptors:>12,}"
        )
    redis = [f.redis_cpu_us_per_published for f in figures if f.redis_cpu_us_per_published]
    lines += [
        "",
        "redis      not sized: "
        + (
            f"{redis[-1]:,.0f} µs of its CPU per published notification in the source run's "
            "hold, most of it work that does not grow with messages"
            if redis
            else "no source run had Redis (--instances 2 or --redis)"
        ),
    ]
    # The generator connects to nginx (or, without it, to the servers): one address each.
    per_tier = {t.name: t.hosts for t in tiers}
    entries = per_tier.get("nginx") or per_tier.get("servers") or 1
    lines += [
        "",
        f"generator source addresses: {source_addresses(load, entries)} "
        f"(at most {port_range():,} ports from one address to one entry address)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "notify-harness plan") -> int:
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0],
        epilog=f"example: {prog} --streams 1000000 --broadcasts-per-s 0.2 --personal-per-s 100",
    )
    p.add_argument("--streams", type=int, required=True, help="streams held at once")
    p.add_argument("--broadcasts-per-s", type=float, required=True, metavar="B")
    p.add_argument("--personal-per-s", type=float, default=0.0, metavar="P")
    p.add_argument(
        "--from",
        dest="sources",
        type=Path,
        action="append",
        metavar="REPORT",
        default=[],
        help="a load run's folder or summary.json (repeatable; default: newest committed)",
    )
    p.add_argument("--host-cores", type=int, default=Host.cores)
    p.add_argument("--host-mem-gb", type=float, default=Host.mem_gb)
    p.add_argument("--fds-per-process", type=int, default=Host.fds_per_process)
    p.add_argument("--headroom", type=float, default=Host.headroom, help="share of CPU/memory")
    args = p.parse_args(argv)
    if args.streams <= 0 or args.broadcasts_per_s < 0 or args.personal_per_s < 0:
        p.error("--streams must be > 0, the rates >= 0")
    if not 0 < args.headroom <= 1:
        p.error(f"--headroom {args.headroom}: between 0 and 1")
    paths = args.sources or [newest_committed()]
    if paths == [None]:
        p.error(f"no --from given and no committed run in {REPORTS}")
    runs = []
    for path in paths:
        try:
            runs.append(read(path))
        except (OSError, ValueError) as exc:
            p.error(f"--from {path}: {exc}")
    load = Load(args.streams, args.broadcasts_per_s, args.personal_per_s)
    host = Host(args.host_cores, args.host_mem_gb, args.fds_per_process, args.headroom)
    tiers = plan(load, merged([f for f, _ in runs]), host)
    print(render(load, host, tiers, [source for _, source in runs], [f for f, _ in runs]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
