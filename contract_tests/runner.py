"""Runs selected cases against one target, one at a time, and grades each."""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from websockets.exceptions import InvalidHandshake, InvalidStatus

import contract_tests.cases  # noqa: F401 - registers the cases
from contract_tests.context import Context, Entry, Shared
from contract_tests.registry import CASES, Case
from notify_client.client import Closed, ProtocolViolation, StreamClient
from notify_client.driver import CommandDriver, Driver, DriverError, DriverUnsupported
from notify_client.target import Target
from notify_contract.codes import describe
from notify_contract.protocol import NOTIFICATIONS_PATH, WS_NOTIFICATIONS_PATH
from notify_contract.rules import Level
from notify_contract.tokens import Minter
from notify_contract.verdicts import FEATURES, CaseFailed, Need, NotApplicable, NotRun, Verdict

PREFLIGHT_SECONDS = 8.0  # an unreachable target is one clear error well within 10 s


class TargetUnusable(Exception):
    """The target does not answer, or is not a WebSocket server: nothing can be checked."""


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
    minted: dict[str, str] = field(default_factory=dict)  # every token the run used, and whose

    def count(self, verdict: Verdict) -> int:
        return sum(r.verdict == verdict for r in self.results)

    @property
    def failed(self) -> bool:
        return self.count(Verdict.FAIL) > 0

    @property
    def must_not_run(self) -> list[CaseResult]:
        return [
            r for r in self.results if r.verdict is Verdict.NOT_RUN and r.case.level is Level.MUST
        ]


def cases_named(*ids: str) -> list[Case]:
    """The registered cases with these ids, in this order: how another tool picks some."""
    unknown = [i for i in ids if i not in CASES]
    if unknown:
        raise KeyError(f"no case named {', '.join(unknown)}")
    return [CASES[i] for i in ids]


async def preflight(target: Target) -> None:
    """One handshake at the notification path within PREFLIGHT_SECONDS, or TargetUnusable."""
    url = target.base.rstrip("/") + WS_NOTIFICATIONS_PATH
    token = None
    if target.tokens is not None:
        try:
            token = target.tokens.mint("contract-preflight")
        except NotRun:
            token = None
    try:
        stream = await asyncio.wait_for(
            StreamClient.open(
                target.base,
                WS_NOTIFICATIONS_PATH,
                token,
                token_in=target.token_in,
                open_timeout=PREFLIGHT_SECONDS,
            ),
            PREFLIGHT_SECONDS + 1,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise TargetUnusable(
            f"{url} is not a WebSocket endpoint: the handshake got HTTP {status}, not 101"
        ) from None
    except (OSError, TimeoutError) as exc:
        raise TargetUnusable(f"{url} does not answer: {type(exc).__name__}: {exc}") from None
    except InvalidHandshake as exc:
        raise TargetUnusable(f"{url} is not a WebSocket endpoint: {exc}") from None
    await stream.close()


async def probe_driver(shared: Shared) -> None:
    """Find how this target can be made to emit: its driver API, or --driver-cmd."""
    target = shared.target
    if target.tokens is None:
        shared.driver_problem = "no token source for the admin (--jwt-secret or --token-cmd)"
        return
    try:
        admin = target.tokens.mint("contract-admin", admin=True)
        shared.minted.setdefault(admin, "contract-admin (the driver's)")
    except NotRun as exc:
        shared.driver_problem = str(exc)
        return
    http = Driver(target.base, admin)
    problem = None
    try:
        await http.publish(f"ct-{shared.run_id}-probe", "contract suite probe")
        shared.http_driver_works = True
    except DriverError as exc:
        problem = f"the driver API failed: {exc}"
        shared.http_driver_exists = exc.status not in (None, 404, 405)
    except (httpx.HTTPError, ValueError) as exc:
        problem = f"the driver API (POST {NOTIFICATIONS_PATH}) failed: {exc}"
    shared.http_driver_problem = problem
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


async def prepare(target: Target, driver: Driver | None = None) -> Shared:
    """What every case of a run shares: the target answered the preflight, and a driver (the
    one given, else the driver API or --driver-cmd); the driver API is probed either way, since
    some cases check it."""
    shared = Shared(target)
    shared.log_start = {log: log.stat().st_size if log.exists() else 0 for log in target.logs}
    await preflight(target)
    await probe_driver(shared)
    if driver is not None:
        if shared.driver is not None:
            await shared.driver.aclose()
        shared.driver, shared.driver_problem = driver, None
    return shared


def missing_need(case: Case, shared: Shared) -> tuple[Verdict, str] | None:
    """Why the case cannot run here: a rule the target does not take on (not applicable), or
    something the user could give (not run)."""
    target = shared.target
    for need in (n for n in Need if n in case.needs):  # declaration order: tokens first
        if need in FEATURES and need in target.without:
            return Verdict.NOT_APPLICABLE, (
                f"the target declares it has no {need.value} (--without {need.value})"
            )
        if need is Need.TOKENS and target.tokens is None:
            return Verdict.NOT_RUN, "needs tokens: give --jwt-secret or --token-cmd"
        if need is Need.SECRET and not isinstance(target.tokens, Minter):
            return Verdict.NOT_RUN, "needs tokens with chosen claims: give --jwt-secret"
        if need is Need.DRIVER and shared.driver is None:
            return Verdict.NOT_RUN, f"needs a way to publish: {shared.driver_problem}"
        if need is Need.DRIVER_HTTP and not (shared.http_driver_works or shared.http_driver_exists):
            # The target publishes some other way (its own driver command) or not over HTTP:
            # a rule about the HTTP API it does not offer.
            return Verdict.NOT_APPLICABLE, (
                f"checks the HTTP driver API, not offered here: {shared.http_driver_problem}"
            )
        if need is Need.LOGS and not target.logs:
            return Verdict.NOT_RUN, "needs the server's or the proxy's log: give --log PATH"
        if need is Need.ORIGIN and target.allowed_origin is None:
            return Verdict.NOT_APPLICABLE, (
                "the target declares no Origin allowlist (give --allowed-origin URL if it has one)"
            )
    return None


def blocked_by(case: Case, done: dict[str, CaseResult]) -> tuple[Verdict, str] | None:
    """Why a case that depends on another cannot mean anything in this run, if it cannot."""
    for dep in case.after:
        result = done.get(dep)
        if result is None or result.verdict in (Verdict.PASS, Verdict.NON_STRICT):
            continue
        if result.verdict is Verdict.NOT_APPLICABLE:
            return Verdict.NOT_APPLICABLE, f"needs {dep}, which is not applicable"
        what = "failed" if result.verdict is Verdict.FAIL else "did not run"
        return Verdict.NOT_RUN, f"needs {dep}, which {what}"
    return None


def _reason(exc: BaseException, case: Case) -> str:
    if isinstance(exc, Closed):
        return f"a stream closed unexpectedly: {describe(exc.code)}" + (
            f", reason {exc.reason!r}" if exc.reason else ""
        )
    if isinstance(exc, ProtocolViolation):
        return f"protocol violation: {exc}"
    if isinstance(exc, TimeoutError):
        return (
            f"timed out: {exc}" if str(exc) else f"the case did not end within {case.timeout:g} s"
        )
    if isinstance(exc, httpx.HTTPError):  # "ReadTimeout: " said nothing of what was awaited
        said = str(exc) or "no answer in time"
        with contextlib.suppress(RuntimeError):  # no request attached
            said += f" ({exc.request.method} {exc.request.url.path})"
        return f"{type(exc).__name__}: {said}"
    return f"{type(exc).__name__}: {exc}"


async def run_case(case: Case, shared: Shared, done: dict[str, CaseResult]) -> CaseResult:
    missing = missing_need(case, shared) or blocked_by(case, done)
    if missing is not None:
        return CaseResult(case, missing[0], missing[1], 0.0)
    ctx = Context(shared, case.needs, case.level)
    verdict, reason = Verdict.PASS, ""
    try:
        await asyncio.wait_for(case.run(ctx), case.timeout)
    except NotRun as exc:
        verdict, reason = Verdict.NOT_RUN, str(exc)
    except NotApplicable as exc:
        verdict, reason = Verdict.NOT_APPLICABLE, str(exc)
    except DriverUnsupported as exc:  # the target's own driver says it has no such thing
        verdict, reason = Verdict.NOT_APPLICABLE, str(exc)
    except CaseFailed as exc:
        verdict, reason = Verdict.FAIL, str(exc)
    except (Closed, ProtocolViolation, TimeoutError, InvalidHandshake, OSError) as exc:
        verdict, reason = Verdict.FAIL, _reason(exc, case)
    except (httpx.HTTPError, DriverError) as exc:
        verdict, reason = Verdict.FAIL, _reason(exc, case)
    except Exception as exc:
        verdict, reason = Verdict.FAIL, _reason(exc, case)
        ctx.note("suite", "note", traceback.format_exc())
    finally:
        await ctx.close_all()
    if verdict is Verdict.PASS and ctx.notes:  # only SHOULD cases can take notes
        verdict, reason = Verdict.NON_STRICT, "; ".join(ctx.notes)
    duration = round(time.monotonic() - ctx.started, 3)
    return CaseResult(case, verdict, reason, duration, ctx.transcript, ctx.notes, ctx.close_codes)


class Pace:
    """How this target's cases take against their estimates so far: the time left is the
    estimate scaled by it (a server that fails every case at once is not "about 90 s" away)."""

    def __init__(self) -> None:
        self.planned = 0.0
        self.spent = 0.0

    def done(self, planned: float, spent: float) -> None:
        self.planned += planned
        self.spent += spent

    def scale(self, seconds: float) -> float:
        if self.planned < 5.0:  # too little seen yet to judge the pace
            return seconds
        return seconds * min(3.0, max(0.05, self.spent / self.planned))


def _left(cases: list[Case], target: Target, pace: Pace | None = None) -> str:
    seconds = sum(c.estimate(target) for c in cases)
    if pace is not None:
        seconds = pace.scale(seconds)
    return f"about {seconds:.0f} s left" if seconds >= 1 else "almost done"


async def run_target(
    target: Target, cases: list[Case], progress: Callable[[str], None] = print
) -> RunResult:
    """Every case against `target`, in order, printing a line per case and the time left."""
    started_at, started = time.time(), time.monotonic()
    shared = await prepare(target)
    how = (
        "driver API"
        if shared.driver and not target.driver_cmd
        else ("--driver-cmd" if shared.driver else f"none ({shared.driver_problem})")
    )
    progress(
        f"== {target.label}: {target.base} ({len(cases)} cases, {_left(cases, target)}; "
        f"driver: {how})"
    )
    results: list[CaseResult] = []
    done: dict[str, CaseResult] = {}
    cases = [c for c in cases if not c.last] + [c for c in cases if c.last]
    pace = Pace()
    try:
        for n, case in enumerate(cases, 1):
            expected = case.estimate(target)
            if pace.scale(expected) >= 10:
                progress(
                    f"  ... {case.label}: takes about {pace.scale(expected):.0f} s (heartbeat "
                    f"interval {target.limits.heartbeat_interval:g} s)"
                )
            result = await run_case(case, shared, done)
            results.append(result)
            done[case.id] = result
            pace.done(expected, result.duration)
            detail = f"  {result.reason}" if result.reason else ""
            progress(
                f"  {n:>3}/{len(cases)} {result.verdict.value:<10} {case.label} "
                f"({result.duration:.2f}s, {_left(cases[n:], target, pace)}){detail[:300]}"
            )
    finally:
        if shared.driver is not None:
            await shared.driver.aclose()
    run = RunResult(
        target, results, started_at, round(time.monotonic() - started, 2), how, shared.minted
    )
    counts = ", ".join(f"{run.count(v)} {v.value}" for v in Verdict)
    progress(f"== {target.label}: {counts} in {run.duration:.1f}s")
    return run
