"""The peers comparison: its verdicts, and the floor server it measures against."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from loadtests.figures import Figures
from loadtests.peers import PeerResult, environment_variable, ratios, verdicts, write
from notify_client.client import StreamClient
from notify_contract.tokens import Minter
from notify_stack.stack import ServerHandle, start_server

SECRET = "f" * 48


def peer(name: str, error: str | None = None, **figures: Any) -> PeerResult:
    return PeerResult(name, name, Figures(**{"lost": 0, **figures}), error=error)


def test_the_reference_passes_within_the_factor_of_the_floor_and_below_websockets() -> None:
    results = [
        peer("reference", cpu_us_per_delivered=12.0),
        peer("websockets", cpu_us_per_delivered=20.0),
        peer("floor", cpu_us_per_delivered=10.0),
    ]
    assert all(ok for ok, _ in verdicts(results))
    assert ratios(results)["floor"]["cpu_us_per_delivered"] == pytest.approx(0.83)


WS = peer("websockets", cpu_us_per_delivered=20.0)  # passes its own claim in every case


@pytest.mark.parametrize(
    ("results", "missed"),
    [
        (
            [
                peer("reference", cpu_us_per_delivered=15.0),
                peer("floor", cpu_us_per_delivered=10.0),
                WS,
            ],
            {"reference 15.0 µs <= 1.4 x floor 10.0 µs"},
        ),
        (
            [peer("reference", cpu_us_per_delivered=1.0), peer("floor", error="did not start"), WS],
            {"floor: did not start", "reference vs floor: not measured"},
        ),
        (
            [],
            {"reference vs floor: not measured", "reference vs websockets: not measured"},
        ),
        (
            [
                peer("reference", cpu_us_per_delivered=1.0, lost=3),
                peer("floor", cpu_us_per_delivered=1.0),
                WS,
            ],
            {"a peer lost deliveries"},
        ),
        (
            [
                peer("reference", cpu_us_per_delivered=12.0),
                peer("floor", cpu_us_per_delivered=10.0),
                peer("websockets", cpu_us_per_delivered=11.0),
            ],
            {"reference 12.0 µs < websockets broadcast() 11.0 µs"},
        ),
    ],
    ids=["over-the-floor-factor", "floor-not-run", "nothing-ran", "lost", "slower-than-websockets"],
)
def test_a_claim_not_shown_by_this_run_fails_for_its_own_reason(
    results: list[PeerResult], missed: set[str]
) -> None:
    """Each case misses exactly the claim it is named for: with no websockets peer every case
    missed "reference vs websockets" too, so the test held whatever the other checks did."""
    assert {text for ok, text in verdicts(results) if not ok} == missed


def test_the_page_has_a_row_per_peer_and_the_verdicts(tmp_path: Path) -> None:
    results = [peer("reference", cpu_us_per_delivered=12.0, p99_ms=40.0), peer("floor", "boom")]
    meta = {
        "created": "now",
        "command": "python -m loadtests.peers",
        "git_commit": "abc",
        "users": 10,
        "duration": 1.0,
        "broadcast_interval": 1.0,
    }
    text = write(tmp_path, results, meta).read_text()
    head = next(line for line in text.splitlines() if line.startswith("| peer | deliveries"))
    row = next(line for line in text.splitlines() if line.startswith("| reference |"))
    cells = dict(zip(head.split(" | "), row.split(" | "), strict=True))
    assert cells["server CPU of the hold per delivered notification (µs)"] == "12 µs"
    assert cells["delivery latency p99 (ms)"] == "40 ms"
    assert "| floor | boom |" in text
    assert "FAIL reference vs floor: not measured" in text
    assert json.loads((tmp_path / "peers.json").read_text())["peers"][1]["error"] == "boom"


@pytest.fixture
def floor(tmp_path: Path) -> Any:
    handle = start_server(tmp_path, {"JWT_SECRET": SECRET}, module="loadtests.floor_server")
    yield handle
    handle.process.stop()


async def test_the_floor_sends_connected_then_what_the_publish_channel_gives_it(
    floor: ServerHandle,
) -> None:
    minter = Minter(SECRET)
    stream = await StreamClient.open(
        floor.base, "/api/ws/notifications", minter.mint("bob", ttl=60)
    )
    try:
        assert (await stream.recv()).data["user_id"] == "bob"
        request = {"action": "broadcast", "title": "hi", "sent_at": 1.0}
        started = time.time()
        published = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "examples.partial_publish",
                "--url",
                floor.base.replace("http", "ws"),
            ],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            env={"JWT_SECRET": SECRET, "PATH": ""},
            timeout=30,
            check=True,
        )
        note = json.loads(published.stdout)
        frame = await stream.expect("notification")
        assert frame.data == note and note["title"] == "hi"
        assert note["sent_at"] >= started  # stamped as it reached the server, not by the caller
    finally:
        await stream.close()
    with pytest.raises(Exception, match="403"):
        await StreamClient.open(floor.base, "/api/ws/notifications", "not-a-token")


def test_the_secret_for_the_publish_command_leaves_the_environment_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JWT_SECRET", "the user's own")
    with environment_variable("JWT_SECRET", "a peer's"):
        assert os.environ["JWT_SECRET"] == "a peer's"
    assert os.environ["JWT_SECRET"] == "the user's own"
    monkeypatch.delenv("JWT_SECRET")
    with environment_variable("JWT_SECRET", "a peer's"):
        pass
    assert "JWT_SECRET" not in os.environ
