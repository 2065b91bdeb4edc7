"""A worker's stream records and latency histograms travel to the master over locust's own
messages (ZeroMQ), so the run's ledger holds every host's streams, not only those of the
workers that share the master's disk.

A worker sends each user's records when the user stops, then `DONE` once all its users have.
Locust's headless master quits its workers after a fixed half second, which is not enough for a
herd of thousands to stop and ship; so when the run stops, the master asks every worker to stop
and waits for each one's `DONE` (bounded by locust's stop timeout plus a minute) before locust
goes on to quit them. A worker that never says `DONE` is named in `MISSING`. Without a master
(one process), the records are written where they are.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import gevent
import psutil
from locust.env import Environment
from locust.rpc import Message
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from loadtests.latencies import Latencies
from loadtests.run_files import HOSTS, MISSING, latency_file, streams_file

MESSAGE: Final = "notify_ledger"
DONE: Final = "notify_ledger_done"  # a worker's users have all stopped and shipped
SAMPLE_EVERY: Final = 1.0  # seconds between a worker's samples of its own CPU and memory


def origin() -> str:
    """This process, as its files are named: host and pid (one host may run several workers)."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())
    return f"{host}-{os.getpid()}"


_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.jsonl$")


def write(run_dir: Path, files: dict[str, list[dict[str, Any]]]) -> None:
    """Append each file's lines (JSON, one a line) in `run_dir`; a name that is not a plain
    `*.jsonl` file name is refused, since it came over the network."""
    for name, lines in files.items():
        if not _FILE.match(name):
            raise ValueError(f"a worker shipped lines for {name!r}: not a run file's name")
        with (run_dir / name).open("a") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)


def send(environment: Environment, run_dir: Path, files: dict[str, list[dict[str, Any]]]) -> None:
    """Lines for the run's files: to the master from a worker, into `run_dir` otherwise."""
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.send_message(MESSAGE, files)
    else:
        write(run_dir, files)


def ship(
    environment: Environment, run_dir: Path, lines: list[dict[str, Any]], measured: Latencies
) -> None:
    """One user's stream records and histograms, named for this process."""
    name = origin()
    files = {streams_file(name): lines, latency_file(name): [measured.to_dict()]}
    send(environment, run_dir, files)


def receive(environment: Environment, run_dir: Callable[[], Path]) -> None:
    """On the master: write what every worker ships into the run's folder, and hold the stop
    until each worker is done (see the module's docstring)."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    done: set[str] = set()

    def shipped(msg: Any, **_: Any) -> None:  # locust calls it with `environment=` and `msg=`
        write(run_dir(), msg.data)

    def finished(msg: Any, **_: Any) -> None:
        done.add(msg.node_id)

    def collect(**_: Any) -> None:
        workers = {client.id for client in runner.clients.all}
        for worker in workers:
            runner.server.send_to_client(Message("stop", None, worker))  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + (environment.stop_timeout or 0) + 60

        def waited_for() -> set[str]:  # a worker locust found gone (no heartbeat) is not
            return {c.id for c in runner.clients.all if c.state != STATE_MISSING} & workers

        while not waited_for() <= done and time.monotonic() < deadline:
            gevent.sleep(0.1)
        if missing := sorted(workers - done):
            logging.error("workers that shipped no ledger: %s", ", ".join(missing))
            (run_dir() / MISSING).write_text(json.dumps(missing) + "\n")

    runner.register_message(MESSAGE, shipped)
    runner.register_message(DONE, finished)
    environment.events.test_stopping.add_listener(collect)  # type: ignore[no-untyped-call]


def sample() -> dict[str, Any]:
    """This process's CPU seconds and memory now, as the master's report shows them per host."""
    me = psutil.Process()
    with me.oneshot():
        times, rss = me.cpu_times(), me.memory_info().rss
    return {
        "origin": origin(),
        "host": socket.gethostname(),
        "wall": time.time(),
        "cpu_seconds": round(times.user + times.system, 3),
        "rss_mb": round(rss / 2**20, 2),
    }


def report_done(environment: Environment) -> None:
    """On a worker: sample itself while the run goes (each host measures its own cost), and
    once its users have stopped (locust's `test_stop`) send a last sample and say so."""
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        return
    sampling: list[gevent.Greenlet] = []

    def samples() -> None:
        while True:
            runner.send_message(MESSAGE, {HOSTS: [sample()]})
            gevent.sleep(SAMPLE_EVERY)

    def started(**_: Any) -> None:
        if not sampling:
            sampling.append(gevent.spawn(samples))

    def stopped(**_: Any) -> None:
        for greenlet in sampling:
            greenlet.kill()
        sampling.clear()
        runner.send_message(MESSAGE, {HOSTS: [sample()]})
        runner.send_message(DONE, {"origin": origin()})

    environment.events.test_start.add_listener(started)  # type: ignore[no-untyped-call]
    environment.events.test_stop.add_listener(stopped)  # type: ignore[no-untyped-call]
