"""Every fault row and attack row, in the order the reliability table shows them: declared in
their modules, listed here once (nothing is registered at import)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from notify_client.target import Target
from notify_contract.settings import Limits
from notify_faults import attacks, bodies, restarts, streams
from notify_faults.lab import Lab
from notify_faults.raw import merge, run_attack
from notify_faults.registry import Attack, FaultRow, Scale, Scenario, Victim
from notify_faults.table import Row

# Attacks run against any target (`--target`), and on the reference stack as fault rows.
ATTACK_LIST: tuple[Attack, ...] = (
    attacks.slow_handshake,
    attacks.exhaustion,
    attacks.handshake_flood,
    attacks.many_headers,
    attacks.no_key,
    attacks.open_close_loop,
    bodies.oversized_body,
    bodies.trickled_body,
)


def on_the_stack(attack: Attack) -> Scenario:
    """The attack against the reference server directly and through nginx (strict)."""

    async def scenario(lab: Lab, scale: Scale, out: Path, row: Row) -> Row:
        settings = lab.settings(
            WS_HEARTBEAT_INTERVAL="2", WS_MAX_CONNECTIONS=str(scale.exhaust_cap)
        )
        server = lab.start_server(settings)
        proxy = lab.start_nginx([server])
        victim = Victim(server.process.pid)
        runs = []
        for where, base in (("directly", server.base), ("through nginx", proxy.base)):
            target = Target(base, where, tokens=lab.tokens, limits=Limits(heartbeat_interval=2.0))
            runs.append((where, await run_attack(attack, target, scale, victim)))
        return merge(runs, row)

    return scenario


def as_fault(attack: Attack) -> FaultRow:
    title = attack.title + ", directly and through nginx"
    return FaultRow(attack.id, title, attack.expected, attack.ci, on_the_stack(attack))


FAULT_LIST: tuple[FaultRow, ...] = (
    restarts.redis_restart,
    restarts.redis_restart_empty,
    restarts.pubsub_killed,
    restarts.server_sigkill,
    restarts.server_sigterm,
    restarts.nginx_reload,
    streams.slow_consumer,
    streams.half_open,
    streams.limit_race,
    *(as_fault(a) for a in ATTACK_LIST),
)


Row_ = TypeVar("Row_", Attack, FaultRow)


def by_id(rows: tuple[Row_, ...]) -> dict[str, Row_]:
    """The rows by id; two with one id is a mistake in this file."""
    out: dict[str, Row_] = {}
    for r in rows:
        if r.id in out:
            raise ValueError(f"two rows named {r.id!r}")
        out[r.id] = r
    return out


ATTACKS = by_id(ATTACK_LIST)
FAULTS = by_id(FAULT_LIST)
