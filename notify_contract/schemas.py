"""Frame validation by the JSON Schemas of the AsyncAPI document: one source for every judge."""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Final

from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7

from notify_contract.document import asyncapi
from notify_contract.protocol import SERVER_FRAME_TYPES

DOCUMENT_URI: Final = "urn:notify-contract:asyncapi"
_OFFSET = re.compile(r"(Z|[+-]\d{2}:\d{2})$")


@cache
def _registry() -> Registry[Any]:
    registry: Registry[Any] = Registry().with_resource(
        DOCUMENT_URI, DRAFT7.create_resource(asyncapi())
    )
    return registry


def schema_pointer(frame_type: str) -> str:
    """Where the payload of a frame of this type is, by the message named after it."""
    return f"#/components/schemas/{frame_type}Frame"


@cache
def validator(frame_type: str) -> Draft7Validator | None:
    """The validator for a server frame of `frame_type`, or None for a type the contract does
    not define."""
    if frame_type not in {t.value for t in SERVER_FRAME_TYPES}:
        return None
    return Draft7Validator(
        {"$ref": DOCUMENT_URI + schema_pointer(frame_type)}, registry=_registry()
    )


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
    """Rule 3.4: timestamps SHOULD carry `Z` or an offset."""
    return bool(_OFFSET.search(timestamp))
