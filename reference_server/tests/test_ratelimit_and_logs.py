from __future__ import annotations

import logging
import sys

from reference_server.logs import NoClientTraces, RedactTokens, redact
from reference_server.ratelimit import FrameRate


def test_rate_allows_exactly_rate_frames_per_second() -> None:
    rate = FrameRate(3)
    assert [rate.allow(t) for t in (0.0, 0.1, 0.2)] == [True, True, True]
    assert rate.allow(0.9) is False
    assert rate.allow(1.05) is True  # the frame at 0.0 left the window


def test_rate_is_a_sliding_window() -> None:
    rate = FrameRate(2)
    assert rate.allow(0.0) and rate.allow(0.95)
    assert not rate.allow(0.99)
    assert rate.allow(1.01)
    assert not rate.allow(1.5)


def test_redact_query_and_bearer() -> None:
    line = "GET /api/ws/notifications?token=eyJ.a.b&last_id=x HTTP/1.1 Authorization: Bearer eyJ.c"
    out = redact(line)
    assert "eyJ" not in out
    assert "last_id=x" in out and "token=[redacted]" in out


def test_filter_rewrites_record_arguments() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s"',
        ("127.0.0.1", "GET", "/s?token=secret.jwt"),
        None,
    )
    RedactTokens().filter(record)
    assert "secret.jwt" not in record.getMessage()


def test_a_client_decoding_error_is_logged_without_its_traceback() -> None:
    try:
        b"\xff".decode()
    except UnicodeDecodeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "uvicorn.error", logging.ERROR, __file__, 1, "Invalid UTF-8", None, exc_info
    )
    assert NoClientTraces().filter(record)
    assert "Traceback" not in logging.Formatter().format(record)
    try:
        raise KeyError("a server bug")
    except KeyError:
        record.exc_info = sys.exc_info()
    NoClientTraces().filter(record)
    assert "Traceback" in logging.Formatter().format(record)  # real bugs keep their trace
