"""Notification records, their ids, history replay and task events: pure functions, no I/O.

An id is `<epoch>-<seq>`: `seq` comes from one counter per deployment (memory or Redis), or per
partition of the Redis bus, so it orders the notifications a user's streams see, broadcasts
included; `epoch` names the counter, so an id from an earlier in-memory run, or from another
partition, is recognised as unknown instead of being compared. On partitions a broadcast has
one id for all of them, and each keeps it with its own seq.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reference_server.protocol import FrameType, Outgoing, utc_now

RESERVED_FIELDS = frozenset({"id", "created_at", "status"})


@dataclass(frozen=True, slots=True)
class Stored:
    """A published notification and its place in the sequence."""

    seq: int
    record: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.record["id"])

    def outgoing(self) -> Outgoing:
        """The `notification` frame of this record, for every stream it goes to."""
        return Outgoing(FrameType.NOTIFICATION, self.record, seq=self.seq, event_id=self.id)


def make_id(epoch: str, seq: int) -> str:
    return f"{epoch}-{seq}"


def parse_id(epoch: str, notification_id: str) -> int | None:
    """The sequence number of an id from this epoch, else None."""
    head, sep, tail = notification_id.rpartition("-")
    if not sep or head != epoch or not tail.isdigit():
        return None
    return int(tail)


def record_body(fields: dict[str, Any]) -> dict[str, Any]:
    """The notification without its id: server fields plus the publisher's fields unchanged."""
    return {**fields, "created_at": utc_now(), "status": "unread"}


def with_id(epoch: str, seq: int, body: dict[str, Any]) -> Stored:
    return Stored(seq, {"id": make_id(epoch, seq), **body})


def stored_from_json(epoch: str, text: str | bytes) -> Stored | None:
    """A record as kept and published: its JSON, whose id carries its seq in `epoch`, or
    `<seq>|<JSON>` for a record whose id is given (a broadcast on partitions)."""
    raw = text.decode() if isinstance(text, bytes) else text
    given: int | None = None
    if not raw.startswith("{"):
        head, sep, raw = raw.partition("|")
        if not sep or not head.isdigit():
            return None
        given = int(head)
    record = json.loads(raw)
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        return None
    seq = given if given is not None else parse_id(epoch, record["id"])
    return None if seq is None else Stored(seq, record)


def select_replay(
    personal: list[Stored], broadcast: list[Stored], last_id: str, size: int
) -> list[Stored] | None:
    """What a stream resuming after `last_id` must get first, or None when it must resync.

    The history a user resumes from is the newest `size` of their own and broadcast
    notifications. Replay is complete only when `last_id` is still in it: then everything newer
    is in it too.
    """
    merged = sorted([*personal, *broadcast], key=lambda s: s.seq)[-size:]
    for i, stored in enumerate(merged):
        if stored.id == last_id:
            return merged[i + 1 :]
    return None


def select_after(
    personal: list[Stored], broadcast: list[Stored], epoch: str, after_id: str | None
) -> list[dict[str, Any]]:
    """The archive after `after_id`, oldest first; all of it when the id is unknown. An id
    that does not carry its seq (a broadcast on partitions) is placed by finding it."""
    merged = sorted([*personal, *broadcast], key=lambda s: s.seq)
    floor = parse_id(epoch, after_id) if after_id else None
    if after_id and floor is None:
        floor = next((s.seq for s in merged if s.id == after_id), None)
    return [s.record for s in merged if floor is None or s.seq > floor]


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One step of a task stream; `step` orders the stream."""

    frame_type: FrameType
    data: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.data.get("step", 0))

    @property
    def terminal(self) -> bool:
        return self.frame_type in (FrameType.COMPLETED, FrameType.ERROR)

    def outgoing(self) -> Outgoing:
        """The frame of this step, for every stream of the task."""
        return Outgoing(self.frame_type, self.data, seq=self.step, terminal=self.terminal)

    def to_json(self) -> str:
        return json.dumps({"type": self.frame_type.value, "data": self.data})

    @classmethod
    def from_json(cls, text: str | bytes) -> TaskEvent:
        obj = json.loads(text)
        return cls(FrameType(obj["type"]), obj["data"])


def task_step(task_id: str, step: int, total: int, message: str) -> TaskEvent:
    kind = FrameType.COMPLETED if step == total else FrameType.PROGRESS
    return TaskEvent(
        kind,
        {
            "task_id": task_id,
            "message": message,
            "step": step,
            "total_steps": total,
            "progress": 100.0 * step / total,
            "timestamp": utc_now(),
        },
    )


def task_failed(task_id: str, step: int, total: int, message: str) -> TaskEvent:
    return TaskEvent(
        FrameType.ERROR,
        {
            "task_id": task_id,
            "message": message,
            "step": step,
            "total_steps": total,
            "timestamp": utc_now(),
        },
    )
