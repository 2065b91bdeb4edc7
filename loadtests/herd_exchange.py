"""The herd-size exchange over locust's messages (`herd_sizes` says what is exchanged): each
worker sends its capacity as its herd starts, the master answers each its share once all have
told, and writes the division to `run_files.HERDS`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import gevent
from gevent.event import AsyncResult
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests.herd_sizes import capacity, divide, equal_share
from loadtests.run_files import HERDS

CAPACITY: Final = "notify_capacity"
HERD: Final = "notify_herd"
ANSWER_TIMEOUT: Final = 60.0


class Herds:
    """The exchange, on both sides; one per locust environment. `run` gives the run's streams,
    workers and folder when they are known (on a worker, only once the master has sent the run,
    so nothing here asks for them at start)."""

    def __init__(self, environment: Environment, run: Callable[[], tuple[int, int, Path]]) -> None:
        self.environment = environment
        self._run = run
        self._told: dict[str, dict[str, Any]] = {}  # master: worker id -> its capacity message
        self._answer: AsyncResult = AsyncResult()

    def register(self) -> None:
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            runner.register_message(CAPACITY, self._capacity)
        elif isinstance(runner, WorkerRunner):
            runner.register_message(
                HERD, lambda msg, **_: self._answer.set(int(msg.data["streams"]))
            )

    def size(self, index: int, source_addresses: int, origin: str) -> int:
        """This worker's herd: asked of the master, or an equal share without one."""
        streams, workers, _ = self._run()
        runner = self.environment.runner
        if not isinstance(runner, WorkerRunner):
            return equal_share(streams, workers, index)
        runner.send_message(CAPACITY, {"origin": origin, "capacity": capacity(source_addresses)})
        try:
            return int(self._answer.get(timeout=ANSWER_TIMEOUT))
        except gevent.Timeout:
            logging.error("no herd size from the master in %g s: an equal share", ANSWER_TIMEOUT)
            return equal_share(streams, workers, index)

    def _capacity(self, msg: Any, **_: Any) -> None:
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        streams, workers, run_dir = self._run()
        self._told[msg.node_id] = msg.data
        if len(self._told) < workers:
            return
        ids = sorted(self._told)
        capacities = [int(self._told[i]["capacity"]) for i in ids]
        sizes = divide(streams, capacities)
        for node, size in zip(ids, sizes, strict=True):
            runner.send_message(HERD, {"streams": size}, client_id=node)
        shortfall = streams - sum(sizes)
        if shortfall:
            logging.error("the workers hold %d streams fewer than the run's", shortfall)
        division = [
            {"origin": self._told[i]["origin"], "capacity": c, "streams": s}
            for i, c, s in zip(ids, capacities, sizes, strict=True)
        ]
        record = {"streams": streams, "shortfall": shortfall, "workers": division}
        (run_dir / HERDS).write_text(json.dumps(record, indent=2) + "\n")
