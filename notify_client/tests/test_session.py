"""The stream session's rules, without sockets (docs/contract.md section 7)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notify_client.session import Delivery, Fetch, StreamSession
from notify_contract.codes import WS_4401_UNAUTHORIZED, WS_4429_TOO_MANY_CONNECTIONS, CloseCode
from notify_contract.reconnect import ReconnectPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def session(clock: Clock | None = None, beat: float | None = None) -> StreamSession:
    c = clock or Clock()
    return StreamSession(ReconnectPolicy(clock=c), heartbeat_interval=beat, clock=c)


def note(nid: str) -> tuple[str, dict[str, str]]:
    return "notification", {"id": nid, "title": nid}


def test_only_a_connected_frame_resets_the_attempts() -> None:
    s = session()
    assert s.closed(CloseCode.ABNORMAL_CLOSURE) == 101.0
    s.opened()  # the socket opens, then the server closes with 4429: no reset
    assert s.closed(WS_4429_TOO_MANY_CONNECTIONS) == 102.0
    s.opened()
    s.received("connected", {})
    assert s.closed(CloseCode.GOING_AWAY) == 101.0


def test_no_reconnect_with_the_same_token_after_4401() -> None:
    s = session()
    s.received("connected", {})
    assert s.closed(WS_4401_UNAUTHORIZED) is None


def test_notifications_move_last_id_and_repeats_are_marked() -> None:
    s = session()
    s.received("connected", {})
    assert s.received(*note("a")) == Delivery("a", {"id": "a", "title": "a"}, repeat=False)
    assert s.received(*note("b")) == Delivery("b", {"id": "b", "title": "b"}, repeat=False)
    assert s.last_id == "b"
    again = s.received(*note("a"))
    assert isinstance(again, Delivery) and again.repeat


def test_resync_asks_for_the_archive_and_the_archive_is_shown_once() -> None:
    s = session()
    s.received("connected", {})
    s.received(*note("a"))
    assert s.received("resync", {}) is Fetch.ARCHIVE
    shown = s.archived([{"id": "b"}, {"id": "c"}])
    assert [(d.id, d.repeat) for d in shown] == [("b", False), ("c", False)]
    assert s.last_id == "c" and s.resyncs == 1


def test_a_reconnect_with_nothing_to_resume_from_fetches_the_archive() -> None:
    s = session()
    assert s.received("connected", {}) is None  # the first connect: nothing was missed
    s.closed(None)
    assert s.received("connected", {}) is Fetch.ARCHIVE
    s.received(*note("a"))
    s.closed(None)
    assert s.received("connected", {}) is None  # resumes with last_id instead


def test_sse_ids_come_from_the_event_id() -> None:
    s = session()
    step = s.received("notification", {"title": "x"}, event_id="7")
    assert isinstance(step, Delivery) and step.id == "7" and s.last_id == "7"


@given(quiet=st.floats(0, 100))
def test_the_watchdog_calls_a_stream_dead_after_two_and_a_half_beats(quiet: float) -> None:
    clock = Clock()
    s = session(clock, beat=2.0)
    s.opened()
    s.received("heartbeat", {})
    clock.now += quiet
    assert s.dead() is (quiet > 5.0)
    assert s.silence_left() == pytest.approx(max(0.0, 5.0 - quiet))


def test_no_watchdog_without_an_interval() -> None:
    clock = Clock()
    s = session(clock)
    s.opened()
    clock.now += 10_000
    assert not s.dead() and s.silence_left() is None


def test_a_connected_frame_naming_another_user_is_kept_as_misnamed() -> None:
    right = StreamSession(user="alice")
    right.received("connected", {"user_id": "alice"})
    assert right.misnamed is None
    wrong = StreamSession(user="alice")
    wrong.received("connected", {"user_id": "bob"})
    assert wrong.misnamed == "'bob'"
    silent = StreamSession(user="alice")
    silent.received("connected", {})  # no user named at all: not the user it connected as
    assert silent.misnamed == "None"
    assert StreamSession().received("connected", {"user_id": "bob"}) is None  # no user: no check
