from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from loadtests import report
from loadtests.config import from_profile
from loadtests.figures import FIGURES, Figures, Table, in_table
from loadtests.figures import shown as figure_rows
from loadtests.generator_hosts import generator_hosts
from loadtests.latencies import Latencies
from loadtests.run import _server_line, nothing_ran
from loadtests.run_files import HOSTS
from loadtests.sampler import server_metrics
from loadtests.summary import (
    Threshold,
    applied,
    failures,
    headline,
    per_broadcast,
    read_tally,
    resources,
)
from notify_client.ledger import Published, StreamLog, count


def measured(*ms: float, untimed: int = 0) -> Latencies:
    """What a generator's streams measured: these latencies, and `untimed` without a send time."""
    timed = Latencies(untimed=untimed)
    for value in ms:
        timed.add(value, None)
    return timed


def stat(name: str, count: int, p50: float, p99: float, top: float) -> dict[str, str]:
    return {
        "Name": name,
        "Request Count": str(count),
        "50%": str(p50),
        "95%": str(p99),
        "99%": str(p99),
        "Max Response Time": str(top),
    }


def row(
    t: float, conns: int, rss: float, cpu: float, frames: int, lag: float = 3.0
) -> dict[str, Any]:
    return {
        "t": t,
        "wall": 1000 + t,
        "total_connections": conns,
        "servers": [
            {
                "rss_mb": rss,
                "cpu_seconds": cpu,
                "frames_sent": frames,
                "fds": conns,
                **server_metrics({"loop_lag_ms": {"max_ms": lag}, "gc_pause_ms": {"max_ms": lag}}),
            }
        ],
        "nginx": [],
        "generators": [{"cpu_percent": 40.0, "cpu_seconds": cpu * 2, "rss_mb": rss / 2}],
    }


def test_each_broadcast_is_counted_by_the_clients_and_the_server_only_cross_checks(
    tmp_path: Path,
) -> None:
    timed = measured()
    for seq, ms in ((1, 5.0), (1, 9.0), (2, 11.0)):
        timed.add(ms, seq)
    lines = [  # the server's stats claim 1 stream each time: it forgot the other one
        {"id": f"b{i}", "user": None, "seq": i, "sent_at": 10.0 * i, "acked_at": 10.0 * i + 0.1}
        | {"error": None, "server_streams": 1}
        for i in (1, 2)
    ]
    (tmp_path / "published.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    logs = [
        {"name": "a", "user": "a", "connected_at": 1.0, "ended_at": 99.0, "ids": ["b1", "b2"]},
        {"name": "b", "user": "b", "connected_at": 1.0, "ended_at": 99.0, "ids": ["b1"]},
    ]
    (tmp_path / "streams-1.jsonl").write_text("".join(json.dumps(e) + "\n" for e in logs))
    tally, published = read_tally(tmp_path)
    got = per_broadcast(timed, published, tally)
    assert [(b.owed, b.received, b.lost) for b in got] == [(2, 2, 0), (2, 1, 1)]
    assert [b.server_streams for b in got] == [1, 1]
    assert got[1].latency.p99_ms == 11.0
    assert (tally.lost, tally.silent, tally.lost_sample) == (1, 0, (("b", "b2"),))


def test_resources_of_the_hold_phase() -> None:
    baseline = row(0, 0, 50.0, 0.0, 0)
    rows = [
        row(1, 500, 60, 1.0, 0, lag=300.0),  # the ramp
        row(10, 1000, 90.0, 2.0, 1000),
        row(11, 1000, 90.0, 2.5, 3000),
        row(12, 1000, 90.0, 3.0, 5000),
    ]
    res = resources(rows, baseline, hold_from=1010)
    assert res.connections_held == 1000
    assert res.mem_per_conn_kb == pytest.approx(40 * 1024 / 1000, rel=1e-3)
    assert res.cpu_us_per_msg == pytest.approx(1.0 / 4000 * 1e6)
    assert res.server_cpu_seconds_in_hold == 1.0
    assert res.generator_cpu_seconds_in_hold == 2.0
    assert res.server_rss_slope_mb_per_min == 0
    assert res.generator_saturated is False
    assert (res.loop_lag_ramp_max_ms, res.loop_lag_max_ms) == (300.0, 3.0)
    assert (res.gc_pause_ramp_max_ms, res.gc_pause_max_ms) == (300.0, 3.0)


def test_failures_by_kind_and_headline() -> None:
    fails = failures(
        [
            {"Method": "WS", "Name": "close 1006", "Occurrences": "2"},
            {"Method": "WS", "Name": "gap", "Occurrences": "1"},
            {"Method": "HTTP", "Name": "broadcast", "Occurrences": "4"},
            {"Method": "WS", "Name": "connect", "Occurrences": "3"},
        ]
    )
    assert fails == {"close 1006": 2, "gap": 1, "publish": 4, "connect": 3}
    res = resources([row(10, 10, 60, 1, 0), row(11, 10, 60, 2, 10)], row(0, 0, 50, 0, 0), 0)
    nothing = count([], [])
    timed = measured(*[4.0] * 10, *[6.0] * 9, 8.0)
    figures = headline({}, fails, [], res, nothing, timed)
    assert figures.unexpected_closes == 2 and figures.gaps == 1
    assert figures.p99_ms == 8.0 and figures.connect_failures == 3
    assert figures.latency_measured_from == "the payload's sent_at"


@pytest.mark.parametrize(
    ("text", "figures", "ok"),
    [
        ("p99_ms<250", {"p99_ms": 120.0}, True),
        ("p99_ms < 250", {"p99_ms": 260.0}, False),
        ("lost==0", {"lost": 0}, True),
        ("lost==0", {"lost": 3}, False),
        ("mem_per_conn_kb<=20", {"mem_per_conn_kb": None}, False),
    ],
)
def test_thresholds(text: str, figures: dict[str, Any], ok: bool) -> None:
    assert Threshold.parse(text).check(Figures(**figures))[0] is ok


@pytest.mark.parametrize("bad", ["p99<250", "p99_ms<<3", "lost", "p99_ms<fast"])
def test_a_bad_threshold_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match="threshold"):
        Threshold.parse(bad)


def test_loss_misrouting_and_streams_never_connected_fail_by_default() -> None:
    defaults = applied(())
    assert [t.metric for t in defaults] == [
        "never_connected_streams",
        "misrouted_streams",
        "generator_workers_lost",
        "lost",
    ]
    refused = Figures(
        lost=0, misrouted_streams=0, never_connected_streams=183, generator_workers_lost=0
    )
    verdicts = [t.check(refused) for t in defaults]
    assert [ok for ok, _ in verdicts] == [False, True, True, True]
    assert "never_connected_streams == 0: 183 (MISSED, a default" in verdicts[0][1]
    # A run that names a figure sets its own bound for it; the other defaults stay.
    own = applied(("lost<=5", "p99_ms<250"))
    assert [(t.metric, t.op, t.value, t.default) for t in own] == [
        ("never_connected_streams", "==", 0, True),
        ("misrouted_streams", "==", 0, True),
        ("generator_workers_lost", "==", 0, True),
        ("lost", "<=", 5, False),
        ("p99_ms", "<", 250, False),
    ]


def test_the_tally_counts_misrouted_and_never_connected_streams() -> None:
    streams = [
        StreamLog("s1", "alice", 1.0, 9.0, (), None),
        StreamLog("s2", "bob", 1.0, 9.0, (), "'alice'"),
        StreamLog("s3", "carol", None, 9.0, ()),
    ]
    tally = count([], streams)
    assert (tally.streams, tally.misrouted, tally.never_connected) == (2, 1, 1)


def test_a_run_in_which_nothing_connected_or_was_published_fails() -> None:
    fanout = from_profile("smoke")
    nothing = Figures(streams_connected=0, published=0)
    assert [ok for ok, _ in nothing_ran(fanout, nothing)] == [False, False]
    assert nothing_ran(fanout, Figures(streams_connected=300, published=9)) == []
    churn = from_profile("smoke", scenario="churn")
    assert nothing_ran(churn, nothing) == []  # churn publishes nothing and logs no stream


def test_the_soak_levels_off_only_if_the_last_third_is_flat() -> None:
    """Growth early (the ramp filling caches) is allowed; growth at the end is a leak."""
    baseline = row(0, 0, 50, 0, 0)
    settling = [row(10 + 60 * i, 100, 60 + min(i, 20) * 2.0, i, 100 * i) for i in range(60)]
    level = resources(settling, baseline, hold_from=1010)
    assert level.server_rss_slope_last_third_mb_per_min == 0.0
    assert (level.server_rss_slope_mb_per_min or 0) > 0  # the whole hold did grow
    leaking = [row(10 + 60 * i, 100 + i, 60 + i * 1.0, i, 100 * i) for i in range(60)]
    leak = resources(leaking, baseline, hold_from=1010)
    assert leak.server_rss_slope_last_third_mb_per_min == 1.0
    assert leak.server_fds_slope_last_third_per_min == 1.0
    soak = Threshold.parse("server_rss_slope_last_third_mb_per_min<=0.5")
    assert soak.check(Figures(server_rss_slope_last_third_mb_per_min=1.0))[0] is False
    assert soak.check(Figures(server_rss_slope_last_third_mb_per_min=None))[0] is False


def test_cpu_per_delivery_divides_by_the_clients_count_not_the_servers() -> None:
    rows = [row(10, 1000, 90.0, 2.0, 1000), row(12, 1000, 90.0, 3.0, 999_999)]
    res = resources(rows, row(0, 0, 50.0, 0.0, 0), hold_from=1010)
    stream = StreamLog("a", "a", connected_at=1.0, ended_at=99.0, ids=("b1",))
    tally = count([Published("b1", None, sent_at=5.0, acked_at=5.1)], [stream])
    figures = headline({}, {}, [], res, tally, measured())
    assert figures.cpu_us_per_delivered == 1e6  # 1 CPU-second over 1 delivery
    assert figures.generator_cpu_us_per_received == 2e6
    nothing = headline({}, {}, [], res, count([], []), measured())
    assert nothing.cpu_us_per_delivered is None  # no delivery: no figure, not zero


def test_what_was_not_sampled_or_timed_is_not_measured_never_zero() -> None:
    """A target without --server-pid, and a payload without `sent_at`: the figures are None
    (printed "not measured"), not the 0 KB and 0 ms they were."""
    bare = [dict(row(t, 0, 0, 0, 0), servers=[], total_connections=None) for t in (10, 11, 12)]
    res = resources(bare, dict(row(0, 0, 0, 0, 0), servers=[]), hold_from=1010, streams=100)
    assert res.connections_held == 100  # the clients' count stands in
    assert (res.mem_per_conn_kb, res.server_rss_hold_mb, res.cpu_us_per_msg) == (None,) * 3
    assert res.server_cpu_seconds_in_hold is None
    figures = headline({}, {}, [], res, count([], []), measured(untimed=40))
    assert figures.notifications == 40
    assert (figures.p50_ms, figures.p99_ms, figures.mem_per_conn_kb) == (None,) * 3
    assert headline({}, {}, [], res, count([], []), measured()).notifications == 0  # none: 0
    assert headline({}, {}, [], res, count([], []), None).notifications is None  # none written


def test_the_progress_line_says_not_measured_for_a_server_not_sampled() -> None:
    assert _server_line([]) == "server not measured (give --server-pid)"
    lag = server_metrics({"loop_lag_ms": {"max_ms": 0}})
    sampled = [{"rss_mb": 70.4, "cpu_percent": 3, "fds": 20, **lag}]
    assert _server_line(sampled) == "server files 20  server 70 MB 3% CPU, loop lag 0 ms"
    assert _server_line([{"rss_mb": 1, "fds": 2}]).endswith("loop lag not measured")


def test_the_report_opens_with_the_verdict_the_thresholds_and_the_command() -> None:
    data: dict[str, Any] = {
        "config": {"scenario": "fanout", "users": 200},
        "created": "2026-12-07T15:00:00+00:00",
        "thresholds": [
            {"ok": True, "text": "lost == 0: 0 (met, a default)"},
            {"ok": False, "text": "never_connected_streams == 0: 183 (MISSED, a default)"},
        ],
        "command": "notify-harness load --target http://127.0.0.1:9",
        "budget": [],
        "environment": {},
    }
    figures = Figures(streams_connected=17, lost=0)
    text = report.markdown(data, figures)
    head = text.index("| figure | value |")
    firsts = ("FAIL: 1 of 2 thresholds missed", "never_connected_streams == 0: 183", "--target")
    for first in firsts:
        assert -1 < text.index(first) < head, first
    page = report.html(data, figures, [])
    assert page.index("FAIL: 1 of 2 thresholds missed") < page.index("<table>")


def test_a_payload_without_sent_at_is_timed_from_the_publishers_send() -> None:
    """A server that drops unknown fields strips `sent_at`: the clients' arrival times against
    the publish log still give a latency, labelled as such (it was 0 ms, then not measured)."""
    published = [Published(f"n{i}", None, 100.0 + i, 100.1 + i) for i in range(3)]
    streams = [
        StreamLog("a", "a", 1.0, 999.0, ("n0", "n1", "n2"), None, (("n0", 100.05), ("n1", 101.2))),
        StreamLog("b", "b", 1.0, 999.0, ("n0",), None, (("n0", 100.3), ("n0", 105.0))),
    ]
    tally = count(published, streams)
    assert sorted(tally.latencies_ms) == pytest.approx([50.0, 200.0, 300.0])  # first arrivals
    res = resources([row(10, 2, 60, 1, 0), row(11, 2, 60, 2, 10)], row(0, 0, 50, 0, 0), 0)
    figures = headline({}, {}, [], res, tally, measured(untimed=4))
    assert (figures.p50_ms, figures.max_ms, figures.notifications) == (200.0, 300.0, 4)
    assert str(figures.latency_measured_from).startswith("the publisher's send time")


def test_every_figure_of_a_run_is_in_its_headline_or_named_why_not() -> None:
    """One table: the figures the soak and the thresholds name, and the publish counts, were in
    no report table before it; now the headline shows every figure a threshold named by default
    and the rows of every other table come from the same declaration."""
    headline_keys = {f.key for f in in_table(Table.HEADLINE)}
    wanted = {
        "published",
        "publish_failures",
        "server_rss_slope_last_third_mb_per_min",
        "server_fds_slope_last_third_per_min",
        *(f.key for f in FIGURES if f.spec.default),
    }
    assert wanted <= headline_keys
    assert all(f.label and f.show(None) == f.spec.missing for f in FIGURES)
    shown = dict(figure_rows(Figures(p99_ms=12.5, lost=0)))
    assert (shown["delivery latency p99"], shown["lost (owed - delivered)"]) == ("12.5 ms", "0")
    assert shown["server memory per connection"] == "not measured"


def test_nginx_and_redis_cpu_of_the_hold_when_sampled_and_not_measured_when_not() -> None:
    rows = [row(10, 1000, 90.0, 2.0, 1000), row(11, 1000, 90.0, 2.5, 3000)]
    for i, r in enumerate(rows):
        r["nginx"] = [
            {"rss_mb": 10.0, "cpu_seconds": 1.0 + i},
            {"rss_mb": 10.0, "cpu_seconds": 2.0},
        ]
        r["redis"] = {"cpu_seconds": 0.5 + i / 2, "connected_clients": 2}
    res = resources(rows, row(0, 0, 50.0, 0.0, 0), hold_from=1010)
    assert (res.nginx_cpu_seconds_in_hold, res.redis_cpu_seconds_in_hold) == (1.0, 0.5)
    bare = resources(
        [row(10, 1000, 90.0, 2.0, 1000), row(11, 1000, 90.0, 2.5, 3000)],
        row(0, 0, 50.0, 0.0, 0),
        hold_from=1010,
    )
    assert (bare.nginx_cpu_seconds_in_hold, bare.redis_cpu_seconds_in_hold) == (None, None)


def test_each_generator_host_costs_what_it_sampled_between_the_hold_s_ends(
    tmp_path: Path,
) -> None:
    lines = [
        {"origin": "a-1", "host": "a", "wall": w, "cpu_seconds": c, "rss_mb": m}
        for w, c, m in ((0.0, 0.0, 50.0), (10.0, 5.0, 60.0), (20.0, 10.0, 70.0))
    ] + [{"origin": "b-2", "host": "b", "wall": 12.0, "cpu_seconds": 1.0, "rss_mb": 9.0}]
    (tmp_path / HOSTS).write_text("".join(json.dumps(line) + "\n" for line in lines))
    a, b = generator_hosts(tmp_path, hold_from=5.0, hold_until=15.0)
    assert (a.origin, a.cpu_seconds_in_hold, a.rss_mb) == ("a-1", 5.0, 60.0)
    assert (b.cpu_seconds_in_hold, b.rss_mb) == (None, 9.0)  # one sample: not a span
