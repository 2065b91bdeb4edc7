"""The generators comparison: each peer generator against a real reference server, a broken one
caught, and what k6's and Artillery's own result files are read as."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pytest

from loadtests.figures import Figures
from loadtests.generators import (
    BY_NAME,
    FLOOR,
    GENERATORS,
    TOOLKIT,
    Plan,
    Row,
    external,
    failed,
    python_generator,
    read_result,
    write,
)

USERS = 40
NO_TOOLS = argparse.Namespace(k6=None, artillery=None)


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    # Two broadcasts (1 s apart) in a 3 s hold: every stream is owed two notifications.
    return Plan(USERS, 200.0, 3.0, 1.0, tmp_path)


def test_the_plain_client_counts_every_notification_owed(plan: Plan) -> None:
    row = external(BY_NAME["websockets-asyncio"], plan, NO_TOOLS)
    assert row.error is None
    f = row.figures
    assert (f.streams_connected, f.broadcasts, f.owed) == (USERS, 2, 2 * USERS)
    assert (f.notifications, f.lost, f.gaps) == (2 * USERS, 0, 0)
    assert f.frames_received is not None and f.frames_received >= 3 * USERS  # + `connected`
    assert f.p99_ms is not None and f.generator_cpu_us_per_received is not None
    assert f.generator_mem_per_conn_kb is not None and f.generator_mem_per_conn_kb > 0
    assert failed([row]) == []
    assert (plan.out / "websockets-asyncio.result.json").exists()


def test_a_generator_that_drops_a_notification_fails_the_run(plan: Plan) -> None:
    lossy = replace(
        BY_NAME["websockets-asyncio"],
        name="lossy",
        command=python_generator("loadtests.tests.lossy_generator"),
    )
    row = external(lossy, plan, NO_TOOLS)
    assert row.figures.lost == USERS  # one of its two notifications, on every stream
    assert failed([row]) == [f"lossy lost {USERS}"]


def test_the_floor_holds_the_streams_and_counts_nothing_it_cannot(plan: Plan) -> None:
    row = external(BY_NAME[FLOOR], plan, NO_TOOLS)
    assert row.error is None
    f = row.figures
    assert (f.streams_connected, f.owed) == (USERS, 2 * USERS)
    assert f.notifications is None and f.lost is None and f.p99_ms is None
    assert f.generator_cpu_seconds_in_hold is not None


def test_a_tool_not_given_is_a_row_that_says_so(plan: Plan) -> None:
    for name in ("k6", "artillery"):
        row = external(BY_NAME[name], plan, NO_TOOLS)
        assert row.error is not None and f"--{name} PATH" in row.error


def test_the_toolkit_not_running_fails_the_run_and_others_missing_do_not() -> None:
    rows = [Row(TOOLKIT, error="did not start"), Row("k6", error="no k6 binary")]
    assert failed(rows) == ["toolkit: did not start"]
    # A toolkit run that received nothing lost nothing: that passes nothing.
    assert failed([Row(TOOLKIT, Figures(delivered=0, lost=0))]) == ["toolkit: nothing delivered"]
    assert failed([Row(TOOLKIT, Figures(delivered=10, lost=0))]) == []


def test_k6_and_artillery_results_are_read_for_what_they_hold() -> None:
    k6 = {
        "metrics": {
            "streams_opened": {"values": {"count": 10}},
            "notifications_received": {"values": {"count": 20}},
            "frames_received": {"values": {"count": 35}},
            "notification_latency": {"values": {"p(50)": 3.5, "p(99)": 9.0}},
        }
    }
    got = read_result("k6", k6)
    assert (got.streams_connected, got.notifications, got.frames_received) == (10, 20, 35)
    assert (got.gaps, got.p50_ms, got.p99_ms) == (0, 3.5, 9.0)
    artillery = {"aggregate": {"counters": {"vusers.created": 10, "vusers.failed": 2}}}
    got = read_result("artillery", artillery)
    assert got.streams_connected == 8 and got.notifications is None and got.p99_ms is None


def test_the_page_has_a_row_per_generator_and_the_ratio_to_the_floor(tmp_path: Path) -> None:
    rows = [
        Row(TOOLKIT, Figures(generator_cpu_us_per_received=30.0, lost=0)),
        Row(FLOOR, Figures(generator_cpu_us_per_received=3.0)),
        Row("k6", error="no k6 binary"),
    ]
    meta = {
        "created": "now",
        "command": "python -m loadtests.generators",
        "git_commit": "abc",
        "users": 10,
        "rate": 10.0,
        "hold": 4.0,
        "broadcast_interval": 1.0,
    }
    text = write(tmp_path, rows, meta).read_text()
    assert "- toolkit: 10.00x" in text
    assert "| k6 | no k6 binary |" in text
    assert len([g for g in GENERATORS if f"`{g.name}`" in text]) == 3
