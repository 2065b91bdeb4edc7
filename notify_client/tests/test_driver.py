"""What the driver sends: a whole body, as rule 1.1 lists it."""

from __future__ import annotations

from notify_client.driver import broadcast_call, publish_call


def test_every_publish_body_carries_every_field_rule_1_1_lists() -> None:
    """A body without content, link and source got nulls back from a server that keeps only
    what it was sent: two cases failed for the suite's own bodies, and hid the server's fault."""
    one = publish_call("admin", "alice", "hi", {"sent_at": 1.0}).body
    everyone = broadcast_call("admin", "all", {}).body
    for body in (one, everyone):
        assert {"title", "content", "type", "link", "source"} <= set(body), body
        assert all(body[k] for k in ("content", "link", "source"))
    assert one["user_id"] == "alice" and one["sent_at"] == 1.0
    assert everyone["broadcast"] is True
    assert publish_call("admin", "a", "t", {"content": "mine"}).body["content"] == "mine"
