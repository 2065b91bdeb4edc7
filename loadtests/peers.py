"""`nox -s peers`: the same generator, streams and broadcasts against four servers in turn.

    python -m loadtests.peers [--users 3000] [--duration 30] [--broadcast-interval 1]
                              [--only reference,floor] [--reports reports]

The peers (`PEERS`):
- `reference`: the reference server as it ships (`python -m reference_server`: uvloop when
  installed, prepared frames, compression off);
- `fastapi-default`: the same app as a FastAPI user deploys it by default
  (`uvicorn reference_server.app:create_app --factory`: asyncio loop, uvicorn's WebSocket
  protocol with permessage-deflate on, none of our protocol classes);
- `websockets`: python-websockets' `broadcast()` (`examples/partial_server.py`), the best
  pure-Python practice;
- `floor`: one pre-built frame written to each socket and nothing else
  (`loadtests/floor_server.py`).

Every peer gets the same locust generator, directly (no nginx). Its clients offer
permessage-deflate, as browsers do, and whoever accepts it pays for it; nobody is asked for
stats after each broadcast (two of the peers have none). CPU per delivery is the
server's CPU over the hold divided by the clients' count of deliveries, so idle costs (pings,
heartbeats) are in it, as they are in production. The runs are sequential: two cores cannot
host two peers and a generator at once without each measuring the others.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from loadtests.config import BudgetError, RunConfig, from_profile
from loadtests.figures import NONE_MEASURED, NOT_MEASURED, Figures, Table, in_table
from loadtests.report import environment
from loadtests.run import LoadError, Probes, run
from notify_client.target import Target
from notify_contract.tokens import Minter
from notify_reports.folder import run_folder
from notify_stack.stack import ServerHandle, StackError, scratch_dir, start_server


@dataclass(frozen=True)
class Peer:
    """One server of the comparison and how to start it (`python -m MODULE ARGS`)."""

    name: str
    title: str
    module: str
    args: tuple[str, ...] = ()
    # Publishing: the reference API over HTTP, or the partial example's /admin/publish.
    publish_channel: bool = False
    metrics: bool = False  # serves /api/ws/metrics (loop lag)


PEERS = (
    Peer(
        "reference",
        "reference server as it ships: uvloop, prepared frames, compression off",
        "reference_server",
        ("--no-access-log",),
        metrics=True,
    ),
    Peer(
        "fastapi-default",
        "the same app under uvicorn's defaults: asyncio loop, permessage-deflate on",
        "uvicorn",
        ("reference_server.app:create_app", "--factory", "--loop", "asyncio", "--no-access-log"),
        metrics=True,
    ),
    Peer(
        "websockets",
        "python-websockets broadcast() (examples/partial_server.py)",
        "examples.partial_server",
        ("--heartbeat-interval", "30"),
        publish_channel=True,
    ),
    Peer(
        "floor",
        "one pre-built frame written to each socket, nothing else",
        "loadtests.floor_server",
        publish_channel=True,
    ),
)
REFERENCE, FLOOR, BEST_PRACTICE = "reference", "floor", "websockets"
# issue 11's target: the reference within this factor of the floor's CPU per delivery.
FLOOR_FACTOR = 1.4


@dataclass(frozen=True)
class PeerResult:
    peer: str
    title: str
    figures: Figures = NONE_MEASURED
    run: str | None = None
    error: str | None = None


@contextmanager
def started(peer: Peer, logs: Path, secret: str) -> Iterator[ServerHandle]:
    settings = {"JWT_SECRET": secret, "WS_MAX_CONNECTIONS_PER_USER": "3"}
    handle = start_server(logs, settings, module=peer.module, extra_args=list(peer.args))
    try:
        yield handle
    finally:
        handle.process.stop()


@contextmanager
def environment_variable(name: str, value: str) -> Iterator[None]:
    """`name` set to `value` inside, and as it was (set or not) afterwards."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def one(peer: Peer, config: RunConfig, out: Path) -> PeerResult:
    """Start the peer, run the load at it, stop it; its figures or why there are none."""
    secret = secrets.token_urlsafe(48)
    try:
        with scratch_dir(f"peer-{peer.name}-") as logs, started(peer, logs, secret) as handle:
            driver = None
            if peer.publish_channel:
                channel = f"ws://127.0.0.1:{handle.port}"
                driver = f"{sys.executable} -m examples.partial_publish --url {channel}"
            target = Target(handle.base, tokens=Minter(secret), driver_cmd=driver)
            probes = Probes((handle.process.pid,), metrics=peer.metrics)
            # The publish command mints its admin token from JWT_SECRET; locust passes its
            # environment on to the command.
            with environment_variable("JWT_SECRET", secret):
                outcome = run(config, out, name=peer.name, target=target, probes=probes)
    except (BudgetError, LoadError, StackError) as exc:
        return PeerResult(peer.name, peer.title, error=str(exc))
    figures = outcome.figures
    if not figures.delivered:
        name = outcome.directory.name
        return PeerResult(peer.name, peer.title, figures, name, "nothing delivered")
    return PeerResult(peer.name, peer.title, figures, outcome.directory.name)


def ratios(results: list[PeerResult]) -> dict[str, dict[str, float | None]]:
    """Each peer's figures over the reference's (None where either is missing)."""
    ref = next((r.figures for r in results if r.peer == REFERENCE and not r.error), NONE_MEASURED)
    out: dict[str, dict[str, float | None]] = {}
    for r in results:
        row: dict[str, float | None] = {}
        for f in in_table(Table.RATIO):
            mine, theirs = f.of(r.figures), f.of(ref)
            row[f.key] = round(mine / theirs, 2) if mine and theirs else None
        out[r.peer] = row
    return out


def verdicts(results: list[PeerResult]) -> list[tuple[bool, str]]:
    """The issue's claims, checked on this run; a claim with a missing side fails."""
    got = {r.peer: r.figures.cpu_us_per_delivered for r in results if not r.error}
    ref, floor, best = got.get(REFERENCE), got.get(FLOOR), got.get(BEST_PRACTICE)
    out = [(not r.error, f"{r.peer}: {r.error or 'ran'}") for r in results]
    if ref and floor:
        ok = ref <= FLOOR_FACTOR * floor
        out.append((ok, f"reference {ref} µs <= {FLOOR_FACTOR} x floor {floor} µs"))
    else:
        out.append((False, "reference vs floor: not measured"))
    if ref and best:
        out.append((ref < best, f"reference {ref} µs < websockets broadcast() {best} µs"))
    else:
        out.append((False, "reference vs websockets: not measured"))
    lossless = all(not r.figures.lost for r in results if not r.error)
    out.append((lossless, "nothing lost by any peer" if lossless else "a peer lost deliveries"))
    return out


def write(out: Path, results: list[PeerResult], meta: dict[str, Any]) -> Path:
    """peers.json, peers.md and a bar chart of CPU per delivery."""
    rel = ratios(results)
    checks = verdicts(results)
    data = {
        **meta,
        "peers": [{**vars(r), "figures": r.figures.to_dict()} for r in results],
        "ratios_to_reference": rel,
        "verdicts": [{"ok": ok, "text": t} for ok, t in checks],
    }
    (out / "peers.json").write_text(json.dumps(data, indent=2) + "\n")
    columns = in_table(Table.PEERS)
    head = (
        "| peer | "
        + " | ".join(f"{f.label} ({f.unit})" if f.unit else f.label for f in columns)
        + " |"
    )
    lines = [
        "# Peers: the same load against four servers",
        "",
        f"Command: `{meta['command']}`; {meta['created']}; commit {meta['git_commit']}.",
        f"{meta['users']} streams directly, a broadcast every {meta['broadcast_interval']:g} s for "
        f"{meta['duration']:g} s; clients offer permessage-deflate.",
        "",
        head,
        "|" + "---|" * (len(columns) + 1),
    ]
    for r in results:
        cells = [f.show(f.of(r.figures)) for f in columns] if not r.error else [r.error]
        lines.append(f"| {r.peer} | " + " | ".join(cells) + " |")
    lines += ["", "Ratios to the reference (lower is better):", ""]
    ratio = in_table(Table.RATIO)
    lines += [
        "| peer | " + " | ".join(f.key for f in ratio) + " |",
        "|" + "---|" * (len(ratio) + 1),
    ]
    for peer, row in rel.items():
        lines.append(
            f"| {peer} | "
            + " | ".join(NOT_MEASURED if v is None else f"{v:g}" for v in row.values())
            + " |"
        )
    lines += ["", "Peers:", ""] + [f"- `{r.peer}`: {r.title}" for r in results]
    lines += ["", "Verdicts:", ""] + [f"- {'PASS' if ok else 'FAIL'} {t}" for ok, t in checks]
    (out / "peers.md").write_text("\n".join(lines) + "\n")
    cost = {r.peer: r.figures.cpu_us_per_delivered for r in results}
    measured = {peer: value for peer, value in cost.items() if value}
    if measured:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.bar(list(measured), list(measured.values()))
        ax.set_ylabel("server CPU per delivery (µs)")
        ax.set_title(f"{meta['users']} streams, same generator")
        fig.tight_layout()
        fig.savefig(out / "cpu_per_delivery.png", dpi=100)
        plt.close(fig)
    return out / "peers.md"


def main(argv: list[str] | None = None, prog: str = "python -m loadtests.peers") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=3000, help="streams per peer")
    parser.add_argument("--rate", type=float, default=500.0, help="streams opened per second")
    parser.add_argument("--duration", type=float, default=30.0, help="hold, seconds")
    parser.add_argument("--broadcast-interval", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument("--generator-workers", type=int, default=1)
    parser.add_argument(
        "--only", default="", metavar="A,B", help=f"peers to run, of {[p.name for p in PEERS]}"
    )
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or [p.name for p in PEERS]
    unknown = sorted(set(names) - {p.name for p in PEERS})
    if unknown:
        parser.error(f"--only: no peer {unknown}; choose from {[p.name for p in PEERS]}")
    config = replace(
        from_profile(
            "capacity",
            users=args.users,
            rate=args.rate,
            hold=args.duration,
            generator_workers=args.generator_workers,
            broadcast_interval=args.broadcast_interval,
        ),
        via_nginx=False,
        offer_compression=True,
        # Only two of the peers have stats; answering them would be CPU the others never spend.
        stats_cross_check=False,
    )
    created = datetime.now(UTC)
    out = run_folder(args.reports, "peers", created)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for i, peer in enumerate(p for p in PEERS if p.name in names):
        print(f"peers: {i + 1}/{len(names)} {peer.name}: {peer.title}", flush=True)
        results.append(one(peer, config, out))
    env = environment()
    meta = {
        "created": created.isoformat(),
        "command": " ".join([prog, *(argv if argv is not None else sys.argv[1:])]),
        "git_commit": env.get("git_commit"),
        "environment": env,
        "users": args.users,
        "duration": args.duration,
        "broadcast_interval": args.broadcast_interval,
    }
    page = write(out, results, meta)
    print(page.read_text())
    return 0 if all(ok for ok, _ in verdicts(results)) else 1


if __name__ == "__main__":
    sys.exit(main())
