"""Logging for the server: tokens never reach a log line (docs/contract.md section 1).

uvicorn logs the path with its query string on every request and every WebSocket handshake;
the filter below rewrites the value of every token parameter in every record that reaches our
handlers (notify_contract.redaction). A parameter is matched by its decoded name, as Starlette
reads it: `?%74oken=JWT` is a token too, and was logged verbatim while the match was on the raw
text.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from notify_contract.redaction import REDACTED, redact

__all__ = ["REDACTED", "NoClientTraces", "RedactTokens", "log_config", "redact"]


class RedactTokens(logging.Filter):
    """Rewrites token values in the message and in its string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            args = record.args.items()
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in args}
        return True


class NoClientTraces(logging.Filter):
    """A client's bad bytes are the client's fault: log one line, not a stack trace.

    uvicorn logs an invalid UTF-8 text frame with its traceback; the stream is closed with 1007
    all the same.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], UnicodeDecodeError):
            record.exc_info = None
            record.exc_text = None
        return True


def log_config(level: str = "info", access_log: bool = True) -> dict[str, Any]:
    """uvicorn's logging config with the redacting filter on every handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": RedactTokens}, "no_client_traces": {"()": NoClientTraces}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact", "no_client_traces"]
    config["loggers"]["reference_server"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    config["loggers"]["uvicorn"]["level"] = level.upper()
    if not access_log:
        config["loggers"]["uvicorn.access"]["handlers"] = []
    return config
