"""A cross-host fault row on real simulated hosts: a server host's link down passes against the
reference server and fails, with the loss counted, against one that ignores `last_id`."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from loadtests.config import RunConfig
from loadtests.run import stack_spec
from notify_contract.verdicts import Verdict
from notify_faults.across_hosts import ROWS
from notify_faults.registry import CI
from notify_multihost.__main__ import fault_rows
from notify_multihost.topology import HOSTS, on_hosts
from notify_stack import hosts

pytestmark = pytest.mark.skipif(hosts.unavailable() is not None, reason=str(hosts.unavailable()))

LINK_DOWN = tuple(r for r in ROWS if r.id == "server-host-link-down")
SMALL = replace(CI, clients=30, publish_rate=60)
# Streams on the lost host miss what is published until their watchdog (2.5 heartbeats) has
# them reconnect: 2 s heartbeats leave seconds of publishes for a server without resume to lose.
HEARTBEAT = 2.0


@pytest.mark.parametrize("broken", ["", "no-resume"])
def test_a_server_host_lost_loses_nothing_unless_resume_is_broken(
    tmp_path: Path, broken: str
) -> None:
    spec = stack_spec(RunConfig(users=100, instances=2, heartbeat_interval=HEARTBEAT))
    module = "reference_server"
    if broken:
        spec = replace(spec, settings={**spec.settings, "BROKEN_FAULT": broken})
        module = "reference_server.tests.broken_server"
    with hosts.fabric(list(HOSTS)) as fabric, on_hosts(fabric, tmp_path, spec, module) as stack:
        [row] = asyncio.run(fault_rows(stack, SMALL, LINK_DOWN, HEARTBEAT))
    assert row.facts is not None and row.facts.streams_moved > 0  # type: ignore[attr-defined]
    if not broken:
        assert row.outcome is Verdict.PASS, row.problems
        assert row.lost == 0
    else:
        assert row.outcome is Verdict.FAIL
        assert (row.lost or 0) > 0, row.observed
        assert any("lost" in p for p in row.problems)
