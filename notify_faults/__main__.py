"""`python -m notify_faults`: inject each fault and attack into real processes and write the
reliability table (reliability.md and .json) with its plots.

With `--target URL` (and the contract suite's target options or file) the rows that need only
the network run against that server; the rows that need its processes are "not run".

`--scope ci` is the bounded part CI runs (hostile input, a Redis restart, a server restart with
200 streams, the per-user limit race); `--scope full` (the default, `nox -s faults`) runs every
row at its full size and also writes reports/reliability.md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contract_tests.runner import TargetUnusable, preflight
from notify_client.options import OptionError, add_target_arguments, resolve
from notify_client.target import Target
from notify_contract.redaction import leak_line, scrub
from notify_contract.verdicts import Verdict
from notify_faults.catalogue import FAULTS
from notify_faults.hostile import hostile_rows
from notify_faults.lab import lab
from notify_faults.registry import CI, FULL, Scale
from notify_faults.remote import Control, target_rows
from notify_faults.table import Row, write
from notify_reports.folder import environment, machine, redacted, run_folder
from notify_stack.stack import StackError

PACKAGES = ("ws-notify-harness", "uvicorn", "websockets", "redis", "psutil", "hypothesis")


def parser(prog: str = "python -m notify_faults") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples: %(prog)s --scope ci; %(prog)s --target http://127.0.0.1:8000 "
        '--jwt-secret "$JWT_SECRET" --kill-cmd "systemctl kill app" '
        '--start-cmd "systemctl start app"',
    )
    p.add_argument("--scope", choices=("ci", "full"), default="full", help="how much to run")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="ROW",
        help="run only this fault (repeatable; `hostile` for the hostile-input rows)",
    )
    p.add_argument("--list", action="store_true", help="list the rows and exit")
    p.add_argument("--reports", type=Path, default=Path("reports"), help="where reports go")
    p.add_argument(
        "--examples",
        type=int,
        default=None,
        help="hypothesis examples per generated-input row (default: 60 in ci, 400 in full)",
    )
    p.add_argument("--keep-logs", action="store_true", help="keep every process log in the run")
    add_target_arguments(p)
    p.add_argument(
        "--kill-cmd",
        metavar="CMD",
        help="with --target: a shell command that stops the server at once (the restart row)",
    )
    p.add_argument(
        "--start-cmd",
        metavar="CMD",
        help="with --target: a shell command that starts it again in the background, and returns",
    )
    p.add_argument(
        "--reload-cmd",
        metavar="CMD",
        help="with --target: a shell command that reloads the proxy in front of it",
    )
    p.add_argument(
        "--redis-restart-cmd",
        metavar="CMD",
        help="with --target: a shell command that restarts its Redis",
    )
    return p


def chosen(args: argparse.Namespace) -> tuple[bool, list[str]]:
    """Whether the hostile rows run, and which faults, in order."""
    ci = args.scope == "ci"
    faults = [f for f, declared in FAULTS.items() if declared.ci or not ci]
    if not args.only:
        return True, faults
    unknown = [o for o in args.only if o != "hostile" and o not in FAULTS]
    if unknown:
        raise SystemExit(
            f"notify_faults: unknown row {', '.join(unknown)}; rows: hostile, " + ", ".join(FAULTS)
        )
    return "hostile" in args.only, [f for f in FAULTS if f in args.only]


async def run_fault(fault_id: str, scale: Scale, out: Path, logs: Path) -> Row:
    declared = FAULTS[fault_id]
    row = declared.row(scale)
    started = time.monotonic()
    try:
        with lab(logs / fault_id) as the_lab:
            row = await asyncio.wait_for(declared.run(the_lab, scale, out, row), timeout=900)
    except Exception as exc:  # a row that cannot finish is a failed row, with why
        row.problems.append(f"{type(exc).__name__}: {exc}"[:600])
        (logs / f"{fault_id}-error.txt").write_text(traceback.format_exc())
        row.finish("the scenario raised; see the error above and its logs")
    row.duration_s = round(time.monotonic() - started, 1)
    return row


async def run(args: argparse.Namespace, out: Path, logs: Path) -> list[Row]:
    scale = CI if args.scope == "ci" else FULL
    examples = args.examples or (60 if args.scope == "ci" else 400)
    with_hostile, faults = chosen(args)
    rows: list[Row] = []
    if with_hostile:
        started = time.monotonic()
        print(f"== hostile input ({examples} generated examples per property)", flush=True)
        (logs / "hostile").mkdir(parents=True, exist_ok=True)
        rows += await hostile_rows(logs / "hostile", examples, lambda s: print(s, flush=True))
        print(f"== hostile input: {time.monotonic() - started:.0f} s", flush=True)
    for n, fault_id in enumerate(faults, 1):
        print(f"== fault {n}/{len(faults)}: {fault_id} ({scale.name} scale)", flush=True)
        row = await run_fault(fault_id, scale, out, logs)
        print(
            f"   {row.outcome.value} in {row.duration_s:.0f} s: {row.observed}"
            + (f"\n   broken: {'; '.join(row.problems)}" if row.problems else ""),
            flush=True,
        )
        rows.append(row)
    return rows


async def against_target(target: Target, scale: Scale, control: Control) -> list[Row]:
    await preflight(target)
    print(f"== the rows against {target.base}", flush=True)
    return await target_rows(target, scale, lambda s: print(s, flush=True), control)


def main(argv: list[str] | None = None, prog: str = "python -m notify_faults") -> int:
    args = parser(prog).parse_args(argv)
    if args.list:
        print("hostile    the hostile-input rows (contract cases, generated input, log scan)")
        for fault_id, declared in FAULTS.items():
            scope = "ci and full" if declared.ci else "full"
            print(f"{fault_id:<22} {scope:<12} {declared.row(FULL).title}")
        return 0
    chosen(args)  # an unknown row stops here, before anything is written
    try:
        target = resolve(args)
    except OptionError as exc:
        print(f"notify_faults: {exc}", file=sys.stderr)
        return 2
    created = datetime.now(UTC)
    out = run_folder(args.reports, "faults", created).resolve()
    logs = out / "logs"
    logs.mkdir(parents=True)
    started = time.monotonic()
    try:
        if target.url is None:
            rows = asyncio.run(run(args, out, logs))
        else:
            scale = CI if args.scope == "ci" else FULL
            control = Control(
                args.kill_cmd, args.start_cmd, args.reload_cmd, args.redis_restart_cmd
            )
            rows = asyncio.run(against_target(target, scale, control))
    except StackError as exc:
        print(f"notify_faults: could not start the stack: {exc}", file=sys.stderr)
        return 2
    except TargetUnusable as exc:
        print(f"notify_faults: {exc}", file=sys.stderr)
        return 2
    meta: dict[str, Any] = {
        "created": created.isoformat(),
        "command": shlex.join([*prog.split(), *redacted(sys.argv[1:] if argv is None else argv)]),
        "scope": args.scope,
        "duration_s": round(time.monotonic() - started, 1),
        "environment": environment(machine(), PACKAGES),
    }
    md, js = write(out, rows, meta)
    if not args.keep_logs:
        shutil.rmtree(logs, ignore_errors=True)
    for log in logs.rglob("*") if args.keep_logs else ():
        if log.is_file() and log.suffix == ".log":  # what the processes wrote, kept scrubbed
            log.write_text(scrub(log.read_text(errors="replace")))
    if args.scope == "full" and not args.only and target.url is None:
        write(args.reports, rows, meta, plot_dir=out.name)
        print(f"table: {args.reports / 'reliability.md'} (and .json)")
    # On our stack every row must pass; on a target, rows it cannot run are "not run", listed.
    if target.url is None:
        failed = [r.id for r in rows if r.outcome not in (Verdict.PASS, Verdict.NOT_APPLICABLE)]
    else:
        failed = [r.id for r in rows if r.outcome is Verdict.FAIL]
        skipped = [r.id for r in rows if r.outcome is Verdict.NOT_RUN]
        if skipped:
            print(f"not run: {', '.join(skipped)}")
        ran = (Verdict.PASS, Verdict.NON_STRICT, Verdict.FAIL)
        if not any(r.outcome in ran for r in rows):
            failed = ["(no row ran: every one not run or not applicable, so nothing was shown)"]
    print(f"report: {md} and {js.name}")
    leaked = leak_line(out)
    if leaked is not None:
        failed.append(leaked)
    counts = ", ".join(f"{sum(r.outcome is o for r in rows)} {o.value}" for o in Verdict)
    print(f"result: {counts}" + (f"; not passing: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
