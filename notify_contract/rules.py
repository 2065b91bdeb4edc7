"""The numbered rules of docs/contract.md and their grades: what cases, tests and reports cite."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Level(StrEnum):
    MUST = "MUST"  # broken: fail
    SHOULD = "SHOULD"  # broken: non-strict


@dataclass(frozen=True, slots=True)
class Rule:
    id: str  # "S.N", stable once published
    level: Level
    title: str

    @property
    def section(self) -> int:
        return int(self.id.split(".")[0])

    @property
    def key(self) -> tuple[int, int]:
        section, number = self.id.split(".")
        return int(section), int(number)


M, S = Level.MUST, Level.SHOULD
RULES: Final = {
    r.id: r
    for r in (
        Rule("1.1", M, "the driver publishes: 201, id, created_at, extra fields kept"),
        Rule("1.2", M, "publishing needs an admin token"),
        Rule("1.3", M, "the driver starts tasks owned by the caller"),
        Rule("1.4", M, "the archive lists the caller's notifications after an id"),
        Rule("1.5", M, "the token may come in an Authorization header"),
        Rule("1.6", M, "no token in any log line"),
        Rule("1.7", M, "non-WebSocket requests to a WebSocket path get a clean 4xx"),
        Rule("2.1", M, "every bad token: accept, then 4401, nothing delivered"),
        Rule("2.2", S, "an oversized token gets 4401"),
        Rule("2.3", S, "query and header tokens that differ are refused"),
        Rule("2.4", M, "a token that expires while open closes the stream with 4401"),
        Rule("2.5", M, "HTTP endpoints: 401 for a bad or expired token, 403 for a user's"),
        Rule("3.1", M, "frames are JSON text matching their schema"),
        Rule("3.2", M, "`connected` first, naming the user"),
        Rule("3.3", M, "notification ids are unique non-empty strings"),
        Rule("3.4", S, "timestamps carry a UTC offset"),
        Rule("4.1", M, "ping gets pong"),
        Rule("4.2", M, "a bad client frame gets an error frame, the stream stays open"),
        Rule("4.3", M, "a binary frame closes with 1003"),
        Rule("4.4", M, "a frame over the limit closes with 1009"),
        Rule("4.5", S, "invalid UTF-8 closes with 1007"),
        Rule("5.1", M, "heartbeats every interval; idle streams survive"),
        Rule("5.2", M, "WebSocket pings drop dead peers"),
        Rule("5.3", M, "fan-out: each stream of the user once, in order, nobody else"),
        Rule("5.4", M, "task streams: owner or admin, 4403, 4404, latest state, no cross-talk"),
        Rule("5.5", M, "per-user limit: 4429, others untouched, a close frees a place"),
        Rule("5.6", M, "slow consumers get 4408, others are not delayed"),
        Rule("5.7", M, "resume with last_id: replay in order (broadcasts too), then live"),
        Rule("5.8", M, "last_id older than history: resync, and the archive has the rest"),
        Rule("5.9", M, "shutdown closes with 1001"),
        Rule("6.1", M, "44xx codes are sent after accept"),
        Rule("7.1", M, "the attempt count resets only on `connected`"),
        Rule("7.2", M, "no reconnect after 4403/4404, none with the same token after 4401"),
        Rule("7.3", M, "after 4429: back off, keep counting"),
        Rule("7.4", M, "after 1001, 1006, 1011, 1012, 4408: reconnect by the policy"),
        Rule("7.5", M, "reconnect with last_id; archive after resync; each id shown once"),
        Rule("7.6", M, "watchdog: no frame for 2.5 heartbeats means dead"),
        Rule("7.7", M, "one socket at a time; nothing after sign-out"),
        Rule("7.8", S, "reconnect delays are jittered"),
        Rule("7.9", M, "a new token: the page closes the old socket, opens one new one"),
        Rule("8.1", M, "stats: totals and per-user counts of open streams"),
        Rule("8.2", M, "stats need an admin token unless public"),
        Rule("8.3", M, "stats cover every instance"),
        Rule("9.1", M, "SSE: event-stream headers; 401 without a token"),
        Rule("9.2", M, "SSE events, notification ids in `id:`"),
        Rule("9.3", M, "SSE resumes with Last-Event-ID or last_id"),
        Rule("9.4", M, "SSE over Redis PubSub: per-connection or shared"),
        Rule("10.1", M, "a bad setting stops the server, naming it"),
        Rule("10.2", M, "several processes need Redis"),
        Rule("11.1", M, "a foreign Origin is refused before accept"),
        Rule("11.2", M, "a client over the frame rate is closed with 1008"),
        Rule("11.3", M, "user ids are exact strings"),
        Rule("11.4", M, "no stack trace, secret or other user's data in any answer"),
        Rule("11.5", M, "a 100 KB URL is refused and the server goes on"),
        Rule("11.6", S, "a request head not complete within 10 s is closed"),
        Rule("11.7", S, "at capacity: a clean refusal, open streams unharmed, accepts again"),
        Rule("11.8", S, "a body over the limit is refused before it is read"),
        Rule("11.9", S, "a body not complete within 10 s of its head is ended"),
        Rule("12.1", M, "one subscription per instance; delivered once"),
        Rule("12.2", M, "history in Redis survives an instance restart"),
        Rule("12.3", M, "partitions: a user's order is their partition's; broadcasts on each once"),
    )
}


def rule(rule_id: str) -> Rule:
    """The rule `rule_id`; KeyError naming it if the contract has no such rule."""
    try:
        return RULES[rule_id]
    except KeyError:
        raise KeyError(f"docs/contract.md has no rule {rule_id!r}") from None
