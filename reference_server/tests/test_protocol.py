from __future__ import annotations

import json

import pytest

from notify_client.client import ProtocolViolation, parse_frame, stream_url
from reference_server.protocol import (
    ErrorCode,
    FrameType,
    Outgoing,
    connected,
    encode,
    parse_client_text,
    sse_event,
)


def test_encode_is_type_and_data() -> None:
    assert json.loads(encode(FrameType.PONG, {"timestamp": "t"})) == {
        "type": "pong",
        "data": {"timestamp": "t"},
    }


def test_connected_carries_user_task_and_an_offset_timestamp() -> None:
    data = json.loads(connected("bob", "t1").ws_text())["data"]
    assert data["user_id"] == "bob" and data["task_id"] == "t1"
    assert data["timestamp"].endswith("+00:00")
    assert "task_id" not in connected("bob").data


@pytest.mark.parametrize(
    ("text", "kind", "code"),
    [
        ('{"type": "ping"}', FrameType.PING, None),
        ("{not json", None, ErrorCode.BAD_JSON),
        ('{"type": "subscribe"}', None, ErrorCode.UNKNOWN_TYPE),
        ("[1, 2]", None, ErrorCode.UNKNOWN_TYPE),
        ('"ping"', None, ErrorCode.UNKNOWN_TYPE),
        ('{"type": 7}', None, ErrorCode.UNKNOWN_TYPE),
        ("[" * 60000, None, ErrorCode.BAD_JSON),  # json raises RecursionError, not ValueError
        ('{"type": "ping", "n": ' + "9" * 5000 + "}", None, ErrorCode.BAD_JSON),
    ],
)
def test_client_frames_are_classified(
    text: str, kind: FrameType | None, code: ErrorCode | None
) -> None:
    frame = parse_client_text(text)
    assert frame.type == kind
    if code is None:
        assert frame.reply_error is None
    else:
        assert frame.reply_error is not None
        reply = json.loads(frame.reply_error)
        assert reply["type"] == "error" and reply["data"]["code"] == code.value


def test_sse_event_is_one_event_with_id() -> None:
    text = sse_event(FrameType.NOTIFICATION, {"title": "a\nb"}, "e-1")
    assert text == 'event: notification\nid: e-1\ndata: {"title":"a\\nb"}\n\n'


def test_outgoing_renders_each_form_once() -> None:
    item = Outgoing(FrameType.HEARTBEAT, {"timestamp": "t"})
    assert item.ws_text() is item.ws_text()
    assert item.sse_text().startswith("event: heartbeat\n")


def test_parse_frame_rejects_non_contract_frames() -> None:
    assert parse_frame('{"type":"heartbeat","data":{"timestamp":"x"}}').type == "heartbeat"
    for bad in ("nope", '{"data":{}}', '{"type":"x","data":[]}', b"\x00"):
        with pytest.raises(ProtocolViolation):
            parse_frame(bad)


def test_stream_url_maps_scheme_and_quotes_the_query() -> None:
    url = stream_url(
        "http://127.0.0.1:8000/", "/api/ws/notifications", token="a.b+c", last_id="x-1"
    )
    assert url == "ws://127.0.0.1:8000/api/ws/notifications?token=a.b%2Bc&last_id=x-1"
