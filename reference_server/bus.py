"""Where notifications and task events go once published: the in-process bus.

`Bus` is what the web layer talks to; `MemoryBus` serves one process with no Redis (the embedded
default) and `redis_bus.RedisBus` serves any number of instances sharing one Redis, or several.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Protocol

from reference_server.hub import Hub
from reference_server.records import (
    Stored,
    TaskEvent,
    record_body,
    select_after,
    select_replay,
    with_id,
)

MAX_TASKS = 10_000


@dataclass(slots=True)
class TaskInfo:
    owner: str
    latest: TaskEvent | None


class Bus(Protocol):
    """Publishing, history and presence, local or shared between instances."""

    hub: Hub

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def publish(self, user_id: str | None, fields: dict[str, Any]) -> dict[str, Any]:
        """Store and deliver one notification (user_id None: broadcast); return the record."""

    async def resume(self, user_id: str, last_id: str) -> list[Stored] | None:
        """History after `last_id` (docs/contract.md section 5), or None to resync."""

    async def archive(self, user_id: str, after_id: str | None) -> list[dict[str, Any]]: ...

    async def task_create(self, task_id: str, owner: str) -> None: ...
    async def task_info(self, task_id: str) -> TaskInfo | None: ...
    async def task_event(self, task_id: str, event: TaskEvent) -> None: ...

    async def acquire_slot(self, user_id: str) -> bool:
        """Reserve one of the user's notification connections, across instances."""

    def release_slot(self, user_id: str) -> None:
        """Give the slot back (the hub calls this when a counted stream leaves)."""

    async def stats(self) -> dict[str, Any]: ...

    async def current_seq(self, user_id: str | None = None) -> int:
        """The newest sequence number `user_id`'s streams are ordered by (on partitions, their
        partition's): a fresh stream has seen everything up to it."""


class MemoryBus:
    """One process, no Redis: history and delivery in memory."""

    def __init__(self, hub: Hub, history_size: int, archive_size: int) -> None:
        self.hub = hub
        self.epoch = secrets.token_hex(4)
        self._seq = 0
        self._history_size = history_size
        self._archive_size = archive_size
        self._personal: dict[str, deque[Stored]] = {}
        self._broadcast: deque[Stored] = deque(maxlen=archive_size)
        self._tasks: OrderedDict[str, TaskInfo] = OrderedDict()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, user_id: str | None, fields: dict[str, Any]) -> dict[str, Any]:
        body = record_body(fields)
        async with self.hub.lock:
            self._seq += 1
            stored = with_id(self.epoch, self._seq, body)
            item = stored.outgoing()
            if user_id is None:
                self._broadcast.append(stored)
                await self.hub.to_everyone_locked(item)
            else:
                box = self._personal.get(user_id)
                if box is None:
                    box = self._personal[user_id] = deque(maxlen=self._archive_size)
                box.append(stored)
                self.hub.to_user_locked(user_id, item)
        return stored.record

    async def resume(self, user_id: str, last_id: str) -> list[Stored] | None:
        personal = list(self._personal.get(user_id, ()))
        return select_replay(personal, list(self._broadcast), last_id, self._history_size)

    async def archive(self, user_id: str, after_id: str | None) -> list[dict[str, Any]]:
        personal = list(self._personal.get(user_id, ()))
        return select_after(personal, list(self._broadcast), self.epoch, after_id)

    async def task_create(self, task_id: str, owner: str) -> None:
        self._tasks[task_id] = TaskInfo(owner, None)
        while len(self._tasks) > MAX_TASKS:
            self._tasks.popitem(last=False)

    async def task_info(self, task_id: str) -> TaskInfo | None:
        return self._tasks.get(task_id)

    async def task_event(self, task_id: str, event: TaskEvent) -> None:
        info = self._tasks.get(task_id)
        if info is not None:
            info.latest = event
        await self.hub.to_task(task_id, event.outgoing())

    async def acquire_slot(self, user_id: str) -> bool:
        return True  # the hub enforces the limit in this process

    def release_slot(self, user_id: str) -> None:
        return None

    async def stats(self) -> dict[str, Any]:
        return self.hub.stats()

    async def current_seq(self, user_id: str | None = None) -> int:
        return self._seq
