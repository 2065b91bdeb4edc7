"""The fault rows that need only the network, against a server this suite did not start.

The attack cases of the contract suite, the per-user limit race, and "still serves" run against
the target; rows that kill, restart or reload processes need control this suite has only over
servers it started, so they are "not run" with that reason, and the table says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from contract_tests.context import Target
from contract_tests.registry import CASES, Verdict
from contract_tests.runner import run_target
from loadtests.faults.hostile import HOSTILE_CASES, case_row
from loadtests.faults.scenarios import FAULTS, LimitRaceFacts, Scale, _first_frame
from loadtests.faults.table import Outcome, Row
from notify_client.client import StreamClient
from notify_client.driver import CommandDriver, Driver
from notify_contract.codes import WS_4429_TOO_MANY_CONNECTIONS
from notify_contract.protocol import WS_NOTIFICATIONS_PATH

NEEDS_PROCESSES = (
    "needs control of the target's processes (kill, restart, reload, Redis, its memory and "
    "descriptors), which this suite has only over servers it started"
)


def not_run(row: Row, why: str) -> Row:
    row.outcome, row.observed = Outcome.NOT_RUN, why
    return row


async def target_rows(
    target: Target, scale: Scale, progress: Callable[[str], None] = print
) -> list[Row]:
    rows = []
    run = await run_target(target, [CASES[c] for c in HOSTILE_CASES], progress)
    for result in run.results:
        row = case_row([(target.label, result)])
        if result.verdict is Verdict.NOT_RUN:  # declared missing, or not given what it needs
            row = not_run(row, result.reason)
        rows.append(row)
    rows.append(await limit_race(target, scale.limit_rounds))
    rows.append(await still_serves(target))
    for fault_id, declared in FAULTS.items():
        if fault_id != "per-user-limit-race":
            rows.append(not_run(declared.row(scale), NEEDS_PROCESSES))
    return rows


async def limit_race(target: Target, rounds: int) -> Row:
    limit = target.max_per_user
    row = Row(
        "per-user-limit-race",
        "fault",
        f"{rounds} rounds of {limit + 9} simultaneous connects of one user",
        f"never more than {limit} (the target's per-user limit) open; the rest closed with 4429",
    )
    if target.tokens is None:
        return not_run(row, "needs tokens: give --jwt-secret or --token-cmd")
    held: list[int] = []
    codes: dict[str, int] = {}
    for r in range(rounds):
        tok = target.tokens.mint(f"race-{r}-{time.time_ns()}")
        streams = await asyncio.gather(
            *(
                StreamClient.open(target.base, WS_NOTIFICATIONS_PATH, tok, token_in=target.token_in)
                for _ in range(limit + 9)
            )
        )
        results = await asyncio.gather(*(_first_frame(s) for s in streams))
        held.append(sum(1 for r in results if r == "connected"))
        for res in results:
            codes[res] = codes.get(res, 0) + 1
        for s in streams:
            await s.close()
    row.facts = LimitRaceFacts(len(held), held, codes)
    row.check(max(held) <= limit, f"a user held {max(held)} streams at once")
    row.check(min(held) == limit, f"a round held only {min(held)}: the limit is not reachable")
    row.check(
        codes.get(str(WS_4429_TOO_MANY_CONNECTIONS), 0) == 9 * len(held),
        f"outcomes {codes}: the extra streams were not all closed with 4429",
    )
    return row.finish(
        f"{len(held)} rounds of {limit + 9}: held {min(held)}-{max(held)} per round; "
        f"outcomes {codes}"
    )


async def still_serves(target: Target) -> Row:
    row = Row(
        "still-serves",
        "hostile",
        "after all of the above",
        "a new stream connects and gets a notification published for it",
    )
    if target.tokens is None:
        return not_run(row, "needs tokens: give --jwt-secret or --token-cmd")
    user = f"survivor-{time.time_ns()}"
    stream = await StreamClient.open(
        target.base, WS_NOTIFICATIONS_PATH, target.tokens.mint(user), token_in=target.token_in
    )
    admin = target.tokens.mint("faults-admin", admin=True)
    driver = (
        CommandDriver(target.base, admin, target.driver_cmd)
        if target.driver_cmd
        else Driver(target.base, admin)
    )
    try:
        await stream.expect("connected", timeout=10)
        published = await driver.publish(user, "still here")
        got = await stream.expect("notification", timeout=10)
        row.check(got.data.get("id") == published["id"], "the notification did not arrive")
    finally:
        await driver.aclose()
        await stream.close()
    return row.finish("a new stream connected and got its notification")
