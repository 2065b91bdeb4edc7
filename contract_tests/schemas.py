"""JSON Schema checks of server frames: one schema file per message type under `schemas/`."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from reference_server.protocol import FrameType

SERVER_TYPES = (
    FrameType.CONNECTED,
    FrameType.NOTIFICATION,
    FrameType.HEARTBEAT,
    FrameType.PROGRESS,
    FrameType.COMPLETED,
    FrameType.ERROR,
    FrameType.PONG,
    FrameType.RESYNC,
)
_OFFSET = re.compile(r"(Z|[+-]\d{2}:\d{2})$")


@cache
def validator(frame_type: str) -> Draft202012Validator | None:
    """The validator for `frame_type`, or None for a type the contract does not define."""
    if frame_type not in {t.value for t in SERVER_TYPES}:
        return None
    text = resources.files("contract_tests").joinpath(f"schemas/{frame_type}.json").read_text()
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def violations(frame: dict[str, Any]) -> list[str]:
    """What is wrong with a server frame by its schema; empty when it is valid."""
    kind = frame.get("type")
    check = validator(kind) if isinstance(kind, str) else None
    if check is None:
        return [f"unknown frame type {kind!r}"]
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(frame)'}: {err.message}"
        for err in sorted(check.iter_errors(frame), key=lambda e: list(e.absolute_path))
    ]


def has_utc_offset(timestamp: str) -> bool:
    """CONTRACT.md section 3: timestamps SHOULD carry `Z` or an offset."""
    return bool(_OFFSET.search(timestamp))
