"""The generator's latency histogram: merged across processes it gives the percentile of all
the values, within one bucket's width; never an average of percentiles."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from notify_client.histogram import Histogram, bucket
from notify_client.ledger import percentile

LATENCIES = st.lists(st.floats(0, 20_000, allow_nan=False), min_size=1, max_size=300)


def width(ms: float) -> float:
    return 1 if ms < 100 else 10 if ms < 1000 else 100 if ms < 10_000 else 1000


@given(LATENCIES, st.sampled_from([0.5, 0.95, 0.99, 1.0]))
def test_a_percentile_is_the_exact_one_within_its_bucket(values: list[float], q: float) -> None:
    h = Histogram()
    for v in values:
        h.add(v)
    exact = percentile(values, q)
    assert exact is not None
    assert abs((h.percentile(q) or 0) - exact) <= width(exact) / 2 + 1e-9
    assert (h.count, h.max_ms) == (len(values), max(values))


@given(LATENCIES, LATENCIES)
def test_merged_halves_are_the_whole(first: list[float], second: list[float]) -> None:
    a, b, whole = Histogram(), Histogram(), Histogram()
    for v in first:
        a.add(v)
        whole.add(v)
    for v in second:
        b.add(v)
        whole.add(v)
    merged = Histogram.merged([a, b])
    assert merged == whole
    assert Histogram.from_dict(merged.to_dict()) == whole


def test_a_slow_worker_moves_the_merged_p99_as_it_should() -> None:
    """Two workers: 99 fast deliveries and one of 900 ms; the p99 of all 200 is fast, the
    average of the two p99s (what merging percentiles would give) is not."""
    fast, slow = Histogram(), Histogram()
    for _ in range(100):
        fast.add(10.0)
    for _ in range(99):
        slow.add(10.0)
    slow.add(900.0)
    assert Histogram.merged([fast, slow]).percentile(0.99) == 10.0
    assert slow.percentile(1.0) == 900.0 and bucket(904.0) == 900
