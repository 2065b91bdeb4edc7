"""The fault rows against a server this suite did not start.

The attack cases of the contract suite, the per-user limit race and "still serves" need only
the network. The restart row runs when the user gives the commands that stop and start the
server (`--kill-cmd`, `--start-cmd`), the reload and Redis rows with `--reload-cmd` and
`--redis-restart-cmd`. The other rows need control this suite has only over servers it started,
so they are "not run" with that reason, and the table says so.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from contract_tests.runner import cases_named, run_target
from notify_client.driver import CommandDriver, Driver
from notify_client.target import Target
from notify_contract.verdicts import Verdict
from notify_faults.catalogue import ATTACKS, FAULTS
from notify_faults.fleet import Fleet, WsClient
from notify_faults.hostile import HOSTILE_CASES, case_row, stream_gets_notification
from notify_faults.load import delivery, under_load
from notify_faults.raw import run_attack
from notify_faults.registry import Scale, Victim
from notify_faults.streams import EXTRA, race
from notify_faults.table import Row, failures_recorded

NEEDS_PROCESSES = (
    "needs control of the target's processes (kill, restart, reload, Redis, its memory and "
    "descriptors), which this suite has only over servers it started"
)
# The reconnect policy's first four delays (1 + 2 + 4 + 8 s) and some slack.
NEWCOMER_WITHIN = 20.0
NEEDS_COMMANDS = "needs --kill-cmd and --start-cmd for the target"


@dataclass(frozen=True)
class Control:
    """Commands that act on the target's processes (run with the shell, each must return)."""

    kill: str | None = None  # stops the server at once, e.g. `kill -9 $(cat server.pid)`
    start: str | None = None  # starts it again in the background and returns
    reload: str | None = None  # reloads the proxy in front of it (streams must stay open)
    redis_restart: str | None = None  # restarts its Redis (streams must stay open)


def shell(command: str, timeout: float = 60.0) -> float:
    """Run one of the user's commands; the seconds it took. A failing command is an error."""
    started = time.monotonic()
    done = subprocess.run(  # noqa: S602 - the user's own command, as given
        command,
        shell=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command!r} exited {done.returncode}: {done.stderr[-300:]!r}")
    return time.monotonic() - started


def not_run(row: Row, why: str) -> Row:
    row.outcome, row.observed = Verdict.NOT_RUN, why
    return row


async def target_rows(
    target: Target,
    scale: Scale,
    progress: Callable[[str], None] = print,
    control: Control | None = None,
) -> list[Row]:
    rows = []
    run = await run_target(target, cases_named(*HOSTILE_CASES), progress)
    for result in run.results:
        row = case_row([(target.label, result)])
        if result.verdict is Verdict.NOT_RUN:  # not given what it needs (case_row: the rest)
            row = not_run(row, result.reason)
        rows.append(row)
    rows.append(await limit_race(target, scale.limit_rounds))
    control = control or Control()
    rows.append(await restart(target, scale, control))
    rows.append(
        await survives(target, scale, "nginx-reload", "--reload-cmd", control.reload, "reloaded")
    )
    rows.append(
        await survives(
            target,
            scale,
            "redis-restart",
            "--redis-restart-cmd",
            control.redis_restart,
            "had its Redis restarted",
        )
    )
    for attack in ATTACKS.values():
        if scale.name == "ci" and not attack.ci:
            continue  # --scope ci: the bounded rows only, as on our own stack
        progress(f"== attack: {attack.id}")
        rows.append(await run_attack(attack, target, scale, Victim()))
    rows.append(await still_serves(target))
    ran = ("per-user-limit-race", "server-sigkill", "nginx-reload", "redis-restart", *ATTACKS)
    for fault_id, declared in FAULTS.items():
        if fault_id not in ran:
            rows.append(not_run(declared.row(scale), NEEDS_PROCESSES))
    return rows


async def survives(
    target: Target, scale: Scale, row_id: str, option: str, command: str | None, what: str
) -> Row:
    """The user's command under load (a proxy reload, a Redis restart): every stream stays
    open, publishes refused meanwhile are retried, nothing acknowledged is lost."""
    row = Row(
        row_id,
        "fault",
        f"the target {what} ({option}) under load, {scale.clients} streams",
        "no stream closes; publishes refused meanwhile are retried; a new stream connects by the "
        "reconnect policy; lost 0",
    )
    if command is None:
        return not_run(row, f"needs {option} for the target")
    if target.tokens is None:
        return not_run(row, "needs tokens: give --jwt-secret or --token-cmd")
    async with failures_recorded(row):
        return await _survives(target, scale, row, option, command)
    return row


async def _survives(target: Target, scale: Scale, row: Row, option: str, command: str) -> Row:
    assert target.tokens is not None
    tokens = target.tokens
    load, clients = await under_load(target, tokens, scale, row.id)
    hit = time.time()
    try:
        took = await asyncio.to_thread(shell, command)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        await load.abort()
        row.problems.append(f"{type(exc).__name__}: {exc}")
        return row.finish(f"{option} failed")
    try:
        await load.publisher.reached(load.ledger.total + int(scale.publish_rate))
    except TimeoutError:
        await load.abort()
        raise
    # A newcomer reconnects by the policy: a 1011 or 503 while the target's backend recovers is
    # allowed by rule 7.4, a newcomer that never gets in is not.
    user = f"{row.id}-after-{time.time_ns()}"
    client = WsClient(
        "newcomer", user, target.base, tokens.mint(user), load.archive, token_in=target.token_in
    )
    newcomer = Fleet([client])
    try:
        await newcomer.start(timeout=NEWCOMER_WITHIN)
        joined = ""
    except TimeoutError as exc:
        joined = str(exc)
    finally:
        await newcomer.close()
    life = newcomer.clients[0].life
    counted = await load.finish(scale)
    delivery(row, load.ledger, counted, clients, hit)
    closed = sum(len(c.life.closes) for c in clients)
    row.check(closed == 0, f"{closed} streams closed")
    row.check(not joined, f"a new stream did not connect by the reconnect policy: {joined}")
    retries = len(life.closes) + life.failed_attempts
    codes = sorted({str(code) for _, code in life.closes})
    newcomer_note = f" after {retries} refused attempts" if retries else ""
    if codes:
        newcomer_note += f" (closed with {', '.join(codes)})"
    return row.finish(
        f"{option} took {took:.2f} s; {closed} of {len(clients)} streams closed; a new stream "
        f"connected{newcomer_note}; {load.ledger.total} published ({load.ledger.refused} "
        f"refused and retried), {counted.delivered} of {counted.owed} deliveries made"
    )


async def restart(target: Target, scale: Scale, control: Control) -> Row:
    """The target stopped by --kill-cmd and started again by --start-cmd under load: every
    client reconnects by the policy and resumes; nothing acknowledged is lost."""
    row = Row(
        "server-sigkill",
        "fault",
        f"the target stopped (--kill-cmd) and started again (--start-cmd), {scale.clients} streams",
        "clients reconnect with jittered backoff and resume with last_id; all back; lost 0",
    )
    if not (control.kill and control.start):
        return not_run(row, NEEDS_COMMANDS)
    if target.tokens is None:
        return not_run(row, "needs tokens: give --jwt-secret or --token-cmd")
    async with failures_recorded(row):
        return await _restart(target, scale, control, row)
    return row


async def _restart(target: Target, scale: Scale, control: Control, row: Row) -> Row:
    assert target.tokens is not None and control.kill and control.start
    load, clients = await under_load(target, target.tokens, scale, "restart")
    hit = time.time()
    try:
        stopped_s = await asyncio.to_thread(shell, control.kill)
        started_s = await asyncio.to_thread(shell, control.start)
        back = await load.fleet.all_back(hit, timeout=120)
    except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as exc:
        await load.abort()
        row.problems.append(f"{type(exc).__name__}: {exc}")
        return row.finish("the restart did not complete")
    counted = await load.finish(scale)
    delivery(row, load.ledger, counted, clients, hit)
    row.recovery_s = round(back - hit, 3)
    gave_up = load.fleet.gave_up()
    row.check(not gave_up, f"{len(gave_up)} clients gave up")
    return row.finish(
        f"--kill-cmd took {stopped_s:.2f} s, --start-cmd {started_s:.2f} s; all {len(clients)} "
        f"streams back {row.recovery_s} s after the kill; {load.ledger.total} published, "
        f"{counted.delivered} of {counted.owed} deliveries made"
    )


async def limit_race(target: Target, rounds: int) -> Row:
    limit = target.limits.max_connections_per_user
    row = Row(
        "per-user-limit-race",
        "fault",
        f"{rounds} rounds of {limit + EXTRA} simultaneous connects of one user",
        f"never more than {limit} (the target's per-user limit) open; the rest closed with 4429",
    )
    if target.tokens is None:
        return not_run(row, "needs tokens: give --jwt-secret or --token-cmd")
    mint = target.tokens.mint
    async with failures_recorded(row):
        return await race(row, rounds, limit, mint, lambda i: target.base, target.token_in)
    return row


async def still_serves(target: Target) -> Row:
    row = Row(
        "still-serves",
        "hostile",
        "after all of the above",
        "a new stream connects and gets a notification published for it",
    )
    if target.tokens is None:
        return not_run(row, "needs tokens: give --jwt-secret or --token-cmd")
    admin = target.tokens.mint("faults-admin", admin=True)
    driver = (
        CommandDriver(target.base, admin, target.driver_cmd)
        if target.driver_cmd
        else Driver(target.base, admin)
    )
    async with failures_recorded(row):
        try:
            got = await stream_gets_notification(
                target.base, target.tokens.mint, driver, target.token_in
            )
        finally:
            await driver.aclose()
        row.check(got, "the notification did not arrive")
        return row.finish("a new stream connected and got its notification")
    return row
