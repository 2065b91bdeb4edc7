"""Paths, query parameters, frame types and field names of the contract (docs/contract.md 1, 3)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

WS_NOTIFICATIONS_PATH: Final = "/api/ws/notifications"
WS_TASKS_PATH: Final = "/api/ws/tasks/{task_id}"
STATS_PATH: Final = "/api/ws/stats"
SSE_NOTIFICATIONS_PATH: Final = "/api/notifications/stream"
SSE_TASKS_PATH: Final = "/api/stream/tasks/{task_id}"
NOTIFICATIONS_PATH: Final = "/api/notifications"
TASKS_PATH: Final = "/api/tasks"
ARCHIVE_PATH: Final = NOTIFICATIONS_PATH  # GET with ?after=ID

# (method, path) of every endpoint, in the order of the table in docs/contract.md section 1.
ENDPOINTS: Final = (
    ("WS", WS_NOTIFICATIONS_PATH),
    ("WS", WS_TASKS_PATH),
    ("GET", STATS_PATH),
    ("GET", SSE_NOTIFICATIONS_PATH),
    ("GET", SSE_TASKS_PATH),
    ("POST", NOTIFICATIONS_PATH),
    ("POST", TASKS_PATH),
    ("GET", ARCHIVE_PATH),
)

TYPE: Final = "type"
DATA: Final = "data"
TOKEN_PARAM: Final = "token"
LAST_ID_PARAM: Final = "last_id"
AFTER_PARAM: Final = "after"
LAST_EVENT_ID_HEADER: Final = "Last-Event-ID"

# Rule 5.1's tolerance: from one heartbeat to the HEARTBEAT_SPAN-th after it takes HEARTBEAT_SPAN
# intervals within HEARTBEAT_TOLERANCE of that, plus HEARTBEAT_SLACK_S for the network. A span
# rather than single gaps, so a late beat that the next one makes up for is not held against a
# server, and a server 25% slow fails at any interval from 0.3 s up.
HEARTBEAT_SPAN: Final = 4
HEARTBEAT_TOLERANCE: Final = 0.10
HEARTBEAT_SLACK_S: Final = 0.1


class FrameType(StrEnum):
    """The `type` of a frame; also the SSE event names."""

    CONNECTED = "connected"
    NOTIFICATION = "notification"
    HEARTBEAT = "heartbeat"
    PROGRESS = "progress"
    COMPLETED = "completed"
    ERROR = "error"
    PONG = "pong"
    RESYNC = "resync"
    PING = "ping"  # client to server


SERVER_FRAME_TYPES: Final = tuple(t for t in FrameType if t is not FrameType.PING)


class NotificationKind(StrEnum):
    """The notification's own `type` field."""

    ANALYSIS = "analysis"
    ALERT = "alert"
    SYSTEM = "system"


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
ADMIN_ROLE: Final = "admin"
