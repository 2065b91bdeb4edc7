"""Locust users for the capacity scenarios, built on the one protocol client (blocking form).

The orchestrator (`python -m loadtests`) starts locust with this file and passes the run's
settings in the environment (`LoadEnv`). Every user reports to locust's request events:

| request type | name | response time |
|---|---|---|
| `WS` / `SSE` | `connect` | time to the `connected` frame |
| `WS` / `SSE` | `notification` | delivery latency (now - `sent_at` in the payload) |
| `WS` / `SSE` | `broadcast <k>` | the same, per broadcast |
| `WS` / `SSE` | `heartbeat` | 0 |
| `WS` / `SSE` | `close <code>`, `gap`, `duplicate` | failures: unexpected close, lost or repeated |
| `HTTP` | `publish`, `broadcast`, `start task` | driver call time |
"""

from __future__ import annotations

import itertools
import json
import random
import time
from functools import cache
from typing import Any

import httpx
from locust import User, constant, task
from locust.env import Environment
from websockets.exceptions import InvalidHandshake

from loadtests.config import LoadEnv
from notify_client.client import BlockingStreamClient, Closed
from notify_client.driver import BlockingDriver, task_call
from notify_client.sse_client import BlockingSseStream
from notify_contract.protocol import (
    SSE_NOTIFICATIONS_PATH,
    WS_NOTIFICATIONS_PATH,
    WS_TASKS_PATH,
    FrameType,
)
from notify_contract.reconnect import ReconnectPolicy
from notify_contract.tokens import Minter

ENV = LoadEnv.from_environ()
TOKENS = Minter(ENV.secret)
_local = itertools.count()


def fire(
    environment: Environment,
    kind: str,
    name: str,
    ms: float,
    length: int = 0,
    error: str | None = None,
) -> None:
    environment.events.request.fire(  # type: ignore[no-untyped-call]
        request_type=kind,
        name=name,
        response_time=ms,
        response_length=length,
        exception=None if error is None else RuntimeError(error),
        context={},
    )


def worker_index(environment: Environment) -> int:
    return int(getattr(environment.runner, "worker_index", 0) or 0)


def source_address(n: int) -> tuple[str, int] | None:
    """Spread connections over 127.0.0.x source addresses (each has ~28k ephemeral ports)."""
    if not ENV.source_addresses:
        return None
    return (ENV.source_addresses[n % len(ENV.source_addresses)], 0)


class Tracker:
    """Per stream: latency of each notification, and gaps or repeats in broadcast numbers."""

    def __init__(self, environment: Environment, kind: str) -> None:
        self.environment = environment
        self.kind = kind
        self.last_seq: int | None = None
        self.last_id: str | None = None

    def notification(self, data: dict[str, Any], size: int) -> None:
        now = time.time()
        sent_at = data.get("sent_at")
        latency = max(0.0, (now - sent_at) * 1000) if isinstance(sent_at, int | float) else 0.0
        self.last_id = str(data.get("id")) if data.get("id") else self.last_id
        fire(self.environment, self.kind, "notification", latency, size)
        seq = data.get("seq")
        if isinstance(seq, int):
            fire(self.environment, self.kind, f"broadcast {seq}", latency, size)
            if self.last_seq is not None:
                if seq <= self.last_seq:
                    fire(self.environment, self.kind, "duplicate", 0, error=f"seq {seq} again")
                elif seq > self.last_seq + 1:
                    for lost in range(self.last_seq + 1, seq):
                        fire(self.environment, self.kind, "gap", 0, error=f"seq {lost} lost")
            self.last_seq = max(seq, self.last_seq or 0)


class StreamUser(User):
    """Holds one WebSocket notification stream; reconnects per docs/contract.md 7, resuming."""

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        n = next(_local)
        self.user_id = f"load-w{worker_index(self.environment)}-{n}"
        self.source = source_address(n)
        self.tracker = Tracker(self.environment, "WS")
        self.policy = ReconnectPolicy(jitter=True)
        self.stream: BlockingStreamClient | None = None

    def connect(self) -> BlockingStreamClient | None:
        started = time.perf_counter()

        def report(error: str | None, length: int = 0) -> None:
            ms = (time.perf_counter() - started) * 1000
            fire(self.environment, "WS", "connect", ms, length, error=error)

        stream = None
        try:
            stream = BlockingStreamClient.open(
                ENV.target,
                WS_NOTIFICATIONS_PATH,
                TOKENS.mint(self.user_id, ttl=86400),
                last_id=self.tracker.last_id,
                source_address=self.source,
                max_queue=None,
                open_timeout=60,
            )
            hello = stream.recv(timeout=60)
        except (OSError, TimeoutError, Closed, InvalidHandshake) as exc:
            if stream is not None:
                stream.close()
            report(f"{type(exc).__name__}: {exc}")
            return None
        if hello.type != "connected":
            stream.close()
            report(f"first frame {hello.type}")
            return None
        report(None, len(hello.raw))
        self.policy.connected()
        return stream

    def hold_stream(self) -> None:
        """Read until the stream closes; then back off and let the task run again."""
        self.stream = self.stream or self.connect()
        if self.stream is None:
            self.back_off(None)
            return
        try:
            while True:
                frame = self.stream.recv(timeout=3600)
                if frame.type == FrameType.NOTIFICATION:
                    self.tracker.notification(frame.data, len(frame.raw))
                elif frame.type == FrameType.HEARTBEAT:
                    fire(self.environment, "WS", "heartbeat", 0, len(frame.raw))
        except Closed as closed:
            fire(self.environment, "WS", f"close {closed.code}", 0, error=closed.reason or "closed")
            self.stream.close()  # its socket: an 80k run ran out of descriptors without this
            self.stream = None
            self.back_off(closed.code)

    def back_off(self, code: int | None) -> None:
        due = self.policy.next_attempt(code)
        if due is None:
            self.stop()
        else:
            self.wait_until(due)

    def wait_until(self, due: float) -> None:
        import gevent

        gevent.sleep(max(0.0, due - time.monotonic()))

    def on_stop(self) -> None:
        if self.stream is not None:
            self.stream.close()


class IdleUser(StreamUser):
    """`idle`, `fanout` and `personal`: a notification stream, held."""

    @task
    def hold(self) -> None:
        self.hold_stream()


class ChurnUser(StreamUser):
    """`churn`: open a stream, hold it a moment, close it, again."""

    @task
    def churn(self) -> None:
        stream = self.connect()
        if stream is None:
            self.back_off(None)
            return
        deadline = time.monotonic() + random.uniform(0.5, ENV.churn_hold)
        try:
            while (left := deadline - time.monotonic()) > 0:
                try:
                    stream.recv(timeout=left)
                except TimeoutError:
                    break
        except Closed as closed:
            fire(self.environment, "WS", f"close {closed.code}", 0, error=closed.reason or "")
        finally:
            stream.close()


@cache
def driver() -> BlockingDriver:
    """One driver (one HTTP client) for the users of this process that publish or start tasks."""
    return BlockingDriver(ENV.target, TOKENS.mint("load-admin", admin=True, ttl=86400))


@cache
def sse_http() -> httpx.Client:
    """One HTTP client for every SSE user of this process."""
    return BlockingSseStream.shared_client(ENV.target, timeout=60)


class SseUser(User):
    """`sse`: the same load over the legacy SSE stream."""

    wait_time = constant(0)

    def on_start(self) -> None:
        n = next(_local)
        self.user_id = f"load-w{worker_index(self.environment)}-{n}"
        self.tracker = Tracker(self.environment, "SSE")

    @task
    def hold(self) -> None:
        started = time.perf_counter()
        try:
            stream = BlockingSseStream.open(
                sse_http(),
                SSE_NOTIFICATIONS_PATH,
                TOKENS.mint(self.user_id, ttl=86400),
                last_event_id=self.tracker.last_id,
            )
            first = stream.next()
        except (OSError, Closed) as exc:
            fire(
                self.environment,
                "SSE",
                "connect",
                (time.perf_counter() - started) * 1000,
                error=f"{type(exc).__name__}: {exc}",
            )
            self.stop_briefly()
            return
        fire(
            self.environment,
            "SSE",
            "connect",
            (time.perf_counter() - started) * 1000,
            error=None
            if stream.status == 200 and first.event == "connected"
            else f"HTTP {stream.status}, first event {first.event}",
        )
        try:
            while True:
                event = stream.next()
                if event.event == "notification":
                    self.tracker.notification(event.data, len(json.dumps(event.data)))
                elif event.event == "heartbeat":
                    fire(self.environment, "SSE", "heartbeat", 0)
        except (OSError, Closed) as exc:
            fire(self.environment, "SSE", "close", 0, error=f"{type(exc).__name__}: {exc}")
        finally:
            stream.close()

    def stop_briefly(self) -> None:
        import gevent

        gevent.sleep(1.0)


class TaskUser(User):
    """`tasks`: start a task, watch its stream to the end, again."""

    wait_time = constant(0.5)

    def on_start(self) -> None:
        self.user_id = f"load-w{worker_index(self.environment)}-{next(_local)}"
        self.driver = driver()

    @task
    def watch(self) -> None:
        token = TOKENS.mint(self.user_id, ttl=86400)
        started = time.perf_counter()
        task_id = str(self.driver.do(task_call(token, 5, 200, None)))
        fire(self.environment, "HTTP", "start task", (time.perf_counter() - started) * 1000)
        stream = BlockingStreamClient.open(ENV.target, WS_TASKS_PATH.format(task_id=task_id), token)
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
        self.driver = driver()
        self.seq = itertools.count(1)
        self.log = open(ENV.run_dir / "published.jsonl", "a")  # noqa: SIM115 - closed in on_stop

    @task
    def publish(self) -> None:
        import gevent

        if not ENV.publish_from <= time.time() <= ENV.publish_until:
            gevent.sleep(1.0)  # before the ramp ends, or after the last publish
            return
        if ENV.scenario == "personal":
            self.personal()
            gevent.sleep(1.0 / ENV.publish_rate)
            return
        seq = next(self.seq)
        # Streams that should get it: stats count WebSocket streams; SSE users are all of them.
        expected = ENV.users if ENV.scenario == "sse" else self.driver.stats()["total_connections"]
        sent_at = time.time()
        try:
            self.driver.broadcast(f"broadcast {seq}", seq=seq, sent_at=sent_at)
            error = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        fire(self.environment, "HTTP", "broadcast", (time.time() - sent_at) * 1000, error=error)
        self.log.write(
            json.dumps({"seq": seq, "sent_at": sent_at, "expected": expected, "error": error})
            + "\n"
        )
        self.log.flush()
        gevent.sleep(max(0.0, ENV.broadcast_interval - (time.time() - sent_at)))

    def personal(self) -> None:
        worker = random.randrange(max(1, ENV.generator_workers))
        n = random.randrange(max(1, ENV.users // max(1, ENV.generator_workers)))
        sent_at = time.time()
        try:
            self.driver.publish(f"load-w{worker}-{n}", "personal", sent_at=sent_at)
            error = None
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        fire(self.environment, "HTTP", "publish", (time.time() - sent_at) * 1000, error=error)

    def on_stop(self) -> None:
        self.log.close()


SCENARIO_USERS: dict[str, list[type[User]]] = {
    "idle": [IdleUser],
    "fanout": [IdleUser, Publisher],
    "personal": [IdleUser, Publisher],
    "churn": [ChurnUser],
    "tasks": [TaskUser],
    "sse": [SseUser, Publisher],
}

# Locust runs every User class defined here that is not abstract; keep only this scenario's.
for _cls in (IdleUser, ChurnUser, SseUser, TaskUser, Publisher):
    _cls.abstract = _cls not in SCENARIO_USERS[ENV.scenario]
del _cls  # locust collects User classes from this module's names
