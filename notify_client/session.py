"""One notification stream's client state, without I/O (docs/contract.md section 7).

Every client that keeps a stream alive (the fault fleet, the load users, a test) feeds this the
socket's events and does what it answers: where to resume from, when to fetch the archive,
whether a notification is new or shown before, whether the stream is dead, and when to try
again after a close. The socket, the archive request and the sleeping stay with the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from notify_contract.protocol import FrameType
from notify_contract.reconnect import WATCHDOG_BEATS, ReconnectPolicy


class Fetch(Enum):
    """Fetch the archive after `session.last_id` and hand the items to `archived`."""

    ARCHIVE = "archive"


@dataclass(frozen=True, slots=True)
class Delivery:
    """A notification frame: its id, and whether this client had shown it already."""

    id: str
    data: Mapping[str, Any]
    repeat: bool


Step = Delivery | Fetch | None


@dataclass
class StreamSession:
    """The state one client keeps across the sockets it opens for one stream."""

    policy: ReconnectPolicy = field(default_factory=lambda: ReconnectPolicy(jitter=True))
    heartbeat_interval: float | None = None  # None: no watchdog
    clock: Callable[[], float] = time.monotonic
    last_id: str | None = None  # the newest notification shown: `last_id` on the next connect
    shown: set[str] = field(default_factory=set)
    connects: int = 0  # `connected` frames seen, one per socket that got that far
    heartbeats: int = 0
    resyncs: int = 0
    up: bool = False  # between a `connected` frame and the close
    last_frame_at: float | None = None
    # The user this client connected as; a `connected` frame that names anyone else is
    # misrouting (the server took the stream for another user's), kept in `misnamed`.
    user: str | None = None
    misnamed: str | None = None

    def opened(self) -> None:
        """The socket opened. Nothing resets here: 4401 and 4429 come after the open (7.1)."""
        self.last_frame_at = self.clock()

    def received(self, kind: str, data: Mapping[str, Any], event_id: str | None = None) -> Step:
        """A frame (or SSE event) arrived; what the client must do with it."""
        self.last_frame_at = self.clock()
        if kind == FrameType.CONNECTED:
            named = data.get("user_id")
            if self.user is not None and named != self.user:
                self.misnamed = repr(named)
            self.connects += 1
            self.up = True
            self.policy.connected()
            # A reconnect with no id to resume from catches up from the archive: what was
            # published before `connected` is there, what comes after arrives live.
            return Fetch.ARCHIVE if self.connects > 1 and self.last_id is None else None
        if kind == FrameType.NOTIFICATION:
            nid = event_id or data.get("id")
            if not isinstance(nid, str) or not nid:
                return None
            return self._show(nid, data)
        if kind == FrameType.HEARTBEAT:
            self.heartbeats += 1
        elif kind == FrameType.RESYNC:
            self.resyncs += 1
            return Fetch.ARCHIVE
        return None

    def archived(self, items: Iterable[Mapping[str, Any]]) -> list[Delivery]:
        """The archive's items after `last_id`, oldest first: each as a delivery (7.5)."""
        return [self._show(str(item["id"]), item) for item in items if item.get("id")]

    def _show(self, nid: str, data: Mapping[str, Any]) -> Delivery:
        repeat = nid in self.shown
        self.shown.add(nid)
        self.last_id = nid
        return Delivery(nid, data, repeat)

    def dead(self) -> bool:
        """No frame for WATCHDOG_BEATS heartbeat intervals (rule 7.6)."""
        if self.heartbeat_interval is None or self.last_frame_at is None:
            return False
        return self.clock() - self.last_frame_at > WATCHDOG_BEATS * self.heartbeat_interval

    def silence_left(self) -> float | None:
        """Seconds until the watchdog calls the stream dead (None: no watchdog)."""
        if self.heartbeat_interval is None:
            return None
        since = self.clock() - (self.last_frame_at or self.clock())
        return max(0.0, WATCHDOG_BEATS * self.heartbeat_interval - since)

    def closed(self, code: int | None) -> float | None:
        """The stream ended with `code` (None: no close frame, or the watchdog): the clock time
        of the next attempt, or None to give up (docs/contract.md 7)."""
        self.up = False
        return self.policy.next_attempt(code)
