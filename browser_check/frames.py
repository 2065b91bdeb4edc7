"""Frames the scripted server sends, as the contract shapes them (a test validates each against
the AsyncAPI schemas)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from notify_contract.protocol import STATUS_UNREAD, FrameType


def _now() -> str:
    return datetime.now(UTC).isoformat()


def frame(kind: FrameType, data: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"type": kind.value}
    if data is not None:
        body["data"] = data
    return json.dumps(body)


def connected(user: str) -> str:
    return frame(FrameType.CONNECTED, {"user_id": user, "timestamp": _now()})


def notification_data(item_id: str, title: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "title": title,
        "content": "sent by the client check",  # never repeats the title: titles are counted
        "type": "system",
        "link": "",
        "source": "client-check",
        "created_at": _now(),
        "status": STATUS_UNREAD,
    }


def notification(item_id: str, title: str) -> str:
    return frame(FrameType.NOTIFICATION, notification_data(item_id, title))


def heartbeat() -> str:
    return frame(FrameType.HEARTBEAT, {"timestamp": _now()})


def resync(last_id: str) -> str:
    return frame(FrameType.RESYNC, {"last_id": last_id})
