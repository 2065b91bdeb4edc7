"""The hostile-input rows: contract cases about attacks, run directly and through nginx;
hypothesis-generated frames and tokens; then every log is searched for tokens, the secret and
stack traces, and the stack must still serve."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from contract_tests.properties import Tried, client_frames_property, tokens_property
from contract_tests.runner import CaseResult, cases_named, run_target
from notify_client.client import StreamClient
from notify_client.driver import Driver
from notify_client.target import Target
from notify_contract.protocol import WS_NOTIFICATIONS_PATH
from notify_contract.redaction import JWT_SHAPE
from notify_contract.tokens import Minter
from notify_contract.verdicts import Verdict
from notify_faults.table import Facts, Row
from notify_stack.managed import managed_stack
from notify_stack.stack import Process, start_server

# Contract cases that are attacks, in the order of the list.
HOSTILE_CASES = (
    "token-alg-none",
    "token-hs256-public-key",
    "token-wrong-key",
    "token-expired",
    "token-not-yet-valid",
    "token-claims-missing",
    "token-malformed",
    "token-oversized",
    "token-16kb",
    "token-missing",
    "token-query-header-disagree",
    "origin-allowlist",
    "invalid-utf8-1007",
    "binary-frame-1003",
    "oversize-frame-1009",
    "compressed-frame-1009",
    "flood-1008",
    "bad-json-error-frame",
    "unknown-type-error-frame",
    "hostile-frames",
    "http-not-an-upgrade",
    "http-huge-url",
    "task-forbidden-4403",
    "user-id-exact",
    "driver-admin-only",
    "token-not-in-logs",
)
TRACE_MARKS = ("Traceback (most recent call last)", 'File "/')


@dataclass
class CaseFacts(Facts):
    close_codes: dict[str, list[str]]  # per target label, the codes its streams saw


@dataclass
class GeneratedFacts(Facts):
    examples: int
    answers: dict[str, int]


@dataclass
class LogFacts(Facts):
    logs: list[str]
    lines: int
    findings: dict[str, int]


def case_row(results: list[tuple[str, CaseResult]]) -> Row:
    """One row per case: the outcome on every target (label, result) it ran against."""
    case = results[0][1].case
    row = Row(
        case.id,
        "hostile",
        case.title,
        f"{case.title} (docs/contract.md rule {case.clause}, {case.level.value})",
    )
    facts = CaseFacts({})
    row.facts = facts
    parts = []
    should: list[str] = []
    for label, r in results:
        codes = sorted({str(c) for c in r.close_codes if c is not None})
        seen = f"{label}: {r.verdict.value}" + (f", closed {'/'.join(codes)}" if codes else "")
        parts.append(seen + (f" ({r.reason})" if r.reason else ""))
        if r.verdict is Verdict.FAIL:
            row.problems.append(f"{label}: {r.reason}")
        elif r.verdict is Verdict.NOT_RUN:
            row.problems.append(f"{label}: not run ({r.reason})")
        elif r.verdict is Verdict.NON_STRICT:
            should.append(f"{label}: {r.reason}")
        if codes:
            facts.close_codes[label] = codes
        row.duration_s += r.duration
    row.finish("; ".join(parts))
    if should and not row.problems:
        row.outcome = Verdict.NON_STRICT
    if all(r.verdict is Verdict.NOT_APPLICABLE for _, r in results):
        row.outcome = Verdict.NOT_APPLICABLE  # the rule is off on every path the row tried
    return row


async def _property_row(row: Row, run: Callable[[], None], tried: Tried, what: str) -> Row:
    started = time.monotonic()
    try:
        await asyncio.to_thread(run)
    except Exception as exc:  # hypothesis re-raises the shrunk failure
        row.problems.append(f"{type(exc).__name__}: {str(exc)[:600]}")
    row.duration_s = round(time.monotonic() - started, 2)
    row.facts = GeneratedFacts(tried.examples, dict(tried.answers))
    return row.finish(f"{tried.examples} generated {what}; answers {tried.answers}")


def scan_logs(log_dir: Path, secret: str) -> Row:
    logs = sorted(p for p in log_dir.rglob("*.log") if p.is_file())
    row = Row(
        "logs-clean",
        "hostile",
        "after all of the above: every log of the server, Redis and nginx searched",
        "no token (nothing shaped like a JWT), no secret, no stack trace in any log line",
    )
    findings: dict[str, int] = {}
    lines = 0
    for log in logs:
        for n, line in enumerate(log.read_text(errors="replace").splitlines(), 1):
            lines += 1
            for name, hit in (
                ("token", JWT_SHAPE.search(line) is not None),
                ("secret", secret in line),
                ("stack trace", any(m in line for m in TRACE_MARKS)),
            ):
                if hit:
                    findings[name] = findings.get(name, 0) + 1
                    if len(row.problems) < 5:
                        row.problems.append(f"{name} in {log.name}:{n}: {line[:160]!r}")
    row.facts = LogFacts([p.name for p in logs], lines, findings)
    return row.finish(
        f"{lines} lines in {len(logs)} logs ({', '.join(p.name for p in logs)}): "
        + (", ".join(f"{k}: {v}" for k, v in findings.items()) or "nothing found")
    )


async def stream_gets_notification(
    base: str, mint: Callable[[str], str], driver: Driver, token_in: str = "query"
) -> bool:
    """A new stream connects, and a notification published for its user reaches it."""
    user = f"survivor-{time.time_ns()}"
    stream = await StreamClient.open(base, WS_NOTIFICATIONS_PATH, mint(user), token_in=token_in)
    try:
        await stream.expect("connected", timeout=10)
        published = await driver.publish(user, "still here")
        got = await stream.expect("notification", timeout=10)
    finally:
        await stream.close()
    return bool(got.data.get("id") == published["id"])


async def still_serves(base: str, admin: str, tokens: Minter, processes: list[Process]) -> Row:
    row = Row(
        "still-serves",
        "hostile",
        "after all of the above, through nginx",
        "the server and nginx still run; a new stream connects and gets a notification "
        "published for it",
    )
    dead = [p.name for p in processes if not p.alive()]
    row.check(not dead, f"no longer running: {', '.join(dead)}")
    driver = Driver(base, admin)
    try:
        got = await stream_gets_notification(base, tokens.mint, driver)
    finally:
        await driver.aclose()
    row.check(got, "the notification did not arrive")
    return row.finish(
        "server and nginx running; a new stream connected through nginx and got its notification"
    )


async def hostile_rows(
    log_dir: Path, examples: int, progress: Callable[[str], None] = print
) -> list[Row]:
    rows: list[Row] = []
    with managed_stack(log_dir) as stack:
        progress(f"hostile input: {stack.describe()}")
        targets = stack.targets(Target(None))
        cases = cases_named(*HOSTILE_CASES)
        by_case: dict[str, list[tuple[str, CaseResult]]] = {}
        for target in targets:
            run = await run_target(target, cases, progress)
            for result in run.results:
                by_case.setdefault(result.case.id, []).append((target.label, result))
        rows += [case_row(by_case[c]) for c in HOSTILE_CASES]

        # Generated input needs a server that tolerates a fast sender: same Redis and secret.
        fuzz = start_server(
            log_dir,
            {
                "JWT_SECRET": stack.secret,
                "REDIS_URL": stack.redis.url,
                "WS_CLIENT_RATE": "100000",
                "WS_MAX_CONNECTIONS_PER_USER": "1000",
                "WS_HEARTBEAT_INTERVAL": "30",
            },
            name="server-fuzz",
        )
        tokens = Minter(stack.secret)
        admin = tokens.mint("faults-admin", admin=True)
        try:
            victim = Driver(fuzz.base, admin)
            marker = f"victim-secret-{time.time_ns()}"
            await victim.publish("victim", marker)
            await victim.aclose()
            run_frames, tried_frames = client_frames_property(
                fuzz.base, tokens.mint, marker, examples
            )
            rows.append(
                await _property_row(
                    Row(
                        "generated-frames",
                        "hostile",
                        "hypothesis: arbitrary client frames (JSON, text, binary, injection)",
                        "each gets its rule 4.x answer (pong, error, or 1003 for binary); "
                        "the stream still answers a ping; no frame carries another user's data "
                        "or a stack trace",
                    ),
                    run_frames,
                    tried_frames,
                    "frames",
                )
            )
            run_tokens, tried_tokens = tokens_property(fuzz.base, stack.secret, examples)
            rows.append(
                await _property_row(
                    Row(
                        "generated-tokens",
                        "hostile",
                        "hypothesis: tokens over arbitrary claims and algorithms, tampered "
                        "tokens, arbitrary text, in the query or the header",
                        "in exactly when docs/contract.md 2 says (HS256, string `sub`, future "
                        "`exp`, no future `nbf`), as that `sub`; otherwise 4401 after accept "
                        "with nothing delivered",
                    ),
                    run_tokens,
                    tried_tokens,
                    "tokens",
                )
            )
        finally:
            fuzz.process.stop()
        processes = [stack.server.process, stack.proxy.process]
        rows.append(await still_serves(stack.proxy.base, admin, tokens, processes))
    # Stopped: every log is complete.
    rows.append(scan_logs(log_dir, stack.secret))
    return rows
