"""`python -m contract_tests` (`nox -s contract`): check a notification server against CONTRACT.md.

With no `--target`, the suite starts redis-server, the reference server and nginx on free
loopback ports, checks the server directly and through nginx, and stops them all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from contract_tests import report
from contract_tests.context import CommandTokens, SecretTokens, Target
from contract_tests.managed import managed_stack
from contract_tests.registry import CASES, Case, select
from contract_tests.runner import RunResult, run_target
from reference_server.stack import StackError, scratch_dir


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m contract_tests",
        description="Check a notification server against CONTRACT.md (nox -s contract).",
    )
    p.add_argument(
        "--target",
        help="base URL of the server (http://host:port); none: start the "
        "reference stack and check it directly and through nginx",
    )
    tokens = p.add_mutually_exclusive_group()
    tokens.add_argument("--jwt-secret", help="the target's JWT_SECRET: the suite mints tokens")
    tokens.add_argument(
        "--token-cmd",
        help="command printing a token, with {user} and {role} "
        "(user|admin) filled in, e.g. 'mint {user} {role}'",
    )
    p.add_argument("--jwt-alg", default="HS256", choices=["HS256", "HS384", "HS512"])
    p.add_argument(
        "--driver-cmd",
        help='command that publishes: gets {"action": ...} JSON on '
        "stdin, prints JSON (see contract_tests/README.md)",
    )
    p.add_argument(
        "-k",
        dest="keywords",
        action="append",
        default=[],
        metavar="TEXT",
        help="run cases whose id, clause or title contains TEXT (repeatable: any)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip cases whose id matches GLOB (repeatable)",
    )
    p.add_argument("--list", action="store_true", help="list the selected cases and exit")
    p.add_argument(
        "--reports",
        type=Path,
        default=Path("reports"),
        help="folder for contract-<UTC timestamp>/ (default: reports)",
    )
    known = p.add_argument_group("what the suite knows of the target's settings")
    known.add_argument("--heartbeat-interval", type=float, default=30.0, metavar="S")
    known.add_argument("--max-connections-per-user", type=int, default=3, metavar="N")
    known.add_argument("--max-message-bytes", type=int, default=65536, metavar="N")
    known.add_argument("--client-rate", type=int, default=10, metavar="N")
    known.add_argument("--history-size", type=int, default=100, metavar="N")
    known.add_argument("--stats-public", action="store_true")
    known.add_argument("--allowed-origin", metavar="URL", help="an Origin the target allows")
    known.add_argument(
        "--log",
        dest="logs",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="a log of the server or its proxy, checked for tokens (repeatable)",
    )
    known.add_argument(
        "--idle-hold",
        type=float,
        metavar="S",
        help="how long to hold an idle stream (default: 2.5 heartbeats)",
    )
    known.add_argument(
        "--frame-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="how long to wait for an expected frame",
    )
    return p


def target_from(args: argparse.Namespace, base: str, label: str, **overrides: Any) -> Target:
    tokens: SecretTokens | CommandTokens | None = None
    if args.jwt_secret:
        tokens = SecretTokens(args.jwt_secret, args.jwt_alg)
    elif args.token_cmd:
        tokens = CommandTokens(args.token_cmd)
    fields: dict[str, Any] = {
        "tokens": tokens,
        "driver_cmd": args.driver_cmd,
        "heartbeat_interval": args.heartbeat_interval,
        "max_per_user": args.max_connections_per_user,
        "max_message_bytes": args.max_message_bytes,
        "client_rate": args.client_rate,
        "history_size": args.history_size,
        "stats_public": args.stats_public,
        "allowed_origin": args.allowed_origin,
        "logs": tuple(args.logs),
        "idle_hold": args.idle_hold,
        "frame_timeout": args.frame_timeout,
    }
    fields.update(overrides)
    return Target(base, label, **fields)


@contextlib.contextmanager
def managed_targets(args: argparse.Namespace, log: Path) -> Iterator[list[Target]]:
    """The managed stack, checked directly and through nginx."""
    with managed_stack(log) as stack:
        print(f"stack: {stack.describe()}")
        logs = stack.logs
        yield [
            target_from(args, stack.server.base, "direct", logs=logs["direct"], **stack.known),
            target_from(args, stack.proxy.base, "nginx", logs=logs["nginx"], **stack.known),
        ]


def redacted(argv: list[str]) -> list[str]:
    """The command line for the report, without the secret."""
    out, hide = [], False
    for arg in argv:
        if hide:
            out.append("[redacted]")
            hide = False
        elif arg == "--jwt-secret":
            out.append(arg)
            hide = True
        elif arg.startswith("--jwt-secret="):
            out.append("--jwt-secret=[redacted]")
        else:
            out.append(arg)
    return out


async def run_all(targets: list[Target], cases: list[Case]) -> list[RunResult]:
    return [await run_target(t, cases) for t in targets]


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cases = select(CASES.values(), args.keywords, args.exclude)
    if args.list:
        for c in cases:
            print(f"{c.label:<44} {c.level.value:<6} {c.title}")
        return 0
    if not cases:
        print("contract_tests: no case matches the -k/--exclude selection", file=sys.stderr)
        return 2
    if args.target is not None and urlsplit(args.target).scheme not in ("http", "https"):
        print(
            f"contract_tests: --target must be an http:// or https:// URL, not {args.target!r}",
            file=sys.stderr,
        )
        return 2
    created = datetime.now(UTC)
    out = args.reports / f"contract-{created.strftime('%Y%m%dT%H%M%SZ')}"
    try:
        if args.target is None:
            with scratch_dir("contract-") as log, managed_targets(args, log) as targets:
                runs = asyncio.run(run_all(targets, cases))
                extra = {"mode": "managed: redis-server, reference server, nginx"}
        else:
            runs = asyncio.run(run_all([target_from(args, args.target, "target")], cases))
            extra = {"mode": "external target"}
    except StackError as exc:
        print(f"contract_tests: could not start the stack: {exc}", file=sys.stderr)
        return 2
    meta = {
        "suite": "notification contract suite",
        "created": created.isoformat(),
        "command": shlex.join(["python", "-m", "contract_tests", *redacted(argv or sys.argv[1:])]),
        "environment": report.environment(extra),
    }
    where = report.write(out, runs, meta)
    failed = any(run.failed for run in runs)
    print(f"report: {where / 'index.html'}")
    print("result: a MUST is broken" if failed else "result: no MUST broken")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
