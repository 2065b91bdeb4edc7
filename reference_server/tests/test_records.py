from __future__ import annotations

from reference_server.protocol import FrameType
from reference_server.records import (
    Stored,
    TaskEvent,
    parse_id,
    record_body,
    select_after,
    select_replay,
    stored_from_json,
    task_failed,
    task_step,
    with_id,
)

EPOCH = "e1"


def items(*seqs: int) -> list[Stored]:
    return [with_id(EPOCH, s, {"title": f"n{s}"}) for s in seqs]


def test_ids_round_trip_and_other_epochs_are_unknown() -> None:
    assert parse_id(EPOCH, "e1-42") == 42
    assert parse_id(EPOCH, "e2-42") is None
    assert parse_id(EPOCH, "garbage") is None
    assert parse_id(EPOCH, "e1-") is None


def test_record_body_keeps_extra_fields_and_sets_server_fields() -> None:
    body = record_body({"title": "t", "sent_at": 1.25, "nested": {"a": [1]}})
    assert body["sent_at"] == 1.25 and body["nested"] == {"a": [1]}
    assert body["status"] == "unread" and body["created_at"].endswith("+00:00")


def test_replay_merges_personal_and_broadcast_after_last_id() -> None:
    replay = select_replay(items(1, 4, 6), items(2, 5), "e1-2", size=10)
    assert replay is not None
    assert [s.seq for s in replay] == [4, 5, 6]


def test_replay_of_the_newest_id_is_empty_and_unknown_ids_resync() -> None:
    assert select_replay(items(1, 2), [], "e1-2", size=10) == []
    assert select_replay(items(1, 2), [], "e1-99", size=10) is None
    assert select_replay(items(1, 2), [], "other-1", size=10) is None


def test_an_id_older_than_the_history_window_resyncs() -> None:
    history = items(*range(1, 11))
    assert select_replay(history, [], "e1-5", size=6) is not None  # 5..10 kept
    assert select_replay(history, [], "e1-4", size=6) is None


def test_archive_after_an_id_and_all_when_unknown() -> None:
    assert [r["title"] for r in select_after(items(1, 3), items(2), EPOCH, "e1-1")] == ["n2", "n3"]
    assert len(select_after(items(1, 3), items(2), EPOCH, "x-9")) == 3
    assert len(select_after(items(1, 3), [], EPOCH, None)) == 2


def test_a_record_with_a_given_id_carries_its_seq_in_front() -> None:
    broadcast = stored_from_json(EPOCH, b'7|{"id":"b9-3","title":"all"}')
    assert broadcast is not None and (broadcast.seq, broadcast.id) == (7, "b9-3")
    plain = stored_from_json(EPOCH, '{"id":"e1-4","title":"own"}')
    assert plain is not None and plain.seq == 4
    assert stored_from_json(EPOCH, 'x|{"id":"b9-3"}') is None
    assert stored_from_json(EPOCH, '{"id":"e2-4"}') is None  # another partition's epoch


def test_archive_after_a_given_id_is_placed_by_finding_it() -> None:
    given = stored_from_json(EPOCH, '2|{"id":"b9-3","title":"all"}')
    assert given is not None
    after = select_after(items(1, 3), [given], EPOCH, "b9-3")
    assert [r["title"] for r in after] == ["n3"]
    assert len(select_after(items(1, 3), [given], EPOCH, "b9-4")) == 3  # unknown: all of it


def test_task_events() -> None:
    p = task_step("t", 2, 5, "m")
    assert p.frame_type is FrameType.PROGRESS and p.data["progress"] == 40.0 and not p.terminal
    c = task_step("t", 5, 5, "done")
    assert c.frame_type is FrameType.COMPLETED and c.data["progress"] == 100.0 and c.terminal
    e = task_failed("t", 3, 5, "boom")
    assert e.terminal and e.step == 3
    assert TaskEvent.from_json(c.to_json()) == c
