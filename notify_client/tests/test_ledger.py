"""The load run's tally: owed by what the clients saw, never by the server's figures."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from notify_client.ledger import Published, StreamLog, count


def stream(name: str, user: str, ids: list[str], at: float = 1.0, end: float = 100.0) -> StreamLog:
    return StreamLog(name, user, at, end, tuple(ids))


B1, B2 = Published("b1", None, 10.0, 10.1), Published("b2", None, 20.0, 20.1)


def test_every_broadcast_is_owed_to_every_connected_stream() -> None:
    t = count([B1, B2], [stream("a", "u1", ["b1", "b2"]), stream("b", "u2", ["b1", "b2"])])
    assert (t.owed, t.delivered, t.lost, t.duplicates, t.silent) == (4, 4, 0, 0, 0)


def test_a_stream_the_server_forgot_is_counted_against_everything_it_was_owed() -> None:
    t = count([B1, B2], [stream("a", "u1", ["b1", "b2"]), stream("quiet", "u2", [])])
    assert (t.lost, t.silent, t.lost_sample) == (2, 1, (("quiet", "b1"), ("quiet", "b2")))


def test_a_repeat_is_a_duplicate_and_never_hides_a_loss() -> None:
    t = count([B1, B2], [stream("a", "u1", ["b1", "b1"])])
    assert (t.lost, t.duplicates, t.delivered) == (1, 1, 1)


def test_personal_notifications_are_owed_to_their_user_only() -> None:
    mine = Published("p1", "u1", 5.0, 5.1)
    t = count([mine], [stream("a", "u1", ["p1"]), stream("b", "u2", [])])
    assert (t.owed, t.lost, t.silent) == (1, 0, 0)


def test_a_stream_that_connected_while_a_publish_was_in_flight_is_not_owed_it() -> None:
    t = count([B1], [stream("late", "u1", [], at=10.05), stream("later", "u2", ["b1"], at=10.5)])
    assert (t.owed, t.lost, t.unowed) == (0, 0, 1)


def test_nothing_is_owed_after_the_generator_stopped_the_stream() -> None:
    t = count([B2], [stream("a", "u1", [], end=15.0)])
    assert (t.owed, t.lost) == (0, 0)


def test_a_stream_that_never_connected_is_counted_apart() -> None:
    t = count([B1], [StreamLog("x", "u1", None, 100.0, ())])
    assert (t.streams, t.never_connected, t.owed) == (0, 1, 0)


@given(
    got=st.lists(st.sampled_from(["b1", "b2", "b3"]), max_size=8),
    users=st.integers(1, 4),
)
def test_owed_is_delivered_plus_lost(got: list[str], users: int) -> None:
    published = [Published(f"b{i}", None, 10.0 * i, 10.0 * i + 0.1) for i in (1, 2, 3)]
    logs = [stream(f"s{u}", f"u{u}", got) for u in range(users)]
    t = count(published, logs)
    assert t.owed == 3 * users
    assert t.delivered + t.lost == t.owed
    assert t.duplicates == users * (len(got) - len(set(got)))
