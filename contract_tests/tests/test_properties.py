"""Hypothesis against a live server: a stateful model of streams, and arbitrary client frames.

Both use the blocking client, the form the locust users run.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from contract_tests.properties import client_frames_property, tokens_property
from notify_client.blocking import BlockingStreamClient
from notify_client.client import Closed, Frame
from notify_client.driver import BlockingDriver
from notify_contract.codes import WS_4429_TOO_MANY_CONNECTIONS
from notify_contract.protocol import WS_NOTIFICATIONS_PATH
from notify_stack.fixtures import ADMIN, SECRET, Servers, token
from notify_stack.stack import ServerHandle

LIMIT = 2
_runs = itertools.count()


@dataclass(eq=False)
class Stream:
    user: str
    client: BlockingStreamClient
    expected: list[str] = field(default_factory=list)


class StreamsMachine(RuleBasedStateMachine):
    """Model: which streams are open per user and what each must receive."""

    base: ClassVar[str]
    streams = Bundle("streams")

    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"sm{next(_runs)}"
        self.driver = BlockingDriver(self.base, ADMIN)
        self.open: list[Stream] = []

    def uid(self, user: str) -> str:
        return f"{self.prefix}-{user}"

    def count(self, user: str) -> int:
        return sum(s.user == user for s in self.open)

    @rule(target=streams, user=st.sampled_from("abc"))
    def open_stream(self, user: str) -> object:
        client = BlockingStreamClient.open(self.base, WS_NOTIFICATIONS_PATH, token(self.uid(user)))
        if self.count(user) >= LIMIT:
            try:
                frame = client.recv(5)
            except Closed as closed:
                code = closed.code
            else:
                raise AssertionError(f"stream over the limit got {frame.type}, not 4429")
            finally:
                client.close()
            assert code == WS_4429_TOO_MANY_CONNECTIONS
            return multiple()
        assert client.expect("connected").data["user_id"] == self.uid(user)
        stream = Stream(user, client)
        self.open.append(stream)
        return stream

    @rule(stream=consumes(streams))
    def close_stream(self, stream: Stream) -> None:
        stream.client.close()
        self.open.remove(stream)
        deadline = time.monotonic() + 5
        while self.server_counts().get(stream.user, 0) != self.count(stream.user):
            assert time.monotonic() < deadline, "stats never counted a closed stream out"
            time.sleep(0.02)

    @rule(user=st.sampled_from("abc"))
    def publish(self, user: str) -> None:
        sent = self.driver.publish(self.uid(user), f"to {user}")["id"]
        for stream in self.open:
            if stream.user == user:
                stream.expected.append(sent)
                got = stream.client.expect("notification")
                assert got.data["id"] == sent, f"{user}'s stream got {got.data['id']}, not {sent}"

    def server_counts(self) -> dict[str, int]:
        users = self.driver.stats()["users"]
        head = f"{self.prefix}-"
        return {u.removeprefix(head): n for u, n in users.items() if u.startswith(head)}

    @invariant()
    def stats_equal_the_model(self) -> None:
        model = {u: self.count(u) for u in "abc" if self.count(u)}
        assert self.server_counts() == model

    def teardown(self) -> None:
        try:
            # Nothing else may be waiting on any stream: the next notification is the marker.
            for user in {s.user for s in self.open}:
                self.driver.publish(self.uid(user), "end")
            for stream in self.open:
                frame: Frame = stream.client.expect("notification")
                assert frame.data["title"] == "end", f"unexpected {frame.data}"
        finally:
            for stream in self.open:
                stream.client.close()
            self.driver.close()


@pytest.fixture(scope="module")
def limited(servers: Servers) -> ServerHandle:
    return servers.start(WS_MAX_CONNECTIONS_PER_USER=str(LIMIT), WS_HEARTBEAT_INTERVAL="5")


def test_streams_stats_and_delivery_follow_the_model(limited: ServerHandle) -> None:
    StreamsMachine.base = limited.base
    run_state_machine_as_test(StreamsMachine)


# -- arbitrary client frames and tokens -------------------------------------------------------


@pytest.fixture(scope="module")
def lenient(servers: Servers) -> ServerHandle:
    return servers.start(
        WS_CLIENT_RATE="100000", WS_HEARTBEAT_INTERVAL="30", WS_MAX_CONNECTIONS_PER_USER="1000"
    )


def test_any_client_frame_gets_the_contract_answer_and_nothing_else(lenient: ServerHandle) -> None:
    victim = BlockingDriver(lenient.base, ADMIN)
    secret = victim.publish("victim", "victim-secret-marker")["id"]
    victim.close()
    check, tried = client_frames_property(lenient.base, token, secret)
    check()
    assert tried.examples > 0


def test_any_token_is_let_in_exactly_when_the_contract_says(lenient: ServerHandle) -> None:
    check, tried = tokens_property(lenient.base, SECRET)
    check()
    assert set(tried.answers) == {"connected", "4401"}, tried.answers
