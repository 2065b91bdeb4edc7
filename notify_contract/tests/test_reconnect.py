"""Properties of the reconnect policy (docs/contract.md section 7)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify_contract.codes import (
    WS_4401_UNAUTHORIZED,
    WS_4408_SLOW_CONSUMER,
    WS_4429_TOO_MANY_CONNECTIONS,
    CloseCode,
)
from notify_contract.reconnect import FINAL_CODES, ReconnectPolicy, reconnects_after

RETRY = st.sampled_from(
    [
        CloseCode.GOING_AWAY,
        CloseCode.ABNORMAL_CLOSURE,
        WS_4408_SLOW_CONSUMER,
        WS_4429_TOO_MANY_CONNECTIONS,
        1011,
        1012,
        4000,
        None,
    ]
)
FINAL = st.sampled_from(sorted(FINAL_CODES))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@given(now=st.floats(0, 1e6), codes=st.lists(RETRY, min_size=1, max_size=12))
def test_delays_double_from_one_second_up_to_thirty_and_stop_after_five(
    now: float, codes: list[int | None]
) -> None:
    clock = Clock(now)
    policy = ReconnectPolicy(clock=clock)
    due = [policy.next_attempt(c) for c in codes]
    expected = [min(1000 * 2**n, 30000) / 1000 for n in range(5)]
    got = [d - now for d in due if d is not None]
    assert got == pytest.approx(expected[: len(got)])
    assert len(got) == min(len(codes), 5)
    assert all(d is None for d in due[5:])


@given(attempt=st.integers(0, 64))
def test_the_cap_is_thirty_seconds(attempt: int) -> None:
    delay = ReconnectPolicy().delay_ms(attempt)
    assert delay <= 30000
    assert delay == min(1000 * 2**attempt, 30000)


@given(failures=st.integers(1, 10), code=RETRY)
def test_a_connected_frame_resets_the_count(failures: int, code: int | None) -> None:
    clock = Clock(100.0)
    policy = ReconnectPolicy(clock=clock)
    for _ in range(failures):
        policy.next_attempt(code)
    policy.connected()
    assert policy.next_attempt(code) == 101.0


@given(code=FINAL, tried=st.integers(0, 4))
def test_no_reconnect_after_a_final_code(code: int, tried: int) -> None:
    policy = ReconnectPolicy(clock=Clock(0))
    for _ in range(tried):
        policy.next_attempt(CloseCode.ABNORMAL_CLOSURE)
    assert policy.next_attempt(code) is None
    assert not reconnects_after(code)


@given(code=RETRY)
def test_reconnect_after_going_away_network_failure_slow_consumer_and_limit(
    code: int | None,
) -> None:
    assert reconnects_after(code)
    assert ReconnectPolicy(clock=Clock(0)).next_attempt(code) == 1.0


@given(r=st.floats(0, 1, exclude_max=True), attempts=st.integers(0, 4))
def test_full_jitter_stays_within_zero_and_the_delay(r: float, attempts: int) -> None:
    policy = ReconnectPolicy(jitter=True, clock=Clock(0), rand=lambda: r)
    for _ in range(attempts):
        policy.next_attempt(None)
    due = policy.next_attempt(None)
    assert due is not None
    assert 0 <= due * 1000 <= policy.delay_ms(attempts)
    assert due * 1000 == pytest.approx(policy.delay_ms(attempts) * r)


def test_codes_that_must_not_reconnect_are_the_contract_table() -> None:
    assert set(FINAL_CODES) == {1000, 1003, 1007, 1008, 1009, 4401, 4403, 4404}


@given(failures=st.integers(1, 4))
def test_4429_backs_off_and_never_resets_the_count(failures: int) -> None:
    clock = Clock(0.0)
    policy = ReconnectPolicy(clock=clock)
    due = [policy.next_attempt(WS_4429_TOO_MANY_CONNECTIONS) for _ in range(failures + 1)]
    assert due == [min(1000 * 2**n, 30000) / 1000 for n in range(failures + 1)]


def test_4401_is_not_retried_with_the_same_token() -> None:
    assert ReconnectPolicy(clock=Clock(0)).next_attempt(WS_4401_UNAUTHORIZED) is None
