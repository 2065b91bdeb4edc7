"""`nox -s multihost`: the reference stack and the generator spread over simulated hosts.

    python -m notify_multihost [--users 10000] [--rate 500] [--hold 60] [--scope full|ci]
                               [--plan-from reports/fanout-<UTC>] [--reports reports]

Eleven network namespaces on one bridge (`notify_stack.hosts`): two Redis (the bus's two
partitions), two servers, nginx, three generator hosts, and three cluster nodes. It runs, in
order:
1. a fanout load through nginx from the three generator hosts (one master, two remote workers),
   while it samples every host's CPU and memory;
2. the same load, smaller, with one generator host's worker killed mid-run: the run must report
   the lost host and its streams, never shrink silently;
3. the cross-host fault rows (`notify_faults.across_hosts`) on a stack with 1 s heartbeats;
4. broadcast amplification on a three-node Redis Cluster, classic against sharded Pub/Sub.
Then it sets the plan's prediction for that load beside what each tier spent.

Exit 0 when the load lost nothing and every row held; 1 otherwise; 2 when hosts cannot be built
here (no root, no `ip`): a run that could not happen never passes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests import plan
from loadtests.config import RunConfig
from loadtests.figures import Figures
from loadtests.run import stack_spec
from notify_contract.tokens import Minter
from notify_faults.across_hosts import ROWS, Across, CrossRow
from notify_faults.registry import CI, FULL, Scale
from notify_faults.table import Row
from notify_faults.table import write as write_rows
from notify_multihost import amplification, report
from notify_multihost.amplification import Amplification
from notify_multihost.host_costs import HostSampler, TierCheck, check_tier, spend
from notify_multihost.load_run import LoadResult, LoadSize, run_load
from notify_multihost.topology import HOSTS, OnHosts, on_hosts, publish_calls, tier_hosts
from notify_reports.folder import environment, redacted, run_folder
from notify_stack import hosts
from notify_stack.stack import StackError, scratch_dir

FAULT_HEARTBEAT = 1.0  # the fault rows' servers: the watchdog notices a lost host in 2.5 s
LOST_HOST = "gen3"


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0],
        epilog=f"example: {prog} --users 3000 --scope ci",
    )
    # The capacity runs' sizes by default: the plan's costs come from one, at the same ratio of
    # broadcasts to streams.
    same = RunConfig()
    p.add_argument("--users", type=int, default=same.users, help="streams of the load run")
    p.add_argument("--rate", type=float, default=same.rate, help="streams opened a second")
    p.add_argument("--hold", type=float, default=same.hold, help="seconds of broadcasts")
    p.add_argument("--lost-users", type=int, default=900, help="streams of the lost-host run")
    p.add_argument("--scope", choices=["full", "ci"], default="full", help="fault rows' size")
    p.add_argument(
        "--plan-from",
        type=Path,
        help="the run the plan reads (default: the newest committed fanout run on two servers)",
    )
    p.add_argument("--reports", type=Path, default=Path("reports"))
    return p


def lost_host_row(result: LoadResult) -> Row:
    row = Row(
        "generator-host-lost",
        "fault",
        f"The generator worker on {LOST_HOST} killed (SIGKILL) after the first broadcast",
        "the run reports the lost host (generator_workers_lost 1) and counts its streams as "
        "unreported; the other hosts' streams lose nothing; the run exits non-zero",
    )
    figures = Figures.from_dict(result.summary.get("figures", {}))
    row.lost = figures.lost
    row.check(bool(result.summary), "the run wrote no summary.json")
    row.check(
        figures.generator_workers_lost == 1,
        f"lost workers: {figures.generator_workers_lost} (awaited 1)",
    )
    row.check((figures.unreported_streams or 0) > 0, "no stream counted as unreported")
    row.check(figures.lost == 0, f"{figures.lost} deliveries lost on the hosts that stayed")
    row.check(result.exit_code != 0, "the run exited 0 with a host lost")
    return row.finish(
        f"exit {result.exit_code}; generator_workers_lost {figures.generator_workers_lost}, "
        f"unreported streams {figures.unreported_streams}; streams reported per host "
        f"{result.streams_per_host}; lost {figures.lost} of {figures.owed} owed"
    )


async def fault_rows(
    stack: OnHosts,
    scale: Scale,
    declared_rows: tuple[CrossRow, ...] = ROWS,
    heartbeat: float = FAULT_HEARTBEAT,
) -> list[Row]:
    across = Across(
        stack.fabric,
        stack.entry,
        tuple(stack.host(n) for n in tier_hosts("servers")),
        stack.host(tier_hosts("redis")[0]),
        Minter(stack.secret),
        heartbeat,
    )
    rows = []
    for declared in declared_rows:
        row = declared.row()
        started = time.monotonic()
        print(f"fault row {row.id} ...", flush=True)
        try:
            row = await declared.run(across, scale, row)
        except Exception as exc:  # a row that breaks is a failed row, the run goes on
            row.check(False, f"{type(exc).__name__}: {exc}")
            row.finish("the row could not finish")
        row.duration_s = round(time.monotonic() - started, 1)
        print(f"  {row.outcome.value}: {row.observed} {'; '.join(row.problems)}", flush=True)
        rows.append(row)
    return rows


def bus_rows(publishes: list[int], load: LoadResult) -> list[dict[str, Any]]:
    """Each partition's PUBLISH commands during the load, beside the broadcasts published: a
    fanout load publishes nothing else, so each partition must show exactly one per broadcast."""
    published = Figures.from_dict(load.summary.get("figures", {})).published
    return [
        {"host": host, "partition": i, "publish_calls": n, "sent": published}
        for i, (host, n) in enumerate(zip(tier_hosts("redis"), publishes, strict=True))
    ]


def amplification_data(amplified: Amplification | str) -> dict[str, Any]:
    if isinstance(amplified, str):
        return {"not_measured": amplified}
    return {
        **asdict(amplified),
        "classic_per_message": amplified.classic_per_message,
        "sharded_per_message": amplified.sharded_per_message,
    }


def checks(result: LoadResult, samples: list[dict[str, Any]], source: Path) -> list[TierCheck]:
    """The plan's costs (from `source`) for this load, beside each tier's hosts over its hold."""
    costs = plan.costs(plan.read(source)[0])
    got = Figures.from_dict(result.summary.get("figures", {}))
    hold = result.summary.get("hold")
    spent = [] if not hold else spend(samples, hold["from"], hold["until"])
    return [
        check_tier(
            tier,
            tier_hosts(tier),
            costs[tier],
            spent,
            streams=got.streams_connected or 0,
            delivered=got.delivered or 0,
        )
        for tier in ("servers", "nginx", "generator")
    ]


def main(argv: list[str] | None = None, prog: str = "python -m notify_multihost") -> int:
    given = sys.argv[1:] if argv is None else argv
    if any(a.split("=")[0] in ("--target", "--target-file") for a in given):
        print(
            f"{prog}: builds its own hosts and stack; to load your server from several hosts "
            "run `notify-harness load --target URL --remote-workers N` and `notify-harness "
            "worker` on each host",
            file=sys.stderr,
        )
        return 2
    args = parser(prog).parse_args(argv)
    reason = hosts.unavailable()
    if reason is not None:
        print(f"{prog}: cannot simulate hosts here: {reason}", file=sys.stderr)
        return 2
    # The plan's costs from a run with as many servers on the Redis bus as here.
    source = args.plan_from or plan.newest_committed(len(tier_hosts("servers")))
    if source is None:
        print(f"{prog}: no committed fanout run for the plan; give --plan-from", file=sys.stderr)
        return 2
    created = datetime.now(UTC)
    out = run_folder(args.reports, "multihost", created)
    out.mkdir(parents=True)
    size = LoadSize(args.users, args.rate, args.hold)
    lost_size = LoadSize(args.lost_users, args.rate, min(args.hold, 20.0))
    # The capacity runs' settings (those of the run the plan reads), on two servers.
    config = RunConfig(users=args.users, rate=args.rate, hold=args.hold, instances=2)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # tear hosts down
    with scratch_dir("multihost-") as logs, hosts.fabric(list(HOSTS)) as fabric:
        with on_hosts(fabric, logs, stack_spec(config)) as stack:
            described = stack.describe()
            roots = stack.roots()
            with HostSampler(roots) as sampler:
                before = publish_calls(stack.redis)
                load = run_load(stack, size, out / "load", sampler)
                publishes = [b - a for a, b in zip(before, publish_calls(stack.redis), strict=True)]
                lost = run_load(
                    stack, lost_size, out / "lost-host", sampler, kill_at_hold=LOST_HOST
                )
        faults = replace(config, heartbeat_interval=FAULT_HEARTBEAT)
        with on_hosts(fabric, logs, stack_spec(faults)) as stack:
            rows = asyncio.run(fault_rows(stack, FULL if args.scope == "full" else CI))
        print("amplification: classic and sharded Pub/Sub on a three-node cluster ...", flush=True)
        try:
            amplified: Amplification | str = amplification.measure(fabric, logs)
        except StackError as exc:  # the rest of the run still has its report
            amplified = f"not measured: {exc}"
    rows.insert(0, lost_host_row(lost))
    tiers = checks(load, sampler.rows, source)
    meta = {
        "created": created.isoformat(),
        "command": " ".join(["python -m notify_multihost", *redacted(sys.argv[1:])]),
        "scope": args.scope,
        "environment": environment({}, ("websockets", "locust")),
    }
    write_rows(out, rows, meta)
    data = {
        **meta,
        "hosts": [
            dict(zip(("host", "tier", "address", "runs"), h, strict=True)) for h in described
        ],
        "load": {
            "folder": str(load.folder),
            "exit_code": load.exit_code,
            "streams_per_host": load.streams_per_host,
            "figures": load.summary.get("figures", {}),
        },
        "bus": bus_rows(publishes, load),
        "amplification": amplification_data(amplified),
        "plan_source": source.name if source.is_dir() else source.parent.name,
        "tiers": [{**asdict(t), "within": t.within} for t in tiers],
        "host_samples": sampler.rows,
    }
    (out / "multihost.json").write_text(json.dumps(data, indent=2) + "\n")
    page = report.write(out, data, tiers, rows)
    failed = report.failures(load, rows) + report.bus_failures(data["bus"])
    for line in failed:
        print(f"FAILED: {line}")
    print(f"report: {page}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
