"""`nox -s compare`: the same load over WebSocket, SSE shared and SSE per-connection, side by side.

    python -m loadtests.compare --users 2000,12000 [--duration 30] [--rate 500]
    python -m loadtests.compare --target URL --jwt-secret S [--redis-url URL] [--server-pid PID]

Each mode runs through nginx with Redis (so all three pay for the same stack), once per N.
Against a target, WebSocket and the target's own SSE (whatever PubSub mode it runs) are compared;
`--redis-url` shows its Redis connections. The report has a verdict line for each claim of the
seed's comparison table, and says at which N each mode broke and how.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from harness.render import render
from harness.reports import redacted
from harness.stack import StackError
from loadtests import target_options
from loadtests.config import BudgetError, RunConfig, from_profile
from loadtests.run import NO_PROBES, LoadError, Probes, run
from notify_client.target import Target
from notify_contract.verdicts import Need

MODES: dict[str, dict[str, Any]] = {
    "websocket": {"scenario": "fanout", "sse_mode": "shared"},
    "sse-shared": {"scenario": "sse", "sse_mode": "shared"},
    "sse-per-connection": {"scenario": "sse", "sse_mode": "per-connection"},
}
# A target runs what it runs: its WebSocket side and its SSE side.
TARGET_MODES: dict[str, dict[str, Any]] = {
    "websocket": {"scenario": "fanout"},
    "sse": {"scenario": "sse"},
}
METRICS = [
    ("redis_clients_max", "Redis connections (max)", ""),
    ("redis_pubsub_clients_max", "Redis PubSub connections (max)", ""),
    ("redis_clients_after", "Redis connections after the clients left", ""),
    ("mem_per_conn_kb", "server memory per connection", "KB"),
    ("server_fds_max", "server open files (max)", ""),
    ("cpu_us_per_msg", "server CPU per delivered frame", "µs"),
    ("p50_ms", "delivery latency p50", "ms"),
    ("p99_ms", "delivery latency p99", "ms"),
    ("connect_p50_ms", "connect time p50", "ms"),
    ("connect_failures", "connect failures", ""),
    ("unexpected_closes", "unexpected closes", ""),
    ("lost", "notifications lost", ""),
    ("connections_held", "WebSocket streams held (stats)", ""),
]


def one(
    mode: str,
    users: int,
    base: RunConfig,
    out: Path,
    target: Target | None = None,
    probes: Probes = NO_PROBES,
) -> dict[str, Any]:
    """Run one mode at N users; its figures, or why it could not run."""
    modes = MODES if target is None else TARGET_MODES
    if target is not None and mode == "sse" and target.lacks(Need.SSE):
        return {
            "mode": mode,
            "users": users,
            "error": "not applicable: the target declares no SSE",
            "applicable": False,
        }
    config = replace(base, users=users, redis=target is None, **modes[mode])
    try:
        outcome = run(config, out, name=f"{mode}-{users}", target=target, probes=probes)
    except (BudgetError, LoadError, StackError) as exc:
        return {"mode": mode, "users": users, "error": str(exc)}
    data = json.loads((outcome.directory / "summary.json").read_text())
    empty = nothing_measured(data["figures"])
    if empty is not None:
        return {"mode": mode, "users": users, "run": outcome.directory.name, "error": empty}
    return {
        "mode": mode,
        "users": users,
        "run": outcome.directory.name,
        **data["resources"],
        **data["figures"],
        "missed": [text for ok, text in outcome.verdicts if not ok],
    }


def problems(result: dict[str, Any]) -> list[str]:
    """Why one mode's run fails the comparison: it did not run, or missed a threshold (the
    load run's defaults: nothing lost, misrouted or never connected)."""
    if result.get("applicable") is False:
        return []
    if "error" in result:
        return [str(result["error"])]
    return list(result.get("missed", []))


def nothing_measured(figures: dict[str, Any]) -> str | None:
    """Why a run's figures mean nothing (no stream connected), or None."""
    if not figures.get("streams_connected"):
        return "no stream connected: nothing was measured"
    return None


REDIS_MAXCLIENTS = 10_000  # redis-server's default, which these runs keep


def derive(result: dict[str, Any]) -> dict[str, Any]:
    """Figures the run could not take from the stats, which count only WebSocket streams."""
    if "error" in result or result["mode"] == "websocket":
        return result
    # The server's stream counts are WebSocket streams: for SSE they are not measured, not 0.
    out = dict(result, connections_held=None, peak_connections=None)
    if out.get("mem_per_conn_kb") is None and out.get("server_rss_hold_mb") is not None:
        grown = out["server_rss_hold_mb"] - out["server_rss_baseline_mb"]
        out["mem_per_conn_kb"] = round(grown * 1024 / out["users"], 2)
    return out


def causes(result: dict[str, Any]) -> list[str]:
    """Which limit a run ran into, from its resources."""
    found = []
    if (result.get("redis_clients_max") or 0) >= 0.98 * REDIS_MAXCLIENTS:
        found.append(f"Redis reached maxclients ({REDIS_MAXCLIENTS})")
    if (result.get("server_fds_max") or 0) >= 0.99 * 20_000:
        found.append("the server reached its 20000 open-file limit")
    return found


def broke(result: dict[str, Any]) -> str | None:
    """Why this run counts as broken, or None."""
    if "error" in result:
        return str(result["error"])
    reasons = [
        f"{result[k]} {label}"
        for k, label in (
            ("connect_failures", "connect failures"),
            ("unexpected_closes", "unexpected closes"),
            ("lost", "notifications lost"),
        )
        if result.get(k)
    ]
    if reasons:
        reasons += causes(result)
    if reasons and result.get("generator_saturated") and not causes(result):
        reasons.append("the generator was saturated: inconclusive")
    return ", ".join(reasons) or None


def modes_of(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return TARGET_MODES if any(r["mode"] == "sse" for r in results) else MODES


def _lat(result: dict[str, Any]) -> str:
    """Delivery p50/p99 of one mode, or "not measured" (no notification carried a send time)."""
    p50, p99 = result.get("p50_ms"), result.get("p99_ms")
    return "not measured" if p50 is None or p99 is None else f"{p50}/{p99} ms"


def target_verdicts(results: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The seed's claims on a target: its WebSocket side against its own SSE side."""
    by = {(r["mode"], r["users"]): r for r in results if "error" not in r}
    smallest = min((r["users"] for r in results), default=0)
    ws, sse = by.get(("websocket", smallest), {}), by.get(("sse", smallest), {})
    pubsub = sse.get("redis_pubsub_clients_max")
    why = next((r["error"] for r in results if r["mode"] == "sse" and "error" in r), None)
    if why is not None:
        return [
            ("SSE against WebSocket", f"SSE {why}; nothing to compare"),
            (
                "Nothing lost (the clients' count)",
                f"WebSocket lost {ws.get('lost')} of {ws.get('owed')}; delivery p50/p99 "
                f"{_lat(ws)} at {smallest} clients",
            ),
        ]
    return [
        (
            "Redis PubSub connections per SSE client (needs --redis-url)",
            f"at {smallest} clients ({sse.get('streams_connected')} SSE streams connected) Redis "
            f"held {pubsub} PubSub connections for SSE, {ws.get('redis_pubsub_clients_max')} for "
            "WebSocket"
            if pubsub is not None
            else "not measured: give --redis-url",
        ),
        (
            "Real-time: SSE good, WebSocket better",
            f"delivery p50/p99 at {smallest} clients: WebSocket {_lat(ws)}, SSE {_lat(sse)}",
        ),
        (
            "Nothing lost (the clients' count)",
            f"WebSocket lost {ws.get('lost')} of {ws.get('owed')}, SSE lost {sse.get('lost')} "
            f"of {sse.get('owed')}",
        ),
    ]


def verdicts(results: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """One line per claim of the seed's table, from what the runs measured."""
    if modes_of(results) is TARGET_MODES:
        return target_verdicts(results)
    by = {(r["mode"], r["users"]): r for r in results if "error" not in r}
    smallest = min((r["users"] for r in results), default=0)
    ws, shared, per = (by.get((m, smallest), {}) for m in MODES)
    lines = []
    pc, wsp = per.get("redis_pubsub_clients_max"), ws.get("redis_pubsub_clients_max")
    lines.append(
        (
            "Connection management: every SSE connection creates its own PubSub connection",
            f"confirmed at {smallest} clients: SSE per-connection held {pc} Redis PubSub "
            f"connections, SSE shared {shared.get('redis_pubsub_clients_max')}, WebSocket {wsp}"
            if pc is not None
            else "not measured",
        )
    )
    lines.append(
        (
            "Redis connections: no pool, leaks easily / WebSocket needs no Redis PubSub",
            f"at {smallest} clients Redis held at most {per.get('redis_clients_max')} connections "
            f"(SSE per-connection) vs {ws.get('redis_clients_max')} (WebSocket); after the clients "
            f"left: {per.get('redis_clients_after')} vs {ws.get('redis_clients_after')}",
        )
    )
    lines.append(
        (
            "Real-time: SSE good, WebSocket better",
            f"delivery p50/p99 at {smallest} clients: WebSocket {_lat(ws)}"
            f", SSE shared {_lat(shared)}, "
            f"SSE per-connection {_lat(per)}",
        )
    )
    breaks = []
    for mode in modes_of(results):
        runs = sorted((r for r in results if r["mode"] == mode), key=lambda r: r["users"])
        first = next((r for r in runs if broke(r)), None)
        top = max((r["users"] for r in runs if not broke(r)), default=None)
        breaks.append(
            f"{mode}: "
            + (
                f"broke at {first['users']} ({broke(first)})"
                if first
                else f"held every N tried (up to {top})"
            )
        )
    lines.append(
        (
            "Connection count: SSE limited by Redis connections, WebSocket only by the server",
            "; ".join(breaks),
        )
    )
    lines.append(
        (
            "Direction: one-way / two-way",
            "a protocol property, not a load figure: the contract suite's ping-pong case",
        )
    )
    lines.append(
        (
            "Automatic reconnect: browser / by hand",
            "not a load figure: notify_contract/reconnect.py implements docs/contract.md 7 and "
            "notify_contract/tests/test_reconnect.py checks it",
        )
    )
    return lines


def write(out: Path, results: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    results = [derive(r) for r in results]
    modes = modes_of(results)
    sizes = sorted({r["users"] for r in results})
    (out / "compare.json").write_text(json.dumps({**meta, "results": results}, indent=2) + "\n")
    images = []
    for key, label, unit in METRICS[:9]:
        fig, ax = plt.subplots(figsize=(7, 3))
        width = 0.8 / len(modes)
        for i, mode in enumerate(modes):
            vals = [
                next(
                    (
                        r.get(key) or 0
                        for r in results
                        if r["mode"] == mode and r["users"] == n and "error" not in r
                    ),
                    0,
                )
                for n in sizes
            ]
            ax.bar([j + i * width for j in range(len(sizes))], vals, width, label=mode)
        ax.set_xticks([j + width for j in range(len(sizes))], [f"{n} clients" for n in sizes])
        ax.set_ylabel(f"{label} ({unit})" if unit else label, fontsize=8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"{key}.png"
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        images.append((name, label))
    columns = [(m, n) for n in sizes for m in modes]
    table = []
    for key, label, unit in METRICS:
        cells = []
        for m, n in columns:
            r = next((r for r in results if r["mode"] == m and r["users"] == n), {})
            value = "did not run" if "error" in r else r.get(key)
            shown = f"{value} {unit}" if unit and value is not None and "error" not in r else value
            cells.append(str(shown))
        table.append((label, cells))
    runs = [
        {"mode": r["mode"], "users": r["users"], "error": r.get("error"), "run": r.get("run")}
        for r in results
    ]
    page = render(
        "loadtests",
        "compare.html",
        created=meta["created"],
        claims=verdicts(results),
        columns=columns,
        table=table,
        images=images,
        runs=runs,
        command=meta["command"],
    )
    (out / "report.html").write_text(page)
    md: list[str] = [
        "# SSE + Redis PubSub vs WebSocket",
        "",
        f"{meta['created']}",
        "",
        "| claim (seed) | measured |",
        "|---|---|",
    ]
    md += [f"| {c} | {v} |" for c, v in verdicts(results)]
    md += [
        "",
        "| figure | " + " | ".join(f"{m} {n}" for n in sizes for m in modes) + " |",
        "|---" * (1 + len(sizes) * len(modes)) + "|",
    ]
    for key, label, _ in METRICS:
        shown_values: list[str] = []
        for n in sizes:
            for m in modes:
                r = next((r for r in results if r["mode"] == m and r["users"] == n), {})
                shown_values.append("did not run" if "error" in r else str(r.get(key)))
        md.append(f"| {label} | " + " | ".join(shown_values) + " |")
    md += ["", f"Command: `{meta['command']}`", ""]
    (out / "summary.md").write_text("\n".join(md))
    return out


def main(argv: list[str] | None = None, prog: str = "python -m loadtests.compare") -> int:
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0],
        epilog="examples: %(prog)s --users 2000; %(prog)s --target http://127.0.0.1:8000 "
        '--jwt-secret "$JWT_SECRET" --server-pid 1234',
    )
    p.add_argument("--users", default="2000", help="comma-separated N to run, e.g. 2000,12000")
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--duration", type=float, default=30.0, help="hold after the ramp (s)")
    p.add_argument("--broadcast-interval", type=float, default=5.0)
    p.add_argument("--reports", type=Path, default=Path("reports"))
    target_options.add_arguments(p)
    p.add_argument(
        "--report-only",
        type=Path,
        metavar="DIR",
        help="render the report of an earlier comparison again from its compare.json",
    )
    args = p.parse_args(argv)
    if args.report_only is not None:
        saved = json.loads((args.report_only / "compare.json").read_text())
        results = saved.pop("results")
        write(args.report_only, results, saved)
        print(f"report: {args.report_only / 'report.html'}")
        return 0
    try:
        sizes = [int(n) for n in args.users.split(",")]
    except ValueError:
        p.error(f"--users must be whole numbers separated by commas, not {args.users!r}")
    try:
        target, probes = target_options.load_target(args)
    except ValueError as exc:
        print(f"loadtests.compare: {exc}", file=sys.stderr)
        return 2
    base = from_profile(
        "capacity",
        rate=args.rate,
        hold=args.duration,
        broadcast_interval=args.broadcast_interval,
        via_nginx=target is None,
    )
    created = datetime.now(UTC)
    out = args.reports / f"compare-{created.strftime('%Y%m%dT%H%M%SZ')}"
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for n in sizes:
        for mode in MODES if target is None else TARGET_MODES:
            print(f"== {mode} with {n} clients")
            results.append(one(mode, n, base, out, target, probes))
    meta = {
        "created": created.isoformat(),
        "command": shlex.join([*prog.split(), *redacted(sys.argv[1:] if argv is None else argv)]),
    }
    write(out, results, meta)
    print(f"report: {out / 'report.html'}")
    for claim, measured in verdicts(results):
        print(f"- {claim}: {measured}")
    failing = [(r, why) for r in results for why in problems(r)]
    for r, why in failing:
        print(f"FAIL {r['mode']} at {r['users']} clients: {why}")
    passing = [r for r in results if not problems(r) and r.get("applicable") is not False]
    absent = [r for r in results if r.get("applicable") is False]
    said = ", ".join(f"{r['mode']} at {r['users']}" for r in passing) or "none"
    if absent:
        said += "; not applicable: " + ", ".join(f"{r['mode']} at {r['users']}" for r in absent)
    print(f"result: {'fail' if failing else 'pass'} (passing: {said})")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
