"""Token parameters are found by their decoded names; nothing else is touched."""

from __future__ import annotations

import pytest

from notify_contract.redaction import REDACTED, redact


@pytest.mark.parametrize(
    "query",
    [
        "?%74oken=eyJ.a.b",  # the name percent-encoded: Starlette decodes it to `token`
        "?TOKEN=eyJ.a.b",
        "?t%6Fk%65n=eyJ.a.b",
        "?last_id=x&access%5Ftoken=eyJ.a.b",
        "?jwt=eyJ%2Ea%2Eb",  # the value encoded
        "?x=1;token=eyJ.a.b",
    ],
)
def test_a_token_parameter_is_found_by_its_decoded_name(query: str) -> None:
    out = redact(f'127.0.0.1 - "WebSocket /api/ws/notifications{query}" 403')
    assert "eyJ" not in out, out
    assert REDACTED in out


def test_other_parameters_are_left_as_they_are() -> None:
    line = "GET /api/notifications?after=1-2&tokens_seen=3&x=token HTTP/1.1"
    assert redact(line) == line
