"""The AsyncAPI 3.0 document shipped in this package, loaded once."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml

DOCUMENT_NAME = "asyncapi.yaml"


def document_text() -> str:
    return resources.files("notify_contract").joinpath(DOCUMENT_NAME).read_text(encoding="utf-8")


@cache
def asyncapi() -> dict[str, Any]:
    """The parsed document (do not modify it: it is shared)."""
    doc: dict[str, Any] = yaml.safe_load(document_text())
    return doc
