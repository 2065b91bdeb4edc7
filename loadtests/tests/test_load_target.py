"""A load run against a server it did not start counts loss by the clients alone: a server that
silently forgets streams, or delivers twice, cannot hide it by its own figures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from loadtests.__main__ import parser
from loadtests.config import from_profile
from loadtests.run import USED, LoadRun, Probes, keep_logs, run
from loadtests.target_options import load_target
from notify_client.target import Target
from notify_contract.redaction import REDACTED, leaks
from notify_contract.tokens import Minter
from notify_contract.verdicts import Need
from notify_stack.fixtures import SECRET, Servers
from notify_stack.stack import ServerHandle

USERS = 60


def load(server: ServerHandle, reports: Path) -> LoadRun:
    config = from_profile(
        "smoke",
        users=USERS,
        rate=60,
        hold=8,
        broadcast_interval=1.0,
        via_nginx=False,
        thresholds=("lost==0", "duplicates==0"),
    )
    target = Target(server.base, tokens=Minter(SECRET))
    probes = Probes((server.process.pid,))
    return run(config, reports, target=target, probes=probes, progress=lambda line: None)


def broken(servers: Servers, fault: str) -> ServerHandle:
    return servers.start(module="reference_server.tests.broken_server", BROKEN_FAULT=fault)


def test_streams_the_server_forgot_are_counted_lost(servers: Servers, tmp_path: Path) -> None:
    outcome = load(broken(servers, "forget-stream"), tmp_path)
    f = outcome.figures
    assert f.streams_connected == USERS and (f.broadcasts or 0) >= 3
    assert f.silent_streams == USERS // 20  # every twentieth stream got nothing
    assert f.lost == (f.silent_streams or 0) * (f.broadcasts or 0)
    assert f.duplicates == 0
    assert not outcome.ok  # lost==0 missed


def test_a_broadcast_delivered_twice_is_duplicates_not_less_loss(
    servers: Servers, tmp_path: Path
) -> None:
    outcome = load(broken(servers, "broadcast-twice"), tmp_path)
    f = outcome.figures
    assert f.streams_connected == USERS and (f.broadcasts or 0) >= 3
    assert (f.lost, f.duplicates) == (0, USERS)
    missed = [text for ok, text in outcome.verdicts if not ok]
    assert missed == [f"duplicates == 0: {USERS} (MISSED)"]


def test_streams_told_they_are_another_user_are_misrouted_and_fail_the_run(
    servers: Servers, tmp_path: Path
) -> None:
    """`connected` names someone else: every stream counts as misrouted, and the run fails by
    default, with no threshold given for it (it passed: nothing was lost)."""
    outcome = load(broken(servers, "wrong-user"), tmp_path)
    f = outcome.figures
    assert (f.streams_connected, f.misrouted_streams, f.lost) == (USERS, USERS, 0)
    missed = [text for ok, text in outcome.verdicts if not ok]
    default = "a default: name the figure in --threshold to change it"
    assert missed == [f"misrouted_streams == 0: {USERS} (MISSED, {default})"]


def test_the_reference_server_passes_the_same_run(servers: Servers, tmp_path: Path) -> None:
    outcome = load(servers.start(), tmp_path)
    f = outcome.figures
    assert (f.streams_connected, f.lost, f.duplicates) == (USERS, 0, 0)
    assert f.owed == USERS * (f.broadcasts or 0) > 0
    assert (f.misrouted_streams, f.never_connected_streams) == (0, 0)
    assert f.peak_connections == USERS  # the target's own stats (rule 8.1), as a cross-check
    assert outcome.ok
    assert (outcome.directory / "locust-master.log").exists() and leaks(tmp_path) == []


def test_the_logs_a_run_keeps_hold_no_token(tmp_path: Path) -> None:
    """A process that logs a token (a target's, or ours broken) does not put it in the report."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"
    logs, out = tmp_path / "logs", tmp_path / "out"
    (logs / "server-1").mkdir(parents=True)
    out.mkdir()
    (logs / "server-1" / "server.log").write_text(f"refused {{'token': '{jwt}'}}\n")
    assert leaks(logs) == ["server-1/server.log"]
    keep_logs(logs, out)
    assert leaks(out) == []
    assert REDACTED in (out / "server-1-server.log").read_text()


def test_a_partial_server_on_another_stack_is_measured_through_its_driver_command(
    servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = servers.start(module="examples.partial_server")  # python-websockets
    monkeypatch.setenv("JWT_SECRET", SECRET)  # its driver command signs with it
    url = f"ws://127.0.0.1:{example.port}"
    config = from_profile(
        "smoke", users=USERS, rate=60, hold=8, broadcast_interval=1.0, via_nginx=False
    )
    target = Target(
        example.base,
        tokens=Minter(SECRET),
        driver_cmd=f"{sys.executable} -m examples.partial_publish --url {url}",
    )
    probes = Probes((example.process.pid,))
    outcome = run(config, tmp_path, target=target, probes=probes, progress=lambda line: None)
    f = outcome.figures
    assert (f.streams_connected, f.lost, f.duplicates) == (USERS, 0, 0)
    assert f.owed == USERS * (f.broadcasts or 0) > 0
    assert f.mem_per_conn_kb is not None  # its process was sampled


def test_target_options_a_load_run_does_not_use_are_named() -> None:
    argv = ["--target", "http://127.0.0.1:9", "--jwt-secret", "s" * 32, "--history-size", "50"]
    args = parser().parse_args([*argv, "--log", "server.log", "--without", "tasks"])
    target, _ = load_target(args)
    assert target is not None
    assert [flag for flag in target.given if flag not in USED] == ["--history-size", "--log"]
    assert target.without == {Need.TASKS}
