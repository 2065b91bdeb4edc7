"""Each locust user writes its histograms once; the run reads every process's file and merges
them, per broadcast too."""

from __future__ import annotations

from pathlib import Path

from loadtests import latencies
from loadtests.latencies import Latencies


def test_every_users_histograms_are_merged_across_process_files(tmp_path: Path) -> None:
    herd, other = Latencies(heartbeats=4), Latencies(untimed=2, heartbeats=3)
    for ms, seq in ((5.0, 1), (15.0, 1), (25.0, 2)):
        herd.add(ms, seq)
    other.add(35.0, 2)
    latencies.write(tmp_path / "latency-101.jsonl", herd)
    latencies.write(tmp_path / "latency-202.jsonl", other)
    got = latencies.read(tmp_path)
    assert got is not None
    assert (got.every.count, got.untimed, got.every.max_ms, got.heartbeats) == (4, 2, 35.0, 7)
    assert {seq: h.count for seq, h in got.per_broadcast.items()} == {1: 2, 2: 2}
    assert got.per_broadcast[2].percentile(1.0) == 35.0


def test_a_run_whose_users_wrote_nothing_measured_nothing(tmp_path: Path) -> None:
    """No file (a worker killed before its users stopped): not measured, not 0 received."""
    assert latencies.read(tmp_path) is None
    latencies.write(tmp_path / "latency-1.jsonl", Latencies())  # a user that got nothing
    got = latencies.read(tmp_path)
    assert got is not None and (got.every.count, got.every.percentile(0.99)) == (0, None)
