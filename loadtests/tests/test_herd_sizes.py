"""Dividing a run's streams over workers by what each can hold (no sockets)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from loadtests.herd_sizes import divide, equal_share


def test_streams_go_in_proportion_to_capacity() -> None:
    assert divide(40, [30, 50]) == [15, 25]
    assert divide(10, [100, 100, 100]) == [4, 3, 3]
    assert divide(9, [1000, 10]) == [9, 0]


def test_a_run_larger_than_the_workers_gives_each_all_it_can() -> None:
    assert divide(100, [30, 50]) == [30, 50]  # 20 left over: the caller reports them


@given(st.integers(0, 10_000), st.lists(st.integers(0, 5_000), min_size=1, max_size=8))
def test_nothing_is_lost_and_no_worker_is_overfilled(streams: int, capacities: list[int]) -> None:
    sizes = divide(streams, capacities)
    assert all(0 <= s <= c for s, c in zip(sizes, capacities, strict=True))
    assert sum(sizes) == min(streams, sum(capacities))


def test_equal_shares_without_a_master() -> None:
    assert [equal_share(10, 3, i) for i in range(3)] == [4, 3, 3]
