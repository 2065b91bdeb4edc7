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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from loadtests import target_options
from loadtests.config import BudgetError, RunConfig, from_profile
from loadtests.figures import NONE_MEASURED, NOT_MEASURED, Figure, Figures, Table, in_table
from loadtests.run import NO_PROBES, LoadError, Probes, run
from notify_client.target import Target
from notify_contract.verdicts import Need
from notify_reports.folder import redacted, run_folder
from notify_reports.render import render
from notify_stack.stack import StackError

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


@dataclass(frozen=True)
class ModeRun:
    """One mode at one size: its figures, or why it did not run."""

    mode: str
    users: int
    figures: Figures = NONE_MEASURED
    run: str | None = None
    error: str | None = None
    applicable: bool = True  # False: the target declares it lacks this mode
    missed: tuple[str, ...] = ()  # the thresholds the run missed

    @property
    def ran(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str:
        return f"{self.mode} at {self.users}"

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "figures": self.figures.to_dict(), "missed": list(self.missed)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModeRun:
        """A saved row; a file from before the figure table kept the figures in the row."""
        return cls(
            data["mode"],
            data["users"],
            Figures.from_dict(data.get("figures", data)),
            data.get("run"),
            data.get("error"),
            data.get("applicable", True),
            tuple(data.get("missed", ())),
        )


def one(
    mode: str,
    users: int,
    base: RunConfig,
    out: Path,
    target: Target | None = None,
    probes: Probes = NO_PROBES,
) -> ModeRun:
    """Run one mode at N users; its figures, or why it could not run."""
    modes = MODES if target is None else TARGET_MODES
    if target is not None and mode == "sse" and target.lacks(Need.SSE):
        why = "not applicable: the target declares no SSE"
        return ModeRun(mode, users, error=why, applicable=False)
    config = replace(base, users=users, redis=target is None, **modes[mode])
    try:
        outcome = run(config, out, name=f"{mode}-{users}", target=target, probes=probes)
    except (BudgetError, LoadError, StackError) as exc:
        return ModeRun(mode, users, error=str(exc))
    name = outcome.directory.name
    empty = nothing_measured(outcome.figures)
    if empty is not None:
        return ModeRun(mode, users, run=name, error=empty)
    missed = tuple(text for ok, text in outcome.verdicts if not ok)
    return ModeRun(mode, users, outcome.figures, name, missed=missed)


def problems(result: ModeRun) -> list[str]:
    """Why one mode's run fails the comparison: it did not run, or missed a threshold (the
    load run's defaults: nothing lost, misrouted or never connected)."""
    if not result.applicable:
        return []
    if result.error is not None:
        return [result.error]
    return list(result.missed)


def nothing_measured(figures: Figures) -> str | None:
    """Why a run's figures mean nothing (no stream connected), or None."""
    if not figures.streams_connected:
        return "no stream connected: nothing was measured"
    return None


REDIS_MAXCLIENTS = 10_000  # redis-server's default, which these runs keep
FILE_LIMIT = 20_000  # this machine's open files per process


def derive(result: ModeRun) -> ModeRun:
    """Figures the run could not take from the stats, which count only WebSocket streams."""
    if not result.ran or result.mode == "websocket":
        return result
    # The server's stream counts are WebSocket streams: for SSE they are not measured, not 0.
    f = replace(result.figures, connections_held=None, peak_connections=None)
    if f.mem_per_conn_kb is None and f.server_rss_hold_mb is not None:
        grown = f.server_rss_hold_mb - (f.server_rss_baseline_mb or 0.0)
        f = replace(f, mem_per_conn_kb=round(grown * 1024 / result.users, 2))
    return replace(result, figures=f)


def causes(result: ModeRun) -> list[str]:
    """Which limit a run ran into, from its resources."""
    f, found = result.figures, []
    if (f.redis_clients_max or 0) >= 0.98 * REDIS_MAXCLIENTS:
        found.append(f"Redis reached maxclients ({REDIS_MAXCLIENTS})")
    if (f.server_fds_max or 0) >= 0.99 * FILE_LIMIT:
        found.append(f"the server reached its {FILE_LIMIT} open-file limit")
    return found


def broke(result: ModeRun) -> str | None:
    """Why this run counts as broken, or None."""
    if result.error is not None:
        return result.error
    f = result.figures
    counted = (
        (f.connect_failures, "connect failures"),
        (f.unexpected_closes, "unexpected closes"),
        (f.lost, "notifications lost"),
    )
    reasons = [f"{n} {label}" for n, label in counted if n]
    if reasons:
        reasons += causes(result)
    if reasons and f.generator_saturated and not causes(result):
        reasons.append("the generator was saturated: inconclusive")
    return ", ".join(reasons) or None


def modes_of(results: list[ModeRun]) -> dict[str, dict[str, Any]]:
    return TARGET_MODES if any(r.mode == "sse" for r in results) else MODES


def _lat(f: Figures) -> str:
    """Delivery p50/p99 of one mode, or "not measured" (no notification carried a send time)."""
    return NOT_MEASURED if f.p50_ms is None or f.p99_ms is None else f"{f.p50_ms}/{f.p99_ms} ms"


def _at_smallest(results: list[ModeRun], mode: str) -> Figures:
    smallest = min((r.users for r in results), default=0)
    found = (r.figures for r in results if r.ran and (r.mode, r.users) == (mode, smallest))
    return next(found, NONE_MEASURED)


def target_verdicts(results: list[ModeRun]) -> list[tuple[str, str]]:
    """The seed's claims on a target: its WebSocket side against its own SSE side."""
    smallest = min((r.users for r in results), default=0)
    ws, sse = _at_smallest(results, "websocket"), _at_smallest(results, "sse")
    pubsub = sse.redis_pubsub_clients_max
    why = next((r.error for r in results if r.mode == "sse" and not r.ran), None)
    if why is not None:
        return [
            ("SSE against WebSocket", f"SSE {why}; nothing to compare"),
            (
                "Nothing lost (the clients' count)",
                f"WebSocket lost {ws.lost} of {ws.owed}; delivery p50/p99 "
                f"{_lat(ws)} at {smallest} clients",
            ),
        ]
    return [
        (
            "Redis PubSub connections per SSE client (needs --redis-url)",
            f"at {smallest} clients ({sse.streams_connected} SSE streams connected) Redis "
            f"held {pubsub} PubSub connections for SSE, {ws.redis_pubsub_clients_max} for "
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
            f"WebSocket lost {ws.lost} of {ws.owed}, SSE lost {sse.lost} of {sse.owed}",
        ),
    ]


def _breaks(results: list[ModeRun]) -> str:
    """At which N each mode broke, and how."""
    said = []
    for mode in modes_of(results):
        runs = sorted((r for r in results if r.mode == mode), key=lambda r: r.users)
        first = next((r for r in runs if broke(r)), None)
        top = max((r.users for r in runs if not broke(r)), default=None)
        held = f"held every N tried (up to {top})"
        said.append(f"{mode}: " + (f"broke at {first.users} ({broke(first)})" if first else held))
    return "; ".join(said)


def verdicts(results: list[ModeRun]) -> list[tuple[str, str]]:
    """One line per claim of the seed's table, from what the runs measured."""
    if modes_of(results) is TARGET_MODES:
        return target_verdicts(results)
    smallest = min((r.users for r in results), default=0)
    ws, shared, per = (_at_smallest(results, m) for m in MODES)
    pc, wsp = per.redis_pubsub_clients_max, ws.redis_pubsub_clients_max
    return [
        (
            "Connection management: every SSE connection creates its own PubSub connection",
            f"confirmed at {smallest} clients: SSE per-connection held {pc} Redis PubSub "
            f"connections, SSE shared {shared.redis_pubsub_clients_max}, WebSocket {wsp}"
            if pc is not None
            else NOT_MEASURED,
        ),
        (
            "Redis connections: no pool, leaks easily / WebSocket needs no Redis PubSub",
            f"at {smallest} clients Redis held at most {per.redis_clients_max} connections "
            f"(SSE per-connection) vs {ws.redis_clients_max} (WebSocket); after the clients "
            f"left: {per.redis_clients_after} vs {ws.redis_clients_after}",
        ),
        (
            "Real-time: SSE good, WebSocket better",
            f"delivery p50/p99 at {smallest} clients: WebSocket {_lat(ws)}"
            f", SSE shared {_lat(shared)}, SSE per-connection {_lat(per)}",
        ),
        (
            "Connection count: SSE limited by Redis connections, WebSocket only by the server",
            _breaks(results),
        ),
        (
            "Direction: one-way / two-way",
            "a protocol property, not a load figure: the contract suite's ping-pong case",
        ),
        (
            "Automatic reconnect: browser / by hand",
            "not a load figure: notify_contract/reconnect.py implements docs/contract.md 7 and "
            "notify_contract/tests/test_reconnect.py checks it",
        ),
    ]


def _cell(result: ModeRun | None, f: Figure) -> str:
    if result is None:
        return "did not run"
    return "did not run" if not result.ran else f.show(f.of(result.figures))


def _plots(out: Path, results: list[ModeRun], sizes: list[int]) -> list[tuple[str, str]]:
    """A bar chart per figure of the PLOT table: each mode side by side at each N."""
    modes, images = modes_of(results), []
    for f in in_table(Table.PLOT):
        fig, ax = plt.subplots(figsize=(7, 3))
        width = 0.8 / len(modes)
        for i, mode in enumerate(modes):
            by_size = {r.users: r for r in results if r.mode == mode and r.ran}
            vals = [(f.of(by_size[n].figures) or 0) if n in by_size else 0 for n in sizes]
            ax.bar([j + i * width for j in range(len(sizes))], vals, width, label=mode)
        ax.set_xticks([j + width for j in range(len(sizes))], [f"{n} clients" for n in sizes])
        ax.set_ylabel(f.heading, fontsize=8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        name = f"{f.key}.png"
        fig.savefig(out / name, dpi=90)
        plt.close(fig)
        images.append((name, f.label))
    return images


def write(out: Path, results: list[ModeRun], meta: dict[str, Any]) -> Path:
    results = [derive(r) for r in results]
    modes = modes_of(results)
    sizes = sorted({r.users for r in results})
    saved = {**meta, "results": [r.to_dict() for r in results]}
    (out / "compare.json").write_text(json.dumps(saved, indent=2) + "\n")
    images = _plots(out, results, sizes)
    columns = [(m, n) for n in sizes for m in modes]
    by = {(r.mode, r.users): r for r in results}
    table = [
        (f.label, [_cell(by.get(column), f) for column in columns]) for f in in_table(Table.COMPARE)
    ]
    claims = verdicts(results)
    page = render(
        "loadtests",
        "compare.html",
        created=meta["created"],
        claims=claims,
        columns=columns,
        table=table,
        images=images,
        runs=results,
        command=meta["command"],
    )
    (out / "report.html").write_text(page)
    md = ["# SSE + Redis PubSub vs WebSocket", "", f"{meta['created']}", ""]
    md += ["| claim (seed) | measured |", "|---|---|", *(f"| {c} | {v} |" for c, v in claims)]
    md += ["", "| figure | " + " | ".join(f"{m} {n}" for m, n in columns) + " |"]
    md += ["|---" * (1 + len(columns)) + "|"]
    md += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in table]
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
        results = [ModeRun.from_dict(r) for r in saved.pop("results")]
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
    out = run_folder(args.reports, "compare", created)
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
        print(f"FAIL {r.label} clients: {why}")
    passing = [r for r in results if not problems(r) and r.applicable]
    absent = [r for r in results if not r.applicable]
    said = ", ".join(r.label for r in passing) or "none"
    if absent:
        said += "; not applicable: " + ", ".join(r.label for r in absent)
    print(f"result: {'fail' if failing else 'pass'} (passing: {said})")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
