"""Runs selected cases against one target, one at a time, and grades each."""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from websockets.exceptions import InvalidHandshake

import contract_tests.cases  # noqa: F401 - registers the cases
from contract_tests.client import Closed, ProtocolViolation
from contract_tests.context import Context, Entry, SecretTokens, Shared, Target
from contract_tests.driver import CommandDriver, Driver, DriverError
from contract_tests.registry import Case, CaseFailed, Level, Need, NotRun, Verdict


@dataclass
class CaseResult:
    case: Case
    verdict: Verdict
    reason: str
    duration: float
    transcript: list[Entry] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)


@dataclass
class RunResult:
    target: Target
    results: list[CaseResult]
    started_at: float
    duration: float
    driver: str

    def count(self, verdict: Verdict) -> int:
        return sum(r.verdict == verdict for r in self.results)

    @property
    def failed(self) -> bool:
        return self.count(Verdict.FAIL) > 0


async def probe_driver(shared: Shared) -> None:
    """Find how this target can be made to emit: its driver API, or --driver-cmd."""
    target = shared.target
    if target.tokens is None:
        shared.driver_problem = "no token source for the admin (--jwt-secret or --token-cmd)"
        return
    try:
        admin = target.tokens.mint("contract-admin", admin=True)
    except NotRun as exc:
        shared.driver_problem = str(exc)
        return
    http = Driver(target.base, admin)
    problem = None
    try:
        await http.publish(f"ct-{shared.run_id}-probe", "contract suite probe")
        shared.http_driver_works = True
    except (DriverError, httpx.HTTPError, ValueError) as exc:
        problem = f"the driver API (POST /api/notifications) failed: {exc}"
    if target.driver_cmd:
        await http.aclose()
        shared.driver = CommandDriver(target.base, admin, target.driver_cmd)
        shared.driver_problem = None
    elif shared.http_driver_works:
        shared.driver = http
        shared.driver_problem = None
    else:
        await http.aclose()
        shared.driver_problem = f"{problem}; give --driver-cmd"


def missing_need(case: Case, shared: Shared) -> str | None:
    target = shared.target
    for need in (n for n in Need if n in case.needs):  # declaration order: tokens first
        if need is Need.TOKENS and target.tokens is None:
            return "needs tokens: give --jwt-secret or --token-cmd"
        if need is Need.SECRET and not isinstance(target.tokens, SecretTokens):
            return "needs tokens with chosen claims: give --jwt-secret"
        if need is Need.DRIVER and shared.driver is None:
            return f"needs a way to publish: {shared.driver_problem}"
        if need is Need.DRIVER_HTTP and not shared.http_driver_works:
            return f"checks the HTTP driver API, which is not usable: {shared.driver_problem}"
        if need is Need.LOGS and not target.logs:
            return "needs the server's or the proxy's log: give --log PATH"
        if need is Need.ORIGIN and target.allowed_origin is None:
            return "needs an allowed Origin: give --allowed-origin URL"
    return None


async def run_case(case: Case, shared: Shared) -> CaseResult:
    missing = missing_need(case, shared)
    if missing is not None:
        return CaseResult(case, Verdict.NOT_RUN, missing, 0.0)
    ctx = Context(shared, case.needs)
    verdict, reason = Verdict.PASS, ""
    try:
        await asyncio.wait_for(case.run(ctx), case.timeout)
    except NotRun as exc:
        verdict, reason = Verdict.NOT_RUN, str(exc)
    except CaseFailed as exc:
        verdict, reason = Verdict.FAIL, str(exc)
    except Closed as exc:
        verdict, reason = (
            Verdict.FAIL,
            f"a stream closed unexpectedly: code {exc.code} {exc.reason!r}",
        )
    except ProtocolViolation as exc:
        verdict, reason = Verdict.FAIL, f"protocol violation: {exc}"
    except TimeoutError as exc:
        verdict, reason = Verdict.FAIL, f"timed out waiting{': ' + str(exc) if str(exc) else ''}"
    except (InvalidHandshake, OSError, httpx.HTTPError, DriverError) as exc:
        verdict, reason = Verdict.FAIL, f"{type(exc).__name__}: {exc}"
    except Exception as exc:
        verdict, reason = Verdict.FAIL, f"{type(exc).__name__}: {exc}"
        ctx.note("suite", "note", traceback.format_exc())
    finally:
        await ctx.close_all()
    if verdict is Verdict.PASS and ctx.notes:
        verdict, reason = Verdict.NON_STRICT, "; ".join(ctx.notes)
    if verdict is Verdict.FAIL and case.level is Level.SHOULD:
        verdict = Verdict.NON_STRICT
    duration = round(time.monotonic() - ctx.started, 3)
    return CaseResult(case, verdict, reason, duration, ctx.transcript, ctx.notes, ctx.close_codes)


async def run_target(
    target: Target, cases: list[Case], progress: Callable[[str], None] = print
) -> RunResult:
    """Every case against `target`, in order, printing a line per case."""
    shared = Shared(target)
    started_at, started = time.time(), time.monotonic()
    await probe_driver(shared)
    how = (
        "driver API"
        if shared.driver and not target.driver_cmd
        else ("--driver-cmd" if shared.driver else f"none ({shared.driver_problem})")
    )
    progress(f"== {target.label}: {target.base} ({len(cases)} cases; driver: {how})")
    results = []
    try:
        for n, case in enumerate(cases, 1):
            result = await run_case(case, shared)
            results.append(result)
            detail = f"  {result.reason}" if result.reason else ""
            progress(
                f"  {n:>3}/{len(cases)} {result.verdict.value:<10} {case.label} "
                f"({result.duration:.2f}s){detail[:300]}"
            )
    finally:
        if shared.driver is not None:
            await shared.driver.aclose()
    run = RunResult(target, results, started_at, round(time.monotonic() - started, 2), how)
    counts = ", ".join(f"{run.count(v)} {v.value}" for v in Verdict)
    progress(f"== {target.label}: {counts} in {run.duration:.1f}s")
    return run
