"""The wire protocol of CONTRACT.md as data: frame types, close codes, field names, builders.

No I/O here. The server, the protocol client and the tests all take their constants from this
module, so a code or a name is spelled once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any, Final

# Paths (CONTRACT.md section 1).
WS_NOTIFICATIONS_PATH: Final = "/api/ws/notifications"
WS_TASKS_PATH: Final = "/api/ws/tasks/{task_id}"
STATS_PATH: Final = "/api/ws/stats"
METRICS_PATH: Final = "/api/ws/metrics"  # this server's own: per-process figures for load runs
SSE_NOTIFICATIONS_PATH: Final = "/api/notifications/stream"
SSE_TASKS_PATH: Final = "/api/stream/tasks/{task_id}"
NOTIFICATIONS_PATH: Final = "/api/notifications"
TASKS_PATH: Final = "/api/tasks"

# Field names.
TYPE: Final = "type"
DATA: Final = "data"
TOKEN_PARAM: Final = "token"
LAST_ID_PARAM: Final = "last_id"


class FrameType(StrEnum):
    """The `type` of a frame (CONTRACT.md sections 3 and 4); also the SSE event names."""

    CONNECTED = "connected"
    NOTIFICATION = "notification"
    HEARTBEAT = "heartbeat"
    PROGRESS = "progress"
    COMPLETED = "completed"
    ERROR = "error"
    PONG = "pong"
    RESYNC = "resync"
    PING = "ping"  # client to server


class CloseCode(IntEnum):
    """WebSocket close codes (CONTRACT.md section 6)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    ABNORMAL = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    SLOW_CONSUMER = 4408
    TOO_MANY_CONNECTIONS = 4429


class NotificationKind(StrEnum):
    """The notification's own `type` field."""

    ANALYSIS = "analysis"
    ALERT = "alert"
    SYSTEM = "system"


class ErrorCode(StrEnum):
    """`code` of an error frame sent for a bad client frame."""

    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"


NOTIFICATION_FIELDS: Final = (
    "id",
    "title",
    "content",
    "type",
    "link",
    "source",
    "created_at",
    "status",
)
STATUS_UNREAD: Final = "unread"


def utc_now() -> str:
    """An ISO 8601 timestamp with a UTC offset."""
    return datetime.now(UTC).isoformat()


def encode(frame_type: FrameType, data: dict[str, Any]) -> str:
    """One server frame as JSON text."""
    return json.dumps({TYPE: frame_type.value, DATA: data}, separators=(",", ":"))


@dataclass(slots=True)
class Outgoing:
    """One server event for one or many streams; each wire form is rendered once, on first use."""

    frame_type: FrameType
    data: dict[str, Any]
    seq: int = 0  # ordering key for de-duplication: notification sequence or task step
    event_id: str | None = None  # SSE `id:`
    terminal: bool = False  # a task stream closes with 1000 after it
    _ws: str | None = field(default=None, repr=False)
    _sse: str | None = field(default=None, repr=False)

    def ws_text(self) -> str:
        if self._ws is None:
            self._ws = encode(self.frame_type, self.data)
        return self._ws

    def sse_text(self) -> str:
        if self._sse is None:
            self._sse = sse_event(self.frame_type, self.data, self.event_id)
        return self._sse


def connected(user_id: str, task_id: str | None = None) -> Outgoing:
    data: dict[str, Any] = {"user_id": user_id, "timestamp": utc_now()}
    if task_id is not None:
        data["task_id"] = task_id
    return Outgoing(FrameType.CONNECTED, data)


def heartbeat() -> Outgoing:
    return Outgoing(FrameType.HEARTBEAT, {"timestamp": utc_now()})


def resync(last_id: str) -> Outgoing:
    return Outgoing(FrameType.RESYNC, {"last_id": last_id, "timestamp": utc_now()})


def pong() -> str:
    return encode(FrameType.PONG, {"timestamp": utc_now()})


def error(code: ErrorCode, message: str) -> str:
    return encode(FrameType.ERROR, {"code": code.value, "message": message})


@dataclass(frozen=True, slots=True)
class ClientFrame:
    """A parsed client frame: either a known request or the error frame to answer with."""

    type: FrameType | None
    reply_error: str | None = None


def parse_client_text(text: str) -> ClientFrame:
    """Classify a client text frame (CONTRACT.md section 4)."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        return ClientFrame(None, error(ErrorCode.BAD_JSON, "frame is not valid JSON"))
    kind = obj.get(TYPE) if isinstance(obj, dict) else None
    if kind == FrameType.PING.value:
        return ClientFrame(FrameType.PING)
    shown = kind if isinstance(kind, str) and len(kind) <= 64 else None
    what = f"unknown frame type {shown!r}" if shown is not None else "frame has no known type"
    return ClientFrame(None, error(ErrorCode.UNKNOWN_TYPE, what))


def sse_event(frame_type: FrameType, data: dict[str, Any], event_id: str | None = None) -> str:
    """One legacy SSE event (CONTRACT.md section 9): `event:`, optional `id:`, one `data:` line."""
    head = f"event: {frame_type.value}\n"
    if event_id is not None:
        head += f"id: {event_id}\n"
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n"
