from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loadtests.compare import ModeRun, broke, derive, nothing_measured, problems, verdicts, write
from loadtests.figures import Figures


def result(mode: str, users: int, **figures: Any) -> ModeRun:
    base = {
        "connect_failures": 0,
        "unexpected_closes": 0,
        "lost": 0,
        "p50_ms": 10.0,
        "p99_ms": 20.0,
        "redis_clients_max": 5,
        "redis_pubsub_clients_max": 1,
        "redis_clients_after": 5,
    }
    return ModeRun(mode, users, Figures(**{**base, **figures}))


def test_verdicts_name_what_was_measured_and_where_each_mode_broke() -> None:
    results = [
        result("websocket", 100),
        result("sse-shared", 100),
        result("sse-per-connection", 100, redis_pubsub_clients_max=101, redis_clients_max=120),
        result("websocket", 12000),
        result("sse-shared", 12000),
        result("sse-per-connection", 12000, connect_failures=1990),
    ]
    lines = dict(verdicts(results))
    assert (
        "101 Redis PubSub connections"
        in lines["Connection management: every SSE connection creates its own PubSub connection"]
    )
    count = lines[
        "Connection count: SSE limited by Redis connections, WebSocket only by the server"
    ]
    assert "sse-per-connection: broke at 12000 (1990 connect failures)" in count
    assert "websocket: held every N tried (up to 12000)" in count


def test_a_run_that_could_not_start_is_broken_with_its_reason() -> None:
    assert broke(ModeRun("websocket", 5, error="budget")) == "budget"
    assert broke(result("websocket", 5)) is None


def test_a_mode_in_which_nothing_connected_counts_as_not_run() -> None:
    assert nothing_measured(Figures(streams_connected=0, lost=0)) is not None
    assert nothing_measured(Figures(lost=0)) is not None
    assert nothing_measured(Figures(streams_connected=10, lost=0)) is None


def test_each_mode_fails_on_its_own_missed_thresholds_or_on_not_running() -> None:
    """The SSE side got nothing (HTTP 200, an error as its first event): its run missed the
    default thresholds, and the comparison fails on that mode (it exited 0)."""
    ws = ModeRun("websocket", 125)
    sse = ModeRun("sse", 125, missed=("never_connected_streams == 0: 125 (MISSED, a default)",))
    absent = ModeRun("sse", 125, error="not applicable", applicable=False)
    assert problems(ws) == [] and problems(absent) == []
    assert problems(sse) == ["never_connected_streams == 0: 125 (MISSED, a default)"]
    assert problems(ModeRun("sse", 5, error="budget")) == ["budget"]


def test_the_servers_stream_counts_of_an_sse_run_are_not_measured() -> None:
    """The stats count WebSocket streams: an SSE run's "peak connections 0" beside 1,000
    streams connected was a figure nobody measured."""
    sse = derive(result("sse-shared", 1000, peak_connections=0, connections_held=0))
    assert (sse.figures.peak_connections, sse.figures.connections_held) == (None, None)
    ws = derive(result("websocket", 1000, peak_connections=1000))
    assert ws.figures.peak_connections == 1000


def test_a_saved_comparison_reads_back_as_it_was_written(tmp_path: Path) -> None:
    """`--report-only` renders from compare.json: the rows come back whole, figures and all."""
    results = [
        result("websocket", 10, streams_connected=10, p99_ms=12.5),
        ModeRun("sse", 10, error="not applicable: no SSE", applicable=False),
    ]
    write(tmp_path, results, {"created": "now", "command": "compare"})
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert [ModeRun.from_dict(r) for r in saved["results"]] == [derive(r) for r in results]
    summary = (tmp_path / "summary.md").read_text()
    assert "| delivery latency p99 | 12.5 ms | did not run |" in summary
