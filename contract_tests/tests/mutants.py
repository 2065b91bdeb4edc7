"""The suite's kill rate: every planted defect of `reference_server/tests/broken_server.py` that
the contract covers, started as a real server and checked by the whole suite.

    python -m contract_tests.tests.mutants [--reports DIR] [--only NAME ...] [--keep-logs]
    (what `nox -s mutants` runs)

A mutant is caught when at least one case fails against it; the report lists, for each, the
cases that caught it. The unbroken server is checked first the same way and must pass every case,
or no catch means anything. Exit 1 if a mutant survives or the control fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from contract_tests.registry import CASES
from contract_tests.runner import RunResult, run_target
from notify_client.target import Target
from notify_contract.settings import Limits
from notify_contract.tokens import Minter
from notify_contract.verdicts import Verdict
from notify_stack.fixtures import SECRET, Servers
from notify_stack.stack import StackError

MODULE = "reference_server.tests.broken_server"
# What the suite knows of each server it starts (as tests/test_suite.py starts them).
BEAT, HISTORY = "0.3", 20


@dataclass(frozen=True)
class Mutant:
    name: str  # BROKEN_FAULT
    defect: str
    rule: str


MUTANTS = (
    Mutant("ended-task-open", "an ended task's stream opens for anyone", "5.4"),
    Mutant("any-role-admin", "any `role` claim is an admin's", "2.5"),
    Mutant("broadcast-one-per-user", "a broadcast reaches one stream per user", "5.3"),
    Mutant("resume-skips-broadcasts", "resume does not replay broadcasts", "5.7"),
    Mutant("task-no-heartbeat", "task streams get no heartbeats", "5.1"),
    Mutant("http-ignores-exp", "HTTP endpoints take expired tokens", "2.5"),
    Mutant("log-token-on-refusal", "the token is logged on a 4429 refusal", "1.6"),
    Mutant("no-heartbeat", "no heartbeats at all", "5.1"),
    Mutant("heartbeat-doubled", "heartbeats twice an interval", "5.1"),
    Mutant("slow-heartbeat", "heartbeats 25% slow", "5.1"),
    Mutant("limit-off-by-one", "the per-user limit lets one more through", "5.5"),
    Mutant("no-limit", "no per-user limit", "5.5"),
    Mutant("resume-skips-one", "resume skips the first missed notification", "5.7"),
    Mutant("resume-repeats-one", "resume sends last_id's notification again", "5.7"),
    Mutant("stats-open", "stats answer without a token", "8.2"),
    Mutant("no-close-at-expiry", "an expired token's stream stays open", "2.4"),
    Mutant("field-renamed", "notifications carry `subject` for `title`", "3.1"),
    Mutant("frame-shape", "notifications carry `payload` for `data`", "3.1"),
    Mutant("sse-ignores-last-event-id", "SSE ignores Last-Event-ID", "9.3"),
    Mutant("leak", "a user's notification reaches every user", "5.3"),
    Mutant("task-broadcast", "task progress reaches every task stream", "5.4"),
    Mutant("log-token", "tokens in every log line", "1.6"),
    Mutant("slow-4409", "slow consumers closed with 4409", "5.6"),
    Mutant("driver-200", "publishing answers 200", "1.1"),
    Mutant("archive-newest", "the archive lists only its newest item", "5.8"),
    Mutant("wrong-user", "`connected` names another user", "3.2"),
)


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    caught_by: tuple[str, ...]  # the cases that failed against it


async def check(servers: Servers, fault: str) -> RunResult:
    """The whole suite against one server (the reference one when `fault` is empty)."""
    server = servers.start(
        module=MODULE,
        BROKEN_FAULT=fault,
        WS_HEARTBEAT_INTERVAL=BEAT,
        WS_SEND_QUEUE="16",
        WS_HISTORY_SIZE=str(HISTORY),
    )
    target = Target(
        server.base,
        fault or "reference",
        tokens=Minter(SECRET),
        limits=Limits(heartbeat_interval=float(BEAT), history_size=HISTORY),
        logs=(server.process.log_path,),
    )
    try:
        return await run_target(target, list(CASES.values()), progress=lambda line: None)
    finally:
        server.process.stop()


def failed(run: RunResult) -> tuple[str, ...]:
    return tuple(r.case.id for r in run.results if r.verdict is Verdict.FAIL)


def write(out: Path, rows: list[Outcome], control: tuple[str, ...], command: str) -> Path:
    caught = sum(bool(r.caught_by) for r in rows)
    lines = [
        "# Mutation run of the contract suite",
        "",
        f"`{command}` (what `nox -s mutants` runs) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: "
        f"{caught} of {len(rows)} planted defects caught; the unbroken server failed "
        f"{len(control)} cases"
        + (f" ({', '.join(control)})" if control else "")
        + f"; {len(CASES)} cases a run.",
        "",
        "| mutant | defect | rule | caught by |",
        "|---|---|---|---|",
    ]
    for r in rows:
        by = ", ".join(f"`{c}`" for c in r.caught_by) or "**survived**"
        lines.append(f"| `{r.mutant.name}` | {r.mutant.defect} | {r.mutant.rule} | {by} |")
    data = {
        "command": command,
        "control_failed": list(control),
        "mutants": [{**asdict(r.mutant), "caught_by": list(r.caught_by)} for r in rows],
    }
    (out / "mutants.json").write_text(json.dumps(data, indent=2))
    (out / "mutants.md").write_text("\n".join(lines) + "\n")
    return out / "mutants.md"


async def run(args: argparse.Namespace, out: Path) -> int:
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    servers = Servers(out / "logs")
    (out / "logs").mkdir(parents=True)
    rows: list[Outcome] = []
    try:
        unbroken = await check(servers, "")
        control = failed(unbroken)
        if not unbroken.count(Verdict.PASS):  # nothing ran: no catch after it would mean anything
            control = ("(every case: not run)",)
        counts = ", ".join(f"{unbroken.count(v)} {v.value}" for v in Verdict)
        print(f"control (no defect): {counts}", flush=True)
        for n, mutant in enumerate(chosen, 1):
            started = time.monotonic()
            by = failed(await check(servers, mutant.name))
            rows.append(Outcome(mutant, by))
            said = ", ".join(by) if by else "SURVIVED"
            took = time.monotonic() - started
            print(f"{n:>3}/{len(chosen)} {mutant.name:<26} {took:5.1f}s  {said}", flush=True)
    finally:
        servers.stop_all()
        if not args.keep_logs:
            shutil.rmtree(out / "logs", ignore_errors=True)
    command = shlex.join(["python", "-m", "contract_tests.tests.mutants", *sys.argv[1:]])
    report = write(out, rows, control, command)
    survived = [r.mutant.name for r in rows if not r.caught_by]
    print(f"report: {report}")
    print(
        f"result: {len(rows) - len(survived)} of {len(rows)} caught"
        + (f"; survived: {', '.join(survived)}" if survived else "")
        + (f"; the control failed {control}" if control else "")
    )
    return 1 if survived or control else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m contract_tests.tests.mutants", description=__doc__)
    p.add_argument("--reports", type=Path, default=Path("reports"))
    p.add_argument("--only", action="append", default=[], metavar="NAME")
    p.add_argument("--keep-logs", action="store_true", help="keep every server's log")
    args = p.parse_args(argv)
    unknown = set(args.only) - {m.name for m in MUTANTS}
    if unknown:
        print(f"mutants: unknown {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    out = args.reports / f"mutants-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    try:
        return asyncio.run(run(args, out))
    except StackError as exc:
        print(f"mutants: could not start a server: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
