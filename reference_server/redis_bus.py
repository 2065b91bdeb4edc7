"""The Redis bus: one subscription per process and per Redis, shared history and presence.

Publishing runs one Lua script (next sequence number, archive, PUBLISH) so that the order on the
channel is the order of the ids, whichever instance published; every instance, the publisher
included, delivers from its subscription, so a notification reaches each stream once.

With several Redis instances (`REDIS_URL` a list), each is a partition (`redis_partition.py`):
a user's notifications are sequenced, kept and published on theirs (`partition_of`); a broadcast
gets one id (`<broadcast epoch>-<n>`, counted on the first) and is sequenced, kept and published
on every partition once, so each user's stream still sees one order: their partition's.
Presence and tasks stay on the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from reference_server.bus import TaskInfo
from reference_server.hub import Hub
from reference_server.records import (
    Stored,
    TaskEvent,
    record_body,
    select_after,
    select_replay,
)
from reference_server.redis_partition import Partition, close_pubsub, text
from reference_server.redis_scripts import (
    ACQUIRE_LUA,
    BROADCAST_CHANNEL,
    BROADCAST_COUNT_KEY,
    BROADCAST_EPOCH_KEY,
    BROADCAST_KEY,
    BUS_CLIENT,
    FEED_CLIENT,
    INSTANCES_KEY,
    RELEASE_LUA,
    SEQ_JUMP,
    TASK_EVENT_LUA,
    TASK_TTL,
    archive_key,
    partition_of,
    presence_key,
    task_channel,
    user_channel,
)

__all__ = ["BROADCAST_CHANNEL", "BUS_CLIENT", "FEED_CLIENT", "SEQ_JUMP", "RedisBus"]

log = logging.getLogger("reference_server.redis")

RELEASE_RETRY_MAX: Final = 5.0  # seconds between attempts at most, while Redis is unreachable


class RedisBus:
    """Shared state in Redis; local delivery from one PubSub connection per Redis."""

    def __init__(
        self,
        hub: Hub,
        urls: tuple[str, ...],
        *,
        history_size: int,
        archive_size: int,
        max_connections: int,
        presence_ttl: float,
    ) -> None:
        self.hub = hub
        self.partitions = [
            Partition(
                i, url, archive_size=archive_size, tasks=i == 0, changed=self._subscriptions_changed
            )
            for i, url in enumerate(urls)
        ]
        self.instance = secrets.token_hex(6)
        self._broadcast_epoch = ""
        self._history_size = history_size
        self._ttl = max(1, round(presence_ttl))
        control = self.partitions[0]
        self._redis = control.redis  # presence, tasks and the broadcast count
        # The legacy per-connection SSE mode holds one PubSub connection per client: its own pool.
        self._feeds = aioredis.ConnectionPool.from_url(
            control.url, max_connections=max_connections, client_name=f"{FEED_CLIENT}-{os.getpid()}"
        )
        self._task_event = self._redis.register_script(TASK_EVENT_LUA)
        self._acquire = self._redis.register_script(ACQUIRE_LUA)
        self._release = self._redis.register_script(RELEASE_LUA)
        self._subscribed = asyncio.Event()
        self._jobs: list[asyncio.Task[None]] = []
        # Slots of closed streams not yet released in Redis, per user; one job releases them.
        self._unreleased: Counter[str] = Counter()
        self._releasing: asyncio.Task[None] | None = None
        count = len(self.partitions)
        self.partition_of = lru_cache(maxsize=1 << 17)(lambda user: partition_of(user, count))

    @property
    def epoch(self) -> str:
        return self.partitions[0].epoch

    @property
    def subscribed(self) -> asyncio.Event:
        """Set while every subscription is live (tests and start-up wait on it)."""
        return self._subscribed

    def _of(self, user_id: str) -> Partition:
        return self.partitions[self.partition_of(user_id)]

    async def start(self) -> None:
        for part in self.partitions:
            await part.start()
        if len(self.partitions) > 1:
            await self._redis.set(BROADCAST_EPOCH_KEY, secrets.token_hex(4), nx=True)
            self._broadcast_epoch = text(await self._redis.get(BROADCAST_EPOCH_KEY) or b"")
        await self._redis.sadd(INSTANCES_KEY, self.instance)
        self._jobs = [
            asyncio.create_task(self._keep_presence(), name="redis-presence"),
        ] + [
            asyncio.create_task(
                p.listen(self._dispatch, self._catch_up), name=f"redis-sub-{p.index}"
            )
            for p in self.partitions
        ]
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)

    def _subscriptions_changed(self) -> None:
        if all(p.subscribed.is_set() for p in self.partitions):
            self._subscribed.set()
        else:
            self._subscribed.clear()

    async def stop(self) -> None:
        if self._releasing is not None:
            # Up to 5 s for the last releases; a Redis still away by then gets the presence
            # key's expiry instead (this instance stops refreshing it).
            done, _ = await asyncio.wait([self._releasing], timeout=5)
            if not done:
                self._releasing.cancel()
        for job in self._jobs:
            job.cancel()
        for job in self._jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(presence_key(self.instance))
            await self._redis.srem(INSTANCES_KEY, self.instance)
        for part in self.partitions:
            await part.aclose()
        await self._feeds.aclose()

    # -- notifications --------------------------------------------------------------------

    async def publish(self, user_id: str | None, fields: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(record_body(fields), separators=(",", ":"))
        if user_id is not None:
            part = self._of(user_id)
            stored = await part.publish(archive_key(user_id), user_channel(user_id), body)
            return stored.record
        if len(self.partitions) == 1:
            only = self.partitions[0]
            return (await only.publish(BROADCAST_KEY, BROADCAST_CHANNEL, body)).record
        # One id for every partition; each sequences it in its own order.
        n = await self._redis.incr(BROADCAST_COUNT_KEY)
        given = f"{self._broadcast_epoch}-{n}"
        records = [
            await p.publish(BROADCAST_KEY, BROADCAST_CHANNEL, body, given) for p in self.partitions
        ]
        return records[0].record

    async def resume(self, user_id: str, last_id: str) -> list[Stored] | None:
        part = self._of(user_id)
        personal = await part.history(archive_key(user_id))
        broadcast = await part.history(BROADCAST_KEY)
        return select_replay(personal, broadcast, last_id, self._history_size)

    async def archive(self, user_id: str, after_id: str | None) -> list[dict[str, Any]]:
        part = self._of(user_id)
        personal = await part.history(archive_key(user_id))
        broadcast = await part.history(BROADCAST_KEY)
        return select_after(personal, broadcast, part.epoch, after_id)

    async def current_seq(self, user_id: str | None = None) -> int:
        """The sequence the user's partition is at (the first's without a user)."""
        part = self.partitions[0] if user_id is None else self._of(user_id)
        return await part.current_seq()

    # -- tasks ----------------------------------------------------------------------------

    async def task_create(self, task_id: str, owner: str) -> None:
        await self._redis.hset(f"task:{task_id}", mapping={"owner": owner})
        await self._redis.expire(f"task:{task_id}", TASK_TTL)

    async def task_info(self, task_id: str) -> TaskInfo | None:
        raw = await self._redis.hgetall(f"task:{task_id}")
        if b"owner" not in raw:
            return None
        latest = raw.get(b"latest")
        event = TaskEvent.from_json(latest) if latest else None
        return TaskInfo(text(raw[b"owner"]), event)

    async def task_event(self, task_id: str, event: TaskEvent) -> None:
        await self._task_event(
            keys=[f"task:{task_id}"], args=[event.to_json(), task_channel(task_id), TASK_TTL]
        )

    # -- presence (per-user limit and stats across instances) -----------------------------

    async def acquire_slot(self, user_id: str) -> bool:
        ok = await self._acquire(
            keys=[INSTANCES_KEY, presence_key(self.instance)],
            args=[user_id, self.hub.max_per_user, self._ttl],
        )
        return bool(ok)

    def release_slot(self, user_id: str) -> None:
        """Give the slot back, soon: the releases of a burst of closes (10k streams closing at
        once) go out together, one pipeline a round trip, and are retried until Redis takes
        them. A 100k run lost some to "Timeout connecting to server" when each was its own
        call, and every lost one held a user's slot while the instance lived."""
        self._unreleased[user_id] += 1
        if self._releasing is None:
            self._releasing = asyncio.get_running_loop().create_task(self._release_slots())

    async def _release_slots(self) -> None:
        delay = 0.1
        try:
            while self._unreleased:
                batch, self._unreleased = self._unreleased, Counter()
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        key = presence_key(self.instance)
                        for user_id, n in batch.items():
                            await self._release(keys=[key], args=[user_id, n], client=pipe)
                        await pipe.execute()
                    delay = 0.1
                except (RedisError, OSError) as exc:
                    self._unreleased.update(batch)
                    log.warning(
                        "could not release %d connection slots, again in %g s: %s",
                        batch.total(),
                        delay,
                        exc,
                    )
                    await asyncio.sleep(delay)
                    delay = min(2 * delay, RELEASE_RETRY_MAX)
        finally:
            self._releasing = None

    async def stats(self) -> dict[str, Any]:
        totals: dict[str, int] = {}
        for raw in await self._redis.smembers(INSTANCES_KEY):
            counts = await self._redis.hgetall(presence_key(text(raw)))
            for user, n in counts.items():
                totals[text(user)] = totals.get(text(user), 0) + int(n)
        users = {u: n for u, n in totals.items() if n > 0}
        return {"total_users": len(users), "total_connections": sum(users.values()), "users": users}

    async def _keep_presence(self) -> None:
        """Refresh this instance's presence; rewrite it from the hub if Redis lost it."""
        key = presence_key(self.instance)
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self._redis.sadd(INSTANCES_KEY, self.instance)
                if not await self._redis.expire(key, self._ttl):
                    self._unreleased.clear()  # the hub's counts below are after those closes
                    counts = self.hub.counts()
                    if counts:
                        async with self._redis.pipeline(transaction=True) as pipe:
                            for user_id, n in counts.items():
                                pipe.hset(key, user_id, n)
                            pipe.expire(key, self._ttl)
                            await pipe.execute()
            except (RedisError, OSError) as exc:
                log.warning("presence refresh failed: %s", exc)

    # -- the subscriptions ----------------------------------------------------------------

    async def _dispatch(self, part: Partition, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind not in ("message", "pmessage"):
            return
        channel = text(message["channel"])
        data = message["data"]
        if channel == BROADCAST_CHANNEL:
            stored = part.stored(data)
            if stored is not None:
                part.see(stored)
                if len(self.partitions) == 1:
                    await self.hub.to_everyone(stored.outgoing())
                else:
                    await self.hub.to_users(self._users_of(part), stored.outgoing())
        elif channel.startswith("notifications:"):
            stored = part.stored(data)
            if stored is not None:
                part.see(stored)
                user_id = channel.removeprefix("notifications:")
                await self.hub.to_user(user_id, stored.outgoing())
        elif channel.startswith("task_progress:") and part.tasks:
            event = TaskEvent.from_json(data)
            await self.hub.to_task(channel.removeprefix("task_progress:"), event.outgoing())

    def _users_of(self, part: Partition) -> list[str]:
        return [u for u in self.hub.users() if self.partition_of(u) == part.index]

    async def _catch_up(self, part: Partition) -> None:
        """After a lost subscription, offer each local stream what its user missed there."""
        broadcast = await part.history(BROADCAST_KEY)
        for user_id in self._users_of(part):
            personal = await part.history(archive_key(user_id))
            items = sorted([*personal, *broadcast], key=lambda s: s.seq)
            async with self.hub.lock:
                for stored in items:
                    self.hub.to_user_locked(user_id, stored.outgoing())

    async def open_feed(self, channels: list[str]) -> PrivateFeed:
        feed = PrivateFeed(aioredis.Redis(connection_pool=self._feeds).pubsub())
        try:
            await feed.pubsub.subscribe(*channels)
        except BaseException:
            await feed.aclose()
            raise
        return feed


class PrivateFeed:
    """One client's own PubSub connection: the seed's old SSE design, kept for comparison."""

    def __init__(self, pubsub: aioredis.client.PubSub) -> None:
        self.pubsub = pubsub

    async def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        async for message in self.pubsub.listen():
            if message["type"] == "message":
                yield text(message["channel"]), message["data"]

    async def aclose(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await close_pubsub(self.pubsub)
