"""A run with a locust master and two workers: every worker's streams reach the master over
locust's messages and are counted in one ledger; a worker that dies is a failure with its
streams counted, never a smaller run."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from loadtests.config import FD_MARGIN, RunConfig, from_profile
from loadtests.run import LoadRun, Probes, run
from loadtests.run_files import HERDS, MISSING
from notify_client.driver import BlockingDriver
from notify_client.target import Target
from notify_contract.tokens import Minter
from notify_stack.fixtures import ADMIN, SECRET, Servers
from notify_stack.stack import ServerHandle, free_port, wait_until

USERS = 40  # 20 a worker


def load(server: ServerHandle, reports: Path, hold: float = 8) -> LoadRun:
    config = from_profile(
        "smoke",
        users=USERS,
        rate=80,
        hold=hold,
        generator_workers=2,
        broadcast_interval=1.0,
        via_nginx=False,
        stats_cross_check=False,
    )
    target = Target(server.base, tokens=Minter(SECRET))
    probes = Probes((server.process.pid,))
    return run(config, reports, target=target, probes=probes, progress=lambda line: None)


def test_the_merged_ledger_counts_a_stream_lost_on_each_worker(
    servers: Servers, tmp_path: Path
) -> None:
    server = servers.start(
        module="reference_server.tests.broken_server", BROKEN_FAULT="broadcast-skips-first"
    )
    outcome = load(server, tmp_path)
    f = outcome.figures
    broadcasts = f.broadcasts or 0
    assert f.streams_connected == USERS and broadcasts >= 3
    assert f.silent_streams == 2  # load-w0-0 and load-w1-0
    assert (f.lost, f.owed) == (2 * broadcasts, USERS * broadcasts)
    assert (f.unreported_streams, f.generator_workers_lost) == (0, 0)
    # Two workers shipped their own files to the master's folder.
    assert len(list(outcome.directory.glob("streams-*.jsonl"))) == 2
    assert not outcome.ok  # lost==0, a default


def test_a_worker_killed_mid_run_fails_it_with_its_streams_counted(
    servers: Servers, tmp_path: Path
) -> None:
    server = servers.start()
    driver = BlockingDriver(server.base, ADMIN)
    killed: list[int] = []

    def kill_one_worker_once_all_streams_are_open() -> None:
        # The server's count is the only signal from outside locust that every stream is open.
        wait_until(lambda: driver.stats()["total_connections"] >= USERS, 60, "every stream open")
        workers = [
            p for p in psutil.Process().children(recursive=True) if "--worker" in p.cmdline()
        ]
        if workers:
            workers[0].kill()
            killed.append(workers[0].pid)

    killer = threading.Thread(target=kill_one_worker_once_all_streams_are_open)
    killer.start()
    try:
        outcome = load(server, tmp_path, hold=6)
    finally:
        killer.join()
        driver.close()
    assert killed, "no worker was found to kill"
    f = outcome.figures
    assert f.generator_workers_lost == 1
    assert f.unreported_streams == USERS // 2
    assert (outcome.directory / MISSING).exists()
    assert not outcome.ok


def with_remote(users: int, port: int, *, local: int, remote: int) -> RunConfig:
    """A short run straight at one server, waiting on `remote` workers that join `port`."""
    config = from_profile(
        "smoke",
        users=users,
        rate=100,
        hold=6,
        generator_workers=local,
        broadcast_interval=1.0,
        via_nginx=False,
        stats_cross_check=False,
    )
    return replace(config, remote_workers=remote, master_port=port)


def test_a_worker_started_on_its_own_joins_the_run_and_its_streams_are_counted(
    servers: Servers, tmp_path: Path
) -> None:
    """`notify-harness worker --master HOST:PORT`, as on another host: the master waits for it,
    gives it a herd, and its streams' records reach the master's report."""
    server = servers.start()
    port = free_port()
    remote = subprocess.Popen(
        [sys.executable, "-m", "notify_harness", "worker", "--master", f"127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL,
    )
    try:
        config = with_remote(USERS, port, local=1, remote=1)
        target = Target(server.base, tokens=Minter(SECRET))
        probes = Probes((server.process.pid,))
        outcome = run(config, tmp_path, target=target, probes=probes, progress=lambda line: None)
        # The worker command becomes locust's worker itself: no wrapper process beside it.
        became = psutil.Process(remote.pid).cmdline()
    finally:
        remote.terminate()
        remote.wait(30)
    f = outcome.figures
    assert (f.streams_connected, f.lost, f.unreported_streams) == (USERS, 0, 0)
    assert (f.owed or 0) >= 3 * USERS
    shipped = {p.name for p in outcome.directory.glob("streams-*.jsonl")}
    assert len(shipped) == 2
    assert "locust" in became and "--worker" in became
    assert any(name.endswith(f"-{remote.pid}.jsonl") for name in shipped)
    # Each worker sampled itself (the sampler sees this host only): the cost is both hosts'.
    hosts = json.loads((outcome.directory / "summary.json").read_text())["generator_hosts"]
    assert len(hosts) == 2 and all(h["cpu_seconds_in_hold"] is not None for h in hosts)
    total = sum(h["cpu_seconds_in_hold"] for h in hosts)
    assert f.generator_cpu_seconds_in_hold == pytest.approx(total)
    assert f.generator_mem_per_conn_kb == pytest.approx(
        sum(h["rss_mb"] for h in hosts) * 1024 / USERS, rel=0.01
    )
    assert outcome.ok


def test_source_addresses_with_remote_workers_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from loadtests.__main__ import main

    argv = ["--remote-workers", "1", "--source-addresses", "127.0.0.2", "--reports", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--source-addresses" in err[0] and "--remote-workers" in err[0]
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


def _limited_worker(port: int, descriptors: int) -> subprocess.Popen[bytes]:
    """`notify-harness worker`, as on a host whose processes may open `descriptors` files."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, descriptors))

    return subprocess.Popen(
        [sys.executable, "-m", "notify_harness", "worker", "--master", f"127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL,
        preexec_fn=limit,  # noqa: PLW1509 (a limit, set before exec: no thread runs yet)
    )


def test_a_run_its_workers_cannot_hold_fails_with_the_shortfall_counted(
    servers: Servers, tmp_path: Path
) -> None:
    """Two workers that can hold 30 and 50 streams (their descriptors less FD_MARGIN): 100
    streams do not fit; each holds all it can, and the 20 left over fail the run, counted. (How
    a run that fits is divided: `test_herd_sizes.py`; the committed multihost run's herds.json.)"""
    users, shortfall = 100, 20
    server = servers.start()
    port = free_port()
    workers = [_limited_worker(port, FD_MARGIN + 30), _limited_worker(port, FD_MARGIN + 50)]
    try:
        config = with_remote(users, port, local=0, remote=2)
        target = Target(server.base, tokens=Minter(SECRET))
        outcome = run(config, tmp_path, target=target, progress=lambda line: None)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(30)
    herds = json.loads((outcome.directory / HERDS).read_text())
    by_capacity = {w["capacity"]: w["streams"] for w in herds["workers"]}
    assert by_capacity == {30: 30, 50: 50}
    assert herds["shortfall"] == shortfall
    held = {p.name: len(p.read_text().splitlines()) for p in outcome.directory.glob("streams-*")}
    assert sorted(held.values()) == sorted(by_capacity.values())
    f = outcome.figures
    assert (f.streams_connected, f.unreported_streams, f.lost) == (users - shortfall, shortfall, 0)
    short = [text for ok, text in outcome.verdicts if not ok and "herds.json" in text]
    assert short == ["the workers could hold 20 streams fewer than the run's (herds.json)"]
    assert not outcome.ok
