"""One Redis of the bus: its client, its sequence and epoch, its history and its subscription.

A deployment has one (`REDIS_URL`) or several (a list: partitions). Each keeps its own sequence:
the order of everything published on it is the order of its seq, which is what a stream of a
user on it is delivered in and resumes by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from reference_server.records import Stored, parse_id, stored_from_json
from reference_server.redis_scripts import (
    BROADCAST_CHANNEL,
    BUS_CLIENT,
    EPOCH_KEY,
    PUBLISH_LUA,
    RESUBSCRIBE_MAX_DELAY,
    SEQ_JUMP,
    SEQ_KEY,
    TASK_PATTERN,
    USER_PATTERN,
)

log = logging.getLogger("reference_server.redis")

Dispatch = Callable[["Partition", dict[str, Any]], Awaitable[None]]


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def close_pubsub(pubsub: aioredis.client.PubSub) -> Awaitable[None]:
    """`PubSub.aclose()`, which redis-py types in some releases and not in others (8.1 left it
    untyped, 8.2 typed it): one call that type-checks against both."""
    aclose: Callable[[], Awaitable[None]] = pubsub.aclose
    return aclose()


class Partition:
    """One Redis: publishing in its order, its history, and one subscription to it."""

    def __init__(
        self,
        index: int,
        url: str,
        *,
        archive_size: int,
        tasks: bool,
        changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.index = index
        self._changed = changed  # told when the subscription comes or goes
        self.url = url
        self.epoch = ""
        self.tasks = tasks  # task events travel on this one (the first)
        self.max_seq = 0  # highest sequence number seen, kept across a Redis restart
        self._archive_size = archive_size
        # A blocking pool: a burst of connects or closes waits for a connection instead of
        # failing with "too many connections" (10k streams closing at once release 10k slots).
        # Named per process, so `CLIENT LIST` tells the bus (one subscription) from SSE feeds.
        self.redis = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                url, max_connections=64, timeout=30, client_name=f"{BUS_CLIENT}-{os.getpid()}"
            )
        )
        self._publish = self.redis.register_script(PUBLISH_LUA)
        self.subscribed = asyncio.Event()

    async def start(self) -> None:
        await self.redis.set(EPOCH_KEY, secrets.token_hex(4), nx=True)
        epoch = await self.redis.get(EPOCH_KEY)
        if epoch is None:
            raise RuntimeError(f"redis {self.url} lost {EPOCH_KEY} right after setting it")
        self.epoch = text(epoch)

    async def aclose(self) -> None:
        await self.redis.aclose(close_connection_pool=True)

    async def publish(self, archive: str, channel: str, body: str, given_id: str = "") -> Stored:
        """Sequence `body` here, keep it in `archive`, publish it on `channel`."""
        args: list[str | int] = [
            body,
            channel,
            self._archive_size,
            self.epoch,
            self.max_seq,
            SEQ_JUMP,
            given_id,
        ]
        raw = await self._publish(keys=[SEQ_KEY, EPOCH_KEY, archive], args=args)
        stored = stored_from_json(self.epoch, raw)
        if stored is None:
            raise RedisError(f"redis {self.url} returned an unreadable record: {raw[:200]!r}")
        self.see(stored)
        return stored

    def see(self, stored: Stored) -> None:
        self.max_seq = max(self.max_seq, stored.seq)

    def stored(self, raw: bytes | str) -> Stored | None:
        return stored_from_json(self.epoch, raw)

    async def history(self, key: str) -> list[Stored]:
        raw = await self.redis.lrange(key, 0, -1)
        return [s for s in (self.stored(r) for r in raw) if s is not None]

    async def current_seq(self) -> int:
        return max(int(await self.redis.get(SEQ_KEY) or 0), self.max_seq)

    def seq_of(self, notification_id: str) -> int | None:
        return parse_id(self.epoch, notification_id)

    async def listen(
        self, dispatch: Dispatch, catch_up: Callable[[Partition], Awaitable[None]]
    ) -> None:
        """Hold one subscription to this Redis, for good; after a loss, catch up and go on."""
        delay, lost = 0.1, False
        while True:
            pubsub = self.redis.pubsub()
            try:
                patterns = (USER_PATTERN, TASK_PATTERN) if self.tasks else (USER_PATTERN,)
                await pubsub.psubscribe(*patterns)
                await pubsub.subscribe(BROADCAST_CHANNEL)
                if lost:  # deliver what was published while the subscription was down
                    await catch_up(self)
                self.subscribed.set()
                self._changed()
                delay, lost = 0.1, False
                async for message in pubsub.listen():
                    await dispatch(self, message)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                self._changed()
                lost = True
                log.warning(
                    "redis subscription to %s lost (%s); retrying in %.1fs", self.url, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESUBSCRIBE_MAX_DELAY)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await close_pubsub(pubsub)
