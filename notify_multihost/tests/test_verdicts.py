"""The multihost run's verdicts without hosts: each tier beside the plan, what fails the run,
and the lost-host row, each shown failing for a run broken on purpose."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

from loadtests.plan import Cost
from notify_contract.verdicts import Verdict
from notify_faults.table import Row
from notify_multihost.__main__ import lost_host_row
from notify_multihost.host_costs import HostSampler, HostSpend, check_tier, spend
from notify_multihost.load_run import LoadResult
from notify_multihost.report import failures
from notify_stack.stack import wait_until


def rows(host: str, points: list[tuple[float, float, float]]) -> list[dict[str, float | str]]:
    return [{"wall": w, "host": host, "cpu_seconds": c, "rss_mb": m} for w, c, m in points]


def test_spend_interpolates_the_hold_and_counts_memory_over_the_first_sample() -> None:
    samples = rows("s1", [(0, 0, 100), (10, 1, 150), (20, 3, 200), (30, 4, 200)])
    [got] = spend(samples, 5, 25)
    assert got == HostSpend("s1", 3.0, 75.0)  # 3.5 - 0.5 CPU; 175 MB at 15 s, less 100


def test_a_host_whose_samples_miss_the_hold_is_not_measured() -> None:
    [got] = spend(rows("s1", [(10, 1, 150), (20, 3, 200)]), 5, 25)
    assert got == HostSpend("s1", None, None)


def test_a_tier_within_and_beyond_the_bound() -> None:
    spent = [HostSpend("a", 1.0, 10.0), HostSpend("b", 1.0, 10.0)]
    near = check_tier(
        "servers", ("a", "b"), Cost(20.0, 2.0), spent, streams=10240, delivered=100_000
    )
    assert (near.cpu_predicted, near.cpu_measured, near.mem_predicted) == (2.0, 2.0, 20.0)
    assert near.within is True
    far = check_tier(
        "servers", ("a", "b"), Cost(40.0, 2.0), spent, streams=10240, delivered=100_000
    )
    assert far.cpu_error == 1.0
    assert far.within is False
    missing = check_tier("servers", ("a", "b", "c"), Cost(20.0, 2.0), spent, streams=1, delivered=1)
    assert missing.cpu_measured is None
    assert missing.within is None
    unplanned = check_tier("nginx", ("a",), Cost(None, None), spent, streams=1, delivered=1)
    assert unplanned.within is None


def result(code: int = 0, **figures: int) -> LoadResult:
    base = {"streams_connected": 30, "owed": 60, "delivered": 60, "lost": 0}
    summary = {"figures": {**base, **figures}}
    return LoadResult(Path("run"), code, summary, {"gen1": 10}, None)


def test_a_clean_load_passes_and_each_broken_one_fails() -> None:
    assert failures(result(), []) == []
    assert any("lost 2" in f for f in failures(result(1, lost=2, delivered=58), []))
    assert any("another user" in f for f in failures(result(1, misrouted_streams=1), []))
    assert any("nothing" in f for f in failures(result(0, delivered=0, owed=0), []))
    assert any("no summary" in f for f in failures(LoadResult(None, 1, {}, {}, None), []))
    broken = Row("x", "fault", "t", "e")
    broken.check(False, "it broke")
    broken.finish("seen")
    assert failures(result(), [broken]) == ["x: it broke"]


def test_the_lost_host_row_needs_the_lost_worker_reported() -> None:
    reported = result(1, generator_workers_lost=1, unreported_streams=10)
    assert lost_host_row(reported).outcome is Verdict.PASS
    silent = result(0, generator_workers_lost=0, unreported_streams=0)
    row = lost_host_row(silent)
    assert row.outcome is Verdict.FAIL
    assert len(row.problems) == 3  # no lost worker, no unreported stream, exit 0
    assert lost_host_row(
        result(1, generator_workers_lost=1, unreported_streams=10, lost=3)
    ).problems


def test_a_partition_that_missed_or_doubled_a_broadcast_fails_the_run() -> None:
    from notify_multihost.report import bus_failures

    fine = [{"host": "r1", "partition": 0, "publish_calls": 7, "sent": 7}]
    assert bus_failures(fine) == []
    missed = [*fine, {"host": "r2", "partition": 1, "publish_calls": 0, "sent": 7}]
    assert bus_failures(missed) == ["r2 (partition 1) ran 0 PUBLISH for 7 broadcasts"]
    unknown = [{"host": "r1", "partition": 0, "publish_calls": 0, "sent": None}]
    assert bus_failures(unknown)  # nothing published: not a pass


# A parent and its child, both waiting on their stdin: they end when the test closes it.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=sys.stdin)
sys.stdin.read()
child.wait()
"""


def test_a_root_counted_by_its_children_only_leaves_its_own_process_out() -> None:
    proc = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    try:
        wait_until(lambda: len(root.children()) == 1, 10, "the child")
        [child] = root.children()
        sampler = HostSampler({"gen": [proc.pid]})
        sampler.sample()
        assert set(sampler.pids) == {proc.pid, child.pid}
        whole = sampler.rows[-1]["rss_mb"]
        sampler.children_only.add(proc.pid)
        sampler.pids.clear()
        sampler.sample()
        assert set(sampler.pids) == {child.pid}
        assert 0 < sampler.rows[-1]["rss_mb"] < whole
    finally:
        assert proc.stdin is not None
        proc.stdin.close()  # both see the end of their input and exit
        proc.wait(10)


def test_an_amplification_that_could_not_run_is_not_measured_not_zero() -> None:
    from notify_multihost.__main__ import amplification_data
    from notify_multihost.report import amplification_lines

    data = amplification_data("not measured: no valkey-server found")
    assert data == {"not_measured": "not measured: no valkey-server found"}
    assert amplification_lines(data) == ["not measured: no valkey-server found"]
