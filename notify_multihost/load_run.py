"""A load run across the generator hosts: `python -m loadtests` as master on one host, aimed at
nginx on its host, and `loadtests.worker` on each other generator host, as a user would run them
(`notify-harness load --remote-workers 2 --master-bind ...` and `notify-harness worker`).

The master's output goes to this terminal (its progress and time left); the workers' to
`worker-<host>.log` beside the run's folder.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from loadtests.run_files import PUBLISHED, STREAMS_GLOB
from notify_multihost.host_costs import HostSampler
from notify_multihost.topology import MASTER, OnHosts, tier_hosts
from notify_stack.stack import Process, StackError, free_port, spawn, wait_until

MASTER_PORT_HOST = "127.0.0.1"  # only to pick a port number; the master binds its host's address


@dataclass(frozen=True)
class LoadSize:
    users: int
    rate: float
    hold: float
    broadcast_interval: float = 5.0

    def argv(self) -> list[str]:
        return [
            "--scenario",
            "fanout",
            "--users",
            str(self.users),
            "--rate",
            f"{self.rate:g}",
            "--duration",
            f"{self.hold:g}",
            "--broadcast-interval",
            f"{self.broadcast_interval:g}",
        ]


@dataclass(frozen=True)
class LoadResult:
    folder: Path | None
    exit_code: int
    summary: dict[str, Any]  # empty when the run wrote none
    streams_per_host: dict[str, int]
    killed: str | None  # the generator host whose worker was killed, if any


def _folder(reports: Path) -> Path | None:
    found = sorted(p for p in reports.glob("fanout-*") if p.is_dir())
    return found[-1] if found else None


def _kill_tree(pid: int) -> None:
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for proc in [*root.children(recursive=True), root]:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL)


def streams_per_host(folder: Path, pids: dict[int, str]) -> dict[str, int]:
    """Stream records per generator host, from each worker's file (`streams-<host>-<pid>`)."""
    counts: dict[str, int] = {}
    for path in folder.glob(STREAMS_GLOB):
        pid = path.stem.rpartition("-")[2]
        host = pids.get(int(pid), "unknown host") if pid.isdigit() else "unknown host"
        with path.open() as lines:
            counts[host] = counts.get(host, 0) + sum(1 for line in lines if line.strip())
    return counts


def run_load(
    stack: OnHosts,
    size: LoadSize,
    reports: Path,
    sampler: HostSampler,
    *,
    kill_at_hold: str | None = None,
) -> LoadResult:
    """The run, to its end; `kill_at_hold`: SIGKILL that generator host's worker once the first
    broadcast went out (a host lost mid-run). The sampler's roots get every process started,
    per host; the load run's own process counts by its children (locust's master and worker)."""
    roots, pids = sampler.roots, sampler.pids
    reports.mkdir(parents=True, exist_ok=True)
    master = stack.host(MASTER)
    port = free_port(MASTER_PORT_HOST)
    others = [h for h in tier_hosts("generator") if h != MASTER]
    command = [sys.executable, "-m", "loadtests", *size.argv(), "--generator-workers", "1"]
    command += ["--remote-workers", str(len(others)), "--master-bind", f"{master.address}:{port}"]
    command += ["--target", stack.entry, "--jwt-secret", stack.secret, "--reports", str(reports)]
    command += ["--redis-url", stack.redis[0].url]
    for server in stack.servers:
        command += ["--server-pid", str(server.process.pid)]
    popen = subprocess.Popen([*master.place.prefix, *command], stdin=subprocess.DEVNULL)
    sampler.children_only.add(popen.pid)
    roots[MASTER].append(popen.pid)
    workers: dict[str, Process] = {}
    try:
        for name in others:
            argv = [
                sys.executable,
                "-m",
                "loadtests.worker",
                "--master",
                f"{master.address}:{port}",
            ]
            workers[name] = spawn(f"worker-{name}", argv, reports, on=stack.host(name).place)
            roots[name].append(workers[name].pid)
        if kill_at_hold is not None:
            deadline = size.users / size.rate + 120

            def broadcasting() -> bool:
                folder = _folder(reports)
                return folder is not None and (folder / PUBLISHED).exists()

            try:
                wait_until(
                    broadcasting,
                    deadline,
                    "the first broadcast",
                    alive=lambda: popen.poll() is None,
                )
            except StackError as exc:  # the run ended or never broadcast: its summary says why
                print(f"multihost: {kill_at_hold}'s worker not killed: {exc}", flush=True)
            else:
                _kill_tree(workers[kill_at_hold].pid)
        try:
            code = popen.wait(timeout=size.users / size.rate + size.hold + 600)
        except subprocess.TimeoutExpired:  # killed below; the report says the run did not end
            print("multihost: the load run did not end in time; stopped", flush=True)
            code = -1
    finally:
        if popen.poll() is None:
            _kill_tree(popen.pid)
            popen.wait(30)
        for worker in workers.values():
            worker.stop()
    folder = _folder(reports)
    summary_file = None if folder is None else folder / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file and summary_file.exists() else {}
    per_host = streams_per_host(folder, pids) if folder else {}
    return LoadResult(folder, code, summary, per_host, kill_at_hold)
