"""The Redis bus: one subscription per process, history and presence shared by all instances.

Publishing runs one Lua script (next sequence number, archive, PUBLISH) so that the order on the
channel is the order of the ids, whichever instance published; every instance, the publisher
included, delivers from its single subscription, so a notification reaches each stream once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from reference_server.bus import TaskInfo
from reference_server.hub import Hub
from reference_server.records import (
    Stored,
    TaskEvent,
    parse_id,
    record_body,
    select_after,
    select_replay,
    stored_from_json,
)

log = logging.getLogger("reference_server.redis")


def close_pubsub(pubsub: aioredis.client.PubSub) -> Awaitable[None]:
    """`PubSub.aclose()`, which redis-py types in some releases and not in others (8.1 left it
    untyped, 8.2 typed it): one call that type-checks against both."""
    aclose: Callable[[], Awaitable[None]] = pubsub.aclose
    return aclose()


EPOCH_KEY = "notify:epoch"
SEQ_KEY = "notify:seq"
BROADCAST_KEY = "notify:broadcast"
INSTANCES_KEY = "presence:instances"
BROADCAST_CHANNEL = "broadcast:notifications"
USER_PATTERN = "notifications:*"
TASK_PATTERN = "task_progress:*"
TASK_TTL = 3600
SEQ_JUMP = 100_000  # see PUBLISH_LUA
# A lost subscription is retried at least once a second: cheap, and delivery resumes about a
# second after Redis does (with a 5 s cap, one restart took 2.3 s before the first delivery).
RESUBSCRIBE_MAX_DELAY = 1.0
BUS_CLIENT = "notify-bus"  # Redis client names, followed by the server's pid
FEED_CLIENT = "notify-sse"


def user_channel(user_id: str) -> str:
    return f"notifications:{user_id}"


def task_channel(task_id: str) -> str:
    return f"task_progress:{task_id}"


def archive_key(user_id: str) -> str:
    return f"notify:archive:{user_id}"


def presence_key(instance: str) -> str:
    return f"presence:{instance}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# ARGV: record body (JSON object without id), channel, archive size, epoch, highest seq seen,
# the jump after an empty restart. A Redis that restarted empty gets the epoch back and a
# sequence that never goes backwards: it jumps past the highest this instance saw by SEQ_JUMP,
# because another instance may have published ids this one never saw (their PUBLISH died with
# Redis), and an id must never be given twice.
PUBLISH_LUA = """
local epoch = redis.call('GET', KEYS[2])
local floor = tonumber(ARGV[5])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[2], epoch)
  floor = floor + tonumber(ARGV[6])
end
local seq = redis.call('INCR', KEYS[1])
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[1], seq)
end
local rec = '{"id":"' .. epoch .. '-' .. seq .. '",' .. string.sub(ARGV[1], 2)
redis.call('RPUSH', KEYS[3], rec)
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[3]), -1)
redis.call('PUBLISH', ARGV[2], rec)
return rec
"""

TASK_EVENT_LUA = """
redis.call('HSET', KEYS[1], 'latest', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[2], ARGV[1])
"""

ACQUIRE_LUA = """
local total = 0
for _, inst in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local n = redis.call('HGET', 'presence:' .. inst, ARGV[1])
  if n then total = total + tonumber(n) end
end
if total >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""

RELEASE_LUA = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2]))
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return n
"""
RELEASE_RETRY_MAX: Final = 5.0  # seconds between attempts at most, while Redis is unreachable


class RedisBus:
    """Shared state in Redis; local delivery from one PubSub connection per process."""

    def __init__(
        self,
        hub: Hub,
        url: str,
        *,
        history_size: int,
        archive_size: int,
        max_connections: int,
        presence_ttl: float,
    ) -> None:
        self.hub = hub
        self.url = url
        self.epoch = ""
        self.instance = secrets.token_hex(6)
        self._max_seq = 0  # highest sequence number seen, kept across a Redis restart
        self._history_size = history_size
        self._archive_size = archive_size
        self._ttl = max(1, round(presence_ttl))
        # Named per process, so `CLIENT LIST` tells the bus (one subscription) from SSE feeds.
        pid = os.getpid()
        # A blocking pool: a burst of connects or closes waits for a connection instead of
        # failing with "too many connections" (10k streams closing at once release 10k slots).
        self._redis = aioredis.Redis(
            connection_pool=aioredis.BlockingConnectionPool.from_url(
                url, max_connections=64, timeout=30, client_name=f"{BUS_CLIENT}-{pid}"
            )
        )
        # The legacy per-connection SSE mode holds one PubSub connection per client: its own pool.
        self._feeds = aioredis.ConnectionPool.from_url(
            url, max_connections=max_connections, client_name=f"{FEED_CLIENT}-{pid}"
        )
        self._publish = self._redis.register_script(PUBLISH_LUA)
        self._task_event = self._redis.register_script(TASK_EVENT_LUA)
        self._acquire = self._redis.register_script(ACQUIRE_LUA)
        self._release = self._redis.register_script(RELEASE_LUA)
        self._subscribed = asyncio.Event()
        self._jobs: list[asyncio.Task[None]] = []
        # Slots of closed streams not yet released in Redis, per user; one job releases them.
        self._unreleased: Counter[str] = Counter()
        self._releasing: asyncio.Task[None] | None = None

    @property
    def subscribed(self) -> asyncio.Event:
        """Set while the subscription is live (tests and start-up wait on it)."""
        return self._subscribed

    async def start(self) -> None:
        await self._redis.set(EPOCH_KEY, secrets.token_hex(4), nx=True)
        epoch = await self._redis.get(EPOCH_KEY)
        if epoch is None:
            raise RuntimeError(f"redis lost {EPOCH_KEY} right after setting it")
        self.epoch = _text(epoch)
        await self._redis.sadd(INSTANCES_KEY, self.instance)
        self._jobs = [
            asyncio.create_task(self._listen(), name="redis-subscriber"),
            asyncio.create_task(self._keep_presence(), name="redis-presence"),
        ]
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)

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
        await self._redis.aclose(close_connection_pool=True)
        await self._feeds.aclose()

    # -- notifications --------------------------------------------------------------------

    async def publish(self, user_id: str | None, fields: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(record_body(fields), separators=(",", ":"))
        if user_id is None:
            keys, channel = [SEQ_KEY, EPOCH_KEY, BROADCAST_KEY], BROADCAST_CHANNEL
        else:
            keys, channel = [SEQ_KEY, EPOCH_KEY, archive_key(user_id)], user_channel(user_id)
        args: list[str | int] = [
            body,
            channel,
            self._archive_size,
            self.epoch,
            self._max_seq,
            SEQ_JUMP,
        ]
        rec = await self._publish(keys=keys, args=args)
        record: dict[str, Any] = json.loads(rec)
        self._see(record)
        return record

    def _see(self, record: dict[str, Any]) -> None:
        seq = parse_id(self.epoch, str(record.get("id", "")))
        if seq is not None and seq > self._max_seq:
            self._max_seq = seq

    async def _stored(self, key: str) -> list[Stored]:
        raw = await self._redis.lrange(key, 0, -1)
        return [s for s in (stored_from_json(self.epoch, r) for r in raw) if s is not None]

    async def resume(self, user_id: str, last_id: str) -> list[Stored] | None:
        personal = await self._stored(archive_key(user_id))
        broadcast = await self._stored(BROADCAST_KEY)
        return select_replay(personal, broadcast, last_id, self._history_size)

    async def archive(self, user_id: str, after_id: str | None) -> list[dict[str, Any]]:
        personal = await self._stored(archive_key(user_id))
        broadcast = await self._stored(BROADCAST_KEY)
        return select_after(personal, broadcast, self.epoch, after_id)

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
        return TaskInfo(_text(raw[b"owner"]), event)

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
            counts = await self._redis.hgetall(presence_key(_text(raw)))
            for user, n in counts.items():
                totals[_text(user)] = totals.get(_text(user), 0) + int(n)
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

    # -- the one subscription -------------------------------------------------------------

    async def _listen(self) -> None:
        delay, lost = 0.1, False
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(USER_PATTERN, TASK_PATTERN)
                await pubsub.subscribe(BROADCAST_CHANNEL)
                if lost:  # deliver what was published while the subscription was down
                    await self._catch_up()
                self._subscribed.set()
                delay, lost = 0.1, False
                async for message in pubsub.listen():
                    await self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                lost = True
                log.warning("redis subscription lost (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESUBSCRIBE_MAX_DELAY)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await close_pubsub(pubsub)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind not in ("message", "pmessage"):
            return
        channel = _text(message["channel"])
        data = message["data"]
        if channel == BROADCAST_CHANNEL:
            stored = stored_from_json(self.epoch, data)
            if stored is not None:
                self._see(stored.record)
                await self.hub.to_everyone(stored.outgoing())
        elif channel.startswith("notifications:"):
            stored = stored_from_json(self.epoch, data)
            if stored is not None:
                self._see(stored.record)
                user_id = channel.removeprefix("notifications:")
                await self.hub.to_user(user_id, stored.outgoing())
        elif channel.startswith("task_progress:"):
            event = TaskEvent.from_json(data)
            await self.hub.to_task(channel.removeprefix("task_progress:"), event.outgoing())

    async def _catch_up(self) -> None:
        """After a lost subscription, offer each local stream what its user missed."""
        broadcast = await self._stored(BROADCAST_KEY)
        for user_id in self.hub.users():
            personal = await self._stored(archive_key(user_id))
            items = sorted([*personal, *broadcast], key=lambda s: s.seq)
            async with self.hub.lock:
                for stored in items:
                    self.hub.to_user_locked(user_id, stored.outgoing())

    async def current_seq(self) -> int:
        return max(int(await self._redis.get(SEQ_KEY) or 0), self._max_seq)

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
                yield _text(message["channel"]), message["data"]

    async def aclose(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await close_pubsub(self.pubsub)
