"""The server's side of the wire protocol: frame and SSE encoders, its error codes, builders.

The contract's own facts (paths, frame types, close codes, field names) come from
`notify_contract`, the package every judge of this server reads too; they are re-exported here
for the server's modules. No I/O here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from websockets.frames import Frame, Opcode

from notify_contract.codes import (
    WS_4401_UNAUTHORIZED,
    WS_4403_FORBIDDEN,
    WS_4404_NOT_FOUND,
    WS_4408_SLOW_CONSUMER,
    WS_4429_TOO_MANY_CONNECTIONS,
    CloseCode,
)
from notify_contract.protocol import (
    DATA,
    LAST_ID_PARAM,
    NOTIFICATION_FIELDS,
    NOTIFICATIONS_PATH,
    SSE_NOTIFICATIONS_PATH,
    SSE_TASKS_PATH,
    STATS_PATH,
    STATUS_UNREAD,
    TASKS_PATH,
    TOKEN_PARAM,
    TYPE,
    WS_NOTIFICATIONS_PATH,
    WS_TASKS_PATH,
    FrameType,
    NotificationKind,
)

__all__ = [
    "DATA",
    "LAST_ID_PARAM",
    "METRICS_PATH",
    "NOTIFICATIONS_PATH",
    "NOTIFICATION_FIELDS",
    "SSE_NOTIFICATIONS_PATH",
    "SSE_TASKS_PATH",
    "STATS_PATH",
    "STATUS_UNREAD",
    "TASKS_PATH",
    "TOKEN_PARAM",
    "TYPE",
    "WS_4401_UNAUTHORIZED",
    "WS_4403_FORBIDDEN",
    "WS_4404_NOT_FOUND",
    "WS_4408_SLOW_CONSUMER",
    "WS_4429_TOO_MANY_CONNECTIONS",
    "WS_NOTIFICATIONS_PATH",
    "WS_TASKS_PATH",
    "CloseCode",
    "FrameType",
    "NotificationKind",
]

METRICS_PATH: Final = "/api/ws/metrics"  # this server's own: per-process figures for load runs


class ErrorCode(StrEnum):
    """`code` of an error frame sent for a bad client frame."""

    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"


def utc_now() -> str:
    """An ISO 8601 timestamp with a UTC offset."""
    return datetime.now(UTC).isoformat()


# The ASGI scope extension by which the server's uvicorn protocol (guard.py) offers a stream's
# frame writer: `scope["extensions"][PREPARED_FRAMES]["write"]`, absent under compression.
PREPARED_FRAMES: Final = "notify.prepared_frames"


def text_frame(text: str) -> bytes:
    """A server's text frame, header included, by websockets' own serializer."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])


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
    _frame: bytes | None = field(default=None, repr=False)

    def ws_text(self) -> str:
        if self._ws is None:
            self._ws = encode(self.frame_type, self.data)
        return self._ws

    def ws_frame(self) -> bytes:
        """The whole server frame on the wire (text, unmasked, uncompressed): the same bytes for
        every stream without compression, so a fan-out frames it once."""
        if self._frame is None:
            self._frame = text_frame(self.ws_text())
        return self._frame

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
    """Classify a client text frame (docs/contract.md section 4)."""
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
    """One legacy SSE event (rule 9.2): `event:`, optional `id:`, one `data:` line."""
    head = f"event: {frame_type.value}\n"
    if event_id is not None:
        head += f"id: {event_id}\n"
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n"
