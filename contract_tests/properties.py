"""Hypothesis properties a live server must hold for any client frame and any token.

Shared by the test suite (`contract_tests/tests/test_properties.py`) and the fault suite's
hostile-input rows; both run them with the blocking client.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify_client.blocking import BlockingStreamClient
from notify_client.client import Closed, Frame
from notify_contract.codes import WS_4401_UNAUTHORIZED, CloseCode
from notify_contract.protocol import WS_NOTIFICATIONS_PATH

# -- client frames ----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
TYPES = st.sampled_from(["ping", "pong", "PING", "notification", "subscribe", "", "connected"])
OBJECTS = st.builds(
    lambda t, extra: json.dumps({**extra, "type": t}),
    TYPES | st.integers() | st.none(),
    st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3),
)
CLIENT_FRAMES = (
    OBJECTS
    | st.text(max_size=200)
    | JSON_VALUES.map(json.dumps)
    | st.binary(max_size=64)
    | st.sampled_from(
        [
            "' OR 1=1 --",
            "<script>alert(1)</script>",
            "{{7*7}}",
            "${jndi:x}",
            '{"type": "ping"',
            "\x00",
            "notifications:*",
            "[" * 20_000,
        ]
    )
)


def contract_answer(frame: str | bytes) -> str:
    """What docs/contract.md section 4 says the server does with this client frame."""
    if isinstance(frame, bytes):
        return "close 1003"
    try:
        obj = json.loads(frame)
    except (ValueError, RecursionError):
        return "error"
    return "pong" if isinstance(obj, dict) and obj.get("type") == "ping" else "error"


@dataclass
class Tried:
    """What a property run sent, for the report: examples and how they were answered."""

    examples: int = 0
    answers: dict[str, int] = field(default_factory=dict)

    def saw(self, answer: str) -> None:
        self.examples += 1
        self.answers[answer] = self.answers.get(answer, 0) + 1


def _settings(examples: int | None) -> Callable[[Any], Any]:
    if examples is None:  # the active profile decides
        return lambda f: f
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


def client_frames_property(
    base: str, token: Callable[[str], str], secret_marker: str, examples: int | None = None
) -> tuple[Callable[[], None], Tried]:
    """Any client frame gets its contract answer, the stream then still answers a ping, and no
    frame ever carries `secret_marker` (another user's notification). Needs a server whose
    WS_CLIENT_RATE is far above what the run sends. Returns the test and its tally."""
    tried = Tried()
    state = {"client": _open(base, token("attacker"))}

    @_settings(examples)
    @given(frame=CLIENT_FRAMES)
    def check(frame: str | bytes) -> None:
        client = state["client"]
        answer = contract_answer(frame)
        if isinstance(frame, bytes):
            client.send_bytes(frame)
        else:
            client.send_text(frame)
        if answer == "close 1003":
            frames = client.until_closed(5)
            client.close()
            assert client.close_code == CloseCode.UNSUPPORTED_DATA
            state["client"] = _open(base, token("attacker"))
        else:
            got = _next_reply(client)
            frames = [got]
            assert got.type == answer, f"{frame!r} got {got.raw}"
            client.ping()
            frames.append(client.expect("pong"))  # still serving
        tried.saw(answer)
        for f in frames:
            assert secret_marker not in f.raw and "Traceback" not in f.raw

    def run() -> None:
        try:
            check()
        finally:
            state["client"].close()

    return run, tried


def _open(base: str, tok: str, **handshake: Any) -> BlockingStreamClient:
    client = BlockingStreamClient.open(base, WS_NOTIFICATIONS_PATH, tok, **handshake)
    client.expect("connected")
    return client


def _next_reply(client: BlockingStreamClient) -> Frame:
    got = client.recv(5)
    while got.type == "heartbeat":
        got = client.recv(5)
    return got


# -- tokens -----------------------------------------------------------------------------------

NOW = int(time.time())
# One change to a valid token's claims or algorithm, and whether it stays valid (rule 2.1).
CHANGES: tuple[tuple[str, dict[str, Any], str, bool], ...] = (
    ("as is", {}, "HS256", True),
    ("no sub", {"sub": None}, "HS256", False),
    ("numeric sub", {"sub": 42}, "HS256", False),
    ("empty sub", {"sub": ""}, "HS256", False),
    ("list sub", {"sub": ["a"]}, "HS256", False),
    ("no exp", {"exp": None}, "HS256", False),
    ("expired", {"exp": NOW - 3600}, "HS256", False),
    ("text exp", {"exp": "tomorrow"}, "HS256", False),
    ("nbf in the future", {"nbf": NOW + 3600}, "HS256", False),
    ("nbf in the past", {"nbf": NOW - 3600}, "HS256", True),
    ("role admin", {"role": "admin"}, "HS256", True),
    ("HS384", {}, "HS384", False),
    ("HS512", {}, "HS512", False),
)


@dataclass(frozen=True)
class TokenCase:
    """One token to present and whether docs/contract.md 2 lets it in."""

    token: str
    valid: bool
    user: str | None
    placement: str  # "query" or "header"
    how: str


def token_cases(secret: str) -> st.SearchStrategy[TokenCase]:
    """Tokens signed with the server's key for arbitrary user ids, each with one change to its
    claims or algorithm (CHANGES); valid ones with one character changed; arbitrary text."""
    places = st.sampled_from(["query", "header"])

    @st.composite
    def signed(draw: st.DrawFn) -> TokenCase:
        what, change, alg, ok = draw(st.sampled_from(CHANGES))
        sub = draw(st.text(min_size=1, max_size=60))
        claims = {
            k: v for k, v in {"sub": sub, "exp": NOW + 3600, **change}.items() if v is not None
        }
        tok = jwt.encode(claims, secret, algorithm=alg)
        return TokenCase(tok, ok, sub if ok else None, draw(places), f"{what}: {claims}")

    @st.composite
    def tampered(draw: st.DrawFn) -> TokenCase:
        sub = draw(st.text(min_size=1, max_size=20))
        tok = jwt.encode({"sub": sub, "exp": NOW + 3600}, secret, algorithm="HS256")
        head_body = tok.rsplit(".", 1)[0]
        # Any character of the header or the claims; the signature's last one can carry
        # padding bits that decode to the same bytes.
        at = draw(st.integers(0, len(head_body) - 1))
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
        new = draw(st.sampled_from(alphabet).filter(lambda c: c != head_body[at]))
        bad = tok[:at] + new + tok[at + 1 :]  # the signature covers these characters as sent
        return TokenCase(bad, False, None, draw(places), f"char {at} changed to {new!r}")

    garbage = st.text(max_size=300).map(
        lambda t: TokenCase(t, False, None, "query", f"text {t[:40]!r}")
    )
    return signed() | tampered() | garbage.filter(lambda c: c.token != "")


def tokens_property(
    base: str, secret: str, examples: int | None = None
) -> tuple[Callable[[], None], Tried]:
    """A token is let in (with its own `sub` as the user) exactly when docs/contract.md 2 says so;
    every other one is closed with 4401 after accept, with nothing delivered."""
    tried = Tried()

    @_settings(examples)
    @given(case=token_cases(secret))
    def check(case: TokenCase) -> None:
        client = BlockingStreamClient.open(
            base, WS_NOTIFICATIONS_PATH, case.token, token_in=case.placement
        )
        try:
            if case.valid:
                hello = client.expect("connected")
                assert hello.data["user_id"] == case.user, case.how
                tried.saw("connected")
            else:
                frames = client.until_closed(5)
                assert client.close_code == WS_4401_UNAUTHORIZED, (case.how, client.close_code)
                assert not frames, (case.how, [f.type for f in frames])
                tried.saw("4401")
        except Closed as exc:
            raise AssertionError(f"{case.how}: closed with {exc.code}") from None
        finally:
            client.close()

    return check, tried
