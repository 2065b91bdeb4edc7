"""The herd (many streams on one epoll, loadtests.herd) against a real server: every stream
opens; when the server stops, every stream is dropped and comes back by the contract's policy
once a server listens there again; a broadcast after that reaches each stream once. It runs in
a gevent process of its own (herd_probe.py), as in a locust worker."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from notify_client.driver import BlockingDriver
from notify_contract.reconnect import ReconnectPolicy
from notify_stack.fixtures import SECRET, Servers, token

STREAMS = 40


class Probe:
    """The probe process: its `open N` lines as they come, and its last line."""

    def __init__(self, target: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loadtests.tests.herd_probe",
                "--target",
                target,
                "--secret",
                SECRET,
                "--streams",
                str(STREAMS),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put("")  # the process ended

    def until(self, wanted: str, timeout: float = 30.0) -> list[str]:
        """Every line up to and including `wanted`."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {wanted!r} in {timeout:g} s; got {seen[-5:]}") from None
            if not line:
                raise AssertionError(f"the probe ended before {wanted!r}; got {seen[-5:]}")
            seen.append(line)
            if line == wanted:
                return seen

    def stop(self, notifications: int) -> dict[str, object]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"stop {notifications}\n")
        self.process.stdin.flush()
        return self.until_json()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self.reader.join(10)  # it ends at the end of the output
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()

    def until_json(self, timeout: float = 30.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line.startswith("{"):
                return dict(json.loads(line))
            assert line, "the probe ended without its result"


@pytest.fixture
def probe_of() -> Iterator[list[Probe]]:
    started: list[Probe] = []
    yield started
    for probe in started:
        probe.close()


def test_dropped_streams_come_back_and_each_gets_the_broadcast_once(
    servers: Servers, probe_of: list[Probe]
) -> None:
    first = servers.start()
    probe = Probe(first.base)
    probe_of.append(probe)
    probe.until(f"open {STREAMS}")
    first.process.stop()
    probe.until("open 0")  # every stream saw its close
    again = servers.start(port=first.port)  # reconnects were refused until now
    # A slow restart (CI ran this while loaded) lets a stream's backoff reach the policy's cap:
    # its next attempt may come that long after the server is back.
    probe.until(f"open {STREAMS}", timeout=ReconnectPolicy().cap_ms / 1000 + 15)
    driver = BlockingDriver(again.base, token("admin", admin=True))
    try:
        note = driver.broadcast("after the restart")
    finally:
        driver.close()
    result = probe.stop(STREAMS)
    assert result["ids"] == [[note["id"]]] * STREAMS  # each stream once, none lost
    # Dropped once, back once: a reconnect that reached the stopping server before it stopped
    # listening was refused (1001 before `connected`), not given a stream to drop again.
    assert result["connects"] == [2] * STREAMS
    assert result["closes"] == {"close 1001": STREAMS}
