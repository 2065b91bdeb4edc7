from __future__ import annotations

import logging

from reference_server.logs import RedactTokens, redact
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
