"""`python -m contract_tests` (`nox -s contract`): check a notification server against the contract.

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

from contract_tests import report
from contract_tests.registry import CASES, Case, select
from contract_tests.runner import RunResult, TargetUnusable, run_target
from notify_client.options import OptionError, add_target_arguments, resolve
from notify_client.target import Target
from notify_contract.redaction import leak_line
from notify_contract.verdicts import Verdict
from notify_reports.folder import environment, redacted, run_folder
from notify_stack.managed import managed_stack
from notify_stack.stack import StackError, scratch_dir


def parser(prog: str = "python -m contract_tests") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Check a notification server against docs/contract.md (nox -s contract). "
        "With no --target, start the reference stack and check it directly and through nginx.",
        epilog="example: %(prog)s --target http://127.0.0.1:8000 "
        '--jwt-secret "$JWT_SECRET" --without sse,tasks',
    )
    add_target_arguments(p)
    p.add_argument(
        "-k",
        dest="keywords",
        action="append",
        default=[],
        metavar="TEXT",
        help="run cases whose id, rule or title contains TEXT (repeatable: any)",
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
        "--allow-not-run",
        action="store_true",
        help="exit 0 even when MUST cases could not run (by default that is exit 1)",
    )
    p.add_argument(
        "--reports",
        type=Path,
        default=Path("reports"),
        help="folder for contract-<UTC timestamp>/ (default: reports)",
    )
    return p


@contextlib.contextmanager
def managed_targets(declared: Target, log: Path) -> Iterator[list[Target]]:
    """The managed stack, checked directly and through nginx."""
    with managed_stack(log) as stack:
        print(f"stack: {stack.describe()}")
        yield stack.targets(declared)


async def run_all(targets: list[Target], cases: list[Case]) -> list[RunResult]:
    return [await run_target(t, cases) for t in targets]


def main(argv: list[str] | None = None, prog: str = "python -m contract_tests") -> int:
    args = parser(prog).parse_args(argv)
    try:
        declared = resolve(args)
    except OptionError as exc:
        print(f"contract_tests: {exc}", file=sys.stderr)
        return 2
    cases = select(CASES.values(), args.keywords, args.exclude)
    if args.list:
        for c in cases:
            print(f"{c.label:<44} {c.level.value:<6} {c.title}")
        return 0
    if not cases:
        print("contract_tests: no case matches the -k/--exclude selection", file=sys.stderr)
        return 2
    created = datetime.now(UTC)
    out = run_folder(args.reports, "contract", created)
    try:
        if declared.url is None:
            with scratch_dir("contract-") as log, managed_targets(declared, log) as targets:
                runs = asyncio.run(run_all(targets, cases))
                extra = {"mode": "managed: redis-server, reference server, nginx"}
        else:
            runs = asyncio.run(run_all([declared], cases))
            extra = {"mode": "external target"}
    except StackError as exc:
        print(f"contract_tests: could not start the stack: {exc}", file=sys.stderr)
        return 2
    except TargetUnusable as exc:
        print(f"contract_tests: {exc}", file=sys.stderr)
        return 2
    meta = {
        "suite": "notification contract suite",
        "created": created.isoformat(),
        "command": shlex.join([*prog.split(), *redacted(sys.argv[1:] if argv is None else argv)]),
        "environment": environment(extra, report.PACKAGES),
    }
    where = report.write(out, runs, meta)
    print(report.fix_first_text(runs))
    print(f"report: {where / 'index.html'}")
    failed = any(run.failed for run in runs)
    leaked = leak_line(where)
    if leaked is not None:
        print(f"result: {leaked}")
        return 1
    not_run = [r for run in runs for r in run.must_not_run]
    totals = ", ".join(f"{sum(run.count(v) for run in runs)} {v.value}" for v in Verdict)
    if failed:
        print(f"result: a MUST is broken ({totals})")
        return 1
    if not_run and not args.allow_not_run:
        print(
            f"result: {len(not_run)} MUST case(s) could not run, so the contract is not shown "
            f"to hold ({totals}); give what they need, or --allow-not-run"
        )
        return 1
    if not any(run.count(Verdict.PASS) + run.count(Verdict.NON_STRICT) for run in runs):
        # Every case not applicable (or allowed not to run): nothing was checked, no pass.
        print(f"result: no case ran against the target ({totals}), so nothing was shown")
        return 1
    print(f"result: no MUST broken ({totals})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
