"""Locust users for the capacity scenarios.

By locust's conventions: the user classes a scenario runs are named on locust's command line
(`locust -f loadtests/locustfile.py IdleUser Publisher`, see `SCENARIO_USERS`); the run's
settings are one locust option of this file (`--notify-run`, set by `python -m loadtests`
as one JSON value in `LOCUST_NOTIFY_RUN`); nothing is read at import. The streams report to locust
themselves (`loadtests.locust_client`); `HTTP` requests `publish`, `broadcast` and
`start task` are driver call times.
"""

from __future__ import annotations

import itertools
import random
import time
from functools import cache
from pathlib import Path
from typing import Any

import gevent
import httpx
from locust import User, constant, events, task
from locust.env import Environment

from loadtests import shipping
from loadtests.config import LoadEnv
from loadtests.herd import Herd
from loadtests.herd_exchange import Herds
from loadtests.latencies import Latencies
from loadtests.locust_client import LocustSseStream, WsStream, fire
from loadtests.run_files import PUBLISHED
from notify_client.blocking import BlockingStreamClient
from notify_client.client import Closed
from notify_client.driver import BlockingDriver, task_call
from notify_client.sse_client import BlockingSseStream
from notify_contract.protocol import WS_TASKS_PATH
from notify_contract.tokens import Minter

_local = itertools.count()


def _options(parser: Any) -> None:
    LoadEnv.add_arguments(parser)


events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]


_runs: dict[int, LoadEnv] = {}


def run_of(environment: Environment) -> LoadEnv:
    """This run's settings, from locust's parsed options (read once per environment)."""
    key = id(environment)
    if key not in _runs:
        _runs[key] = LoadEnv.from_options(environment.parsed_options)
    return _runs[key]


@cache
def tokens(secret: str) -> Minter:
    return Minter(secret)


@cache
def driver(target: str, secret: str, command: str) -> BlockingDriver:
    """One driver for the users of this process that publish or start tasks: the HTTP driver
    API, or the user's `--driver-cmd`."""
    admin = tokens(secret).mint("load-admin", admin=True, ttl=86400)
    return BlockingDriver(target, admin, command=command or None)


@cache
def sse_http(target: str) -> httpx.Client:
    """One HTTP client for every SSE user of this process."""
    return BlockingSseStream.shared_client(target, timeout=60)


def user_name(environment: Environment) -> str:
    worker = int(getattr(environment.runner, "worker_index", 0) or 0)
    return f"load-w{worker}-{next(_local)}"


def wait_until(due: float) -> None:
    gevent.sleep(max(0.0, due - time.monotonic()))


def log_streams(environment: Environment, lines: list[dict[str, Any]], measured: Latencies) -> None:
    """Streams' records (notify_client.ledger counts them all) and their latency histograms
    (loadtests.latencies merges them) into the run's folder, through the master from a worker."""
    shipping.ship(environment, run_of(environment).run_dir, lines, measured)


_herds: dict[int, Herds] = {}


def herds_of(environment: Environment) -> Herds:
    """The herd-size exchange of this environment (one per run and process)."""
    key = id(environment)
    if key not in _herds:

        def run() -> tuple[int, int, Path]:
            load = run_of(environment)
            return load.users, load.generator_workers, load.run_dir

        _herds[key] = Herds(environment, run)
    return _herds[key]


def _init(environment: Environment, **_: Any) -> None:
    shipping.receive(environment, lambda: run_of(environment).run_dir)
    shipping.report_done(environment)
    herds_of(environment).register()


events.init.add_listener(_init)  # type: ignore[no-untyped-call]


def ws_stream(
    environment: Environment, run: LoadEnv, user_id: str, measured: Latencies | None = None
) -> WsStream:
    """The stream of the simulated user `user_id` (named by `user_name`); `measured`: the
    histograms it adds to (its herd's)."""
    sources = run.source_addresses
    n = int(user_id.rsplit("-", 1)[1])
    return WsStream(
        environment,
        run.target,
        lambda: tokens(run.secret).mint(user_id, ttl=86400),
        user=user_id,
        # Spread connections over 127.0.0.x source addresses (config.check_budget: each under
        # half the port range).
        source_address=(sources[n % len(sources)], 0) if sources else None,
        compression="deflate" if run.offer_compression else None,
        latencies=measured,
    )


class HerdUser(User):
    """`idle`, `fanout` and `personal`: one user per generator worker holds the worker's share
    of the streams (`loadtests.herd`), each reconnecting per docs/contract.md 7, resuming."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.load = run_of(self.environment)
        worker = int(getattr(self.environment.runner, "worker_index", 0) or 0)
        addresses = len(self.load.source_addresses)
        size = herds_of(self.environment).size(worker, addresses, shipping.origin())
        self.measured = Latencies()  # one set of histograms for the herd's streams
        self.members = [
            (name, ws_stream(self.environment, self.load, name, self.measured))
            for name in (user_name(self.environment) for _ in range(size))
        ]
        rate = self.load.rate * size / max(1, self.load.users)  # the run's rate, shared alike
        self.herd = Herd([stream for _, stream in self.members], rate)

    @task
    def hold(self) -> None:
        self.herd.run()

    def on_stop(self) -> None:
        self.herd.close()
        records = [s.report.record(name, name) for name, s in self.members]
        log_streams(self.environment, records, self.measured)


class StreamUser(User):
    """Holds one WebSocket notification stream; reconnects per docs/contract.md 7, resuming."""

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        self.load = run_of(self.environment)
        self.user_id = user_name(self.environment)
        self.client = ws_stream(self.environment, self.load, self.user_id)

    def back_off(self, code: int | None) -> None:
        due = self.client.next_attempt(code)
        if due is None:
            self.stop()
        else:
            wait_until(due)

    def on_stop(self) -> None:
        self.client.close()


class IdleUser(StreamUser):
    """`mixed`: a notification stream, held by its own greenlet; its record is logged."""

    weight = 8  # in `mixed`, beside ChurnUser and TaskUser (1 each)

    @task
    def hold(self) -> None:
        if self.client.stream is None and not self.client.connect():
            self.back_off(None)
            return
        self.back_off(self.client.hold())

    def on_stop(self) -> None:
        super().on_stop()
        record = self.client.report.record(self.user_id, self.user_id)
        log_streams(self.environment, [record], self.client.report.latencies)


class ChurnUser(StreamUser):
    """`churn`: open a stream, hold it a moment, close it, again."""

    @task
    def churn(self) -> None:
        if not self.client.connect():
            self.back_off(None)
            return
        deadline = time.monotonic() + random.uniform(0.5, self.load.churn_hold)
        try:
            while (left := deadline - time.monotonic()) > 0:
                self.client.read(left)
        except TimeoutError:
            pass
        except Closed as closed:
            self.client.report.fire(f"close {closed.code}", error=closed.reason or "")
        finally:
            self.client.close()


class SseUser(User):
    """`sse`: the same load over the legacy SSE stream."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.load = run_of(self.environment)
        self.user_id = user_name(self.environment)
        self.client = LocustSseStream(
            self.environment,
            sse_http(self.load.target),
            lambda: tokens(self.load.secret).mint(self.user_id, ttl=86400),
            self.user_id,
        )

    @task
    def hold(self) -> None:
        if not self.client.hold():
            gevent.sleep(1.0)

    def on_stop(self) -> None:
        record = self.client.report.record(self.user_id, self.user_id)
        log_streams(self.environment, [record], self.client.report.latencies)


class TaskUser(User):
    """`tasks`: start a task, watch its stream to the end, again."""

    wait_time = constant(0.5)

    def on_start(self) -> None:
        self.load = run_of(self.environment)
        self.user_id = user_name(self.environment)
        self.driver = driver(self.load.target, self.load.secret, self.load.driver_cmd)

    @task
    def watch(self) -> None:
        token = tokens(self.load.secret).mint(self.user_id, ttl=86400)
        started = time.perf_counter()
        task_id = str(self.driver.do(task_call(token, 5, 200, None)))
        fire(self.environment, "HTTP", "start task", (time.perf_counter() - started) * 1000)
        path = WS_TASKS_PATH.format(task_id=task_id)
        stream = BlockingStreamClient.open(self.load.target, path, token)
        try:
            frames = stream.until_closed(timeout=60)
        finally:
            stream.close()
        kinds = [f.type for f in frames]
        fire(
            self.environment,
            "WS",
            "task stream",
            (time.perf_counter() - started) * 1000,
            error=None if kinds and kinds[-1] == "completed" else f"ended with {kinds[-1:]}",
        )


class Publisher(User):
    """One per run: broadcasts (`fanout`, `sse`) or personal notifications (`personal`)."""

    fixed_count = 1
    wait_time = constant(0)

    def on_start(self) -> None:
        self.load = run_of(self.environment)
        self.driver = driver(self.load.target, self.load.secret, self.load.driver_cmd)
        self.seq = itertools.count(1)
        self.last_broadcast = 0.0

    @task
    def publish(self) -> None:
        run = self.load
        if not run.publish_from <= time.time() <= run.publish_until:
            gevent.sleep(1.0)  # before the ramp ends, or after the last publish
            return
        if run.scenario == "personal" or (
            run.scenario == "mixed" and time.time() - self.last_broadcast < run.broadcast_interval
        ):
            self.personal()
            gevent.sleep(1.0 / run.publish_rate)
            return
        self.last_broadcast = time.time()
        seq = next(self.seq)
        sent_at = time.time()
        try:
            note = self.driver.broadcast(f"broadcast {seq}", seq=seq, sent_at=sent_at)
            error = None
        except Exception as exc:
            note, error = {}, f"{type(exc).__name__}: {exc}"
        acked_at = time.time()
        fire(self.environment, "HTTP", "broadcast", (acked_at - sent_at) * 1000, error=error)
        # What the server's own stats say it holds: a cross-check, never the expectation.
        stats = self.server_streams() if run.stats_cross_check and run.scenario != "sse" else None
        self.write(note, None, sent_at, acked_at, error, seq=seq, server_streams=stats)
        if run.scenario != "mixed":  # mixed publishes personal notifications in between
            gevent.sleep(max(0.0, run.broadcast_interval - (time.time() - sent_at)))

    def server_streams(self) -> int | None:
        try:
            return int(self.driver.stats()["total_connections"])
        except Exception:  # a target without stats, or without an admin for them
            return None

    def write(
        self,
        note: dict[str, Any],
        user: str | None,
        sent_at: float,
        acked_at: float,
        error: str | None,
        **extra: Any,
    ) -> None:
        """One line of published.jsonl: the acknowledged id (notify_client.ledger.Published)."""
        line = {"id": note.get("id"), "user": user, "sent_at": sent_at, "acked_at": acked_at}
        published = {PUBLISHED: [{**line, "error": error, **extra}]}
        shipping.send(self.environment, self.load.run_dir, published)

    def personal(self) -> None:
        run = self.load
        worker = random.randrange(max(1, run.generator_workers))
        n = random.randrange(max(1, run.users // max(1, run.generator_workers)))
        user = f"load-w{worker}-{n}"
        sent_at = time.time()
        try:
            note = self.driver.publish(user, "personal", sent_at=sent_at)
            error = None
        except Exception as exc:
            note, error = {}, f"{type(exc).__name__}: {exc}"
        acked_at = time.time()
        fire(self.environment, "HTTP", "publish", (acked_at - sent_at) * 1000, error=error)
        self.write(note, user, sent_at, acked_at, error)
