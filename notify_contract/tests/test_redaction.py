"""Token parameters are found by their decoded names; nothing else is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from notify_contract.redaction import REDACTED, leaks, redact, scrub


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


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    "line",
    [
        f"connect failed: ws://h/api/ws/notifications?x={JWT} 1006",  # not named token
        f"url quoted: {JWT.replace('.', '%2E')}",
        f'{{"auth": "{JWT}"}}',
    ],
)
def test_scrub_takes_a_jwt_wherever_it_stands(line: str) -> None:
    assert "eyJ" not in scrub(line)


def test_leaks_names_each_file_with_a_token(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "clean.json").write_text('{"url": "?token=[redacted]"}')
    (tmp_path / "logs" / "server.log").write_text(f"GET /?t={JWT.replace('.', '%2e')}\n")
    (tmp_path / "report.html").write_text(f"<td>{JWT}</td>")
    (tmp_path / "shot.png").write_bytes(JWT.encode())  # images are not text
    assert leaks(tmp_path) == ["logs/server.log", "report.html"]
    for name in ("logs/server.log", "report.html"):
        path = tmp_path / name
        path.write_text(scrub(path.read_text()))
    assert leaks(tmp_path) == []
