"""The resource-exhaustion rows: each passes against the reference server (as a target, over
the network only), and the server without its guard fails the row named for it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from notify_client.target import Target
from notify_contract.rules import Level, rule
from notify_contract.settings import Limits
from notify_contract.tokens import Minter
from notify_contract.verdicts import Verdict
from notify_faults.attacks import ExhaustionFacts, StallFacts
from notify_faults.catalogue import ATTACKS
from notify_faults.raw import run_attack
from notify_faults.registry import CI, Victim
from notify_stack.fixtures import SECRET, Servers
from notify_stack.stack import ServerHandle

SMALL = replace(
    CI, clients=10, publish_rate=20, stalled=60, exhaust_max=120, exhaust_cap=80,
    flood_seconds=1.5, churn=60, drain=15,
)  # fmt: skip


def target(server: ServerHandle) -> Target:
    return Target(
        server.base, "reference", tokens=Minter(SECRET), limits=Limits(heartbeat_interval=2.0)
    )


@pytest.fixture(scope="module")
def guarded(servers: Servers) -> ServerHandle:
    return servers.start(WS_HANDSHAKE_TIMEOUT="1", WS_MAX_CONNECTIONS=str(SMALL.exhaust_cap))


@pytest.mark.parametrize("attack_id", sorted(set(ATTACKS) - {"descriptor-exhaustion"}))
async def test_the_reference_server_survives(guarded: ServerHandle, attack_id: str) -> None:
    row = await run_attack(ATTACKS[attack_id], target(guarded), SMALL, Victim(guarded.process.pid))
    assert row.outcome is Verdict.PASS, (row.problems, row.observed)


async def test_exhaustion_finds_the_cap_and_refuses_cleanly(guarded: ServerHandle) -> None:
    row = await run_attack(
        ATTACKS["descriptor-exhaustion"], target(guarded), SMALL, Victim(guarded.process.pid)
    )
    assert row.outcome is Verdict.PASS, (row.problems, row.observed)
    facts = row.facts
    assert isinstance(facts, ExhaustionFacts)
    assert facts.refused_at is not None and facts.refused_at <= SMALL.exhaust_cap + 1
    assert set(facts.refusals) == {"HTTP 503"}
    assert row.lost == 0 and facts.fleet_closed == 0


@pytest.mark.parametrize(
    ("fault", "attack_id", "problem"),
    [
        ("no-head-deadline", "slow-handshake", "still open"),
        ("swallow-refusal", "many-headers", "not a clean refusal"),
        ("no-body-limit", "oversized-body", "declared 67108864 bytes, sent none"),
        ("no-body-limit", "trickled-body", "no answer within 13 s"),
    ],
)
async def test_without_the_guard_the_row_fails(
    servers: Servers, fault: str, attack_id: str, problem: str
) -> None:
    broken = servers.start(module="reference_server.tests.broken_server", BROKEN_FAULT=fault)
    row = await run_attack(ATTACKS[attack_id], target(broken), SMALL, Victim())
    # A SHOULD row not met is non-strict (reported, never a failed run); a MUST row fails.
    should = rule(ATTACKS[attack_id].rule).level is Level.SHOULD
    assert row.outcome is (Verdict.NON_STRICT if should else Verdict.FAIL)
    assert any(problem in p for p in row.problems), row.problems


async def test_a_target_without_tokens_is_not_run(guarded: ServerHandle) -> None:
    bare = Target(guarded.base, "no tokens")
    row = await run_attack(ATTACKS["slow-handshake"], bare, SMALL, Victim())
    assert row.outcome is Verdict.NOT_RUN
    assert "--jwt-secret" in row.observed
    assert not isinstance(row.facts, StallFacts)
