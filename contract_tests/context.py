"""What a case works with: the target, tokens, the driver, streams that record a transcript."""

from __future__ import annotations

import collections
import itertools
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notify_client.client import Frame, StreamClient
from notify_client.driver import Driver
from notify_client.sse_client import SseStream
from notify_client.target import Target
from notify_contract.protocol import WS_NOTIFICATIONS_PATH
from notify_contract.rules import Level
from notify_contract.schemas import has_utc_offset, violations
from notify_contract.settings import Limits
from notify_contract.verdicts import CaseFailed, Need, NotRun


@dataclass
class Shared:
    """One per run against a target: the driver and why it is unavailable, if it is."""

    target: Target
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    driver: Driver | None = None
    driver_problem: str | None = "driver not probed"
    http_driver_works: bool = False
    http_driver_exists: bool = False  # it answered, if not as the contract says
    http_driver_problem: str | None = None  # why the HTTP driver API is not usable
    counter: itertools.count[int] = field(default_factory=itertools.count)
    # Every token the run used, and whose: rule 1.6's scan looks for each in every log line
    # written from the run's start (`log_start`, each log's size then) to its end.
    minted: dict[str, str] = field(default_factory=dict)
    log_start: dict[Path, int] = field(default_factory=dict)


TRANSCRIPT_ENDS = 100  # entries kept at each end of a case's transcript


@dataclass(frozen=True)
class Entry:
    """One line of a case's transcript."""

    at: float  # seconds since the case started
    stream: str
    direction: str  # sent, received, closed, note
    text: str


class Context:
    """Handed to each case: fresh user names, tokens, the driver, recorded streams."""

    def __init__(self, shared: Shared, needs: frozenset[Need], level: Level = Level.MUST) -> None:
        self.shared = shared
        self.target = shared.target
        self.needs = needs
        self.level = level
        self.started = time.monotonic()
        self._head: list[Entry] = []
        self._tail: collections.deque[Entry] = collections.deque(maxlen=TRANSCRIPT_ENDS)
        self._left_out = 0
        self.notes: list[str] = []
        self.close_codes: list[int | None] = []
        self._streams: list[StreamClient] = []
        self._sse: list[SseStream] = []
        if shared.driver is not None:  # cases run one at a time: the driver records for this one
            shared.driver.record = lambda direction, text: self.note("driver", direction, text)

    @property
    def limits(self) -> Limits:
        """The target's settings as the contract names them."""
        return self.target.limits

    # -- names and tokens -----------------------------------------------------------------

    def user(self, name: str = "user") -> str:
        return f"ct-{self.shared.run_id}-{name}-{next(self.shared.counter)}"

    def token(self, user: str, *, admin: bool = False, ttl: float | None = None) -> str:
        tokens = self.target.tokens
        if tokens is None:
            raise NotRun("no token source: give --jwt-secret or --token-cmd")
        minted = tokens.mint(user, admin=admin, ttl=ttl)
        self.shared.minted.setdefault(minted, user)
        return minted

    def signed(self, claims: dict[str, Any]) -> str:
        """A token with exactly these claims, signed with the target's key."""
        minter = self.target.minter
        if minter is None:
            raise NotRun("a token with chosen claims needs --jwt-secret")
        signed = minter.sign(claims)
        self.shared.minted.setdefault(signed, f"{claims.get('sub', 'no sub')} (chosen claims)")
        return signed

    @property
    def admin(self) -> str:
        return self.token("contract-admin", admin=True)

    @property
    def driver(self) -> Driver:
        if self.shared.driver is None:
            raise NotRun(self.shared.driver_problem or "no driver")
        return self.shared.driver

    # -- streams --------------------------------------------------------------------------

    async def stream(
        self,
        user: str | None,
        path: str = WS_NOTIFICATIONS_PATH,
        *,
        tok: str | None = None,
        label: str | None = None,
        **handshake: Any,
    ) -> StreamClient:
        """Open a WebSocket stream (token minted for `user` unless `tok`), recorded as `label`."""
        token = tok if tok is not None else (self.token(user) if user else None)
        name = label or f"ws{len(self._streams) + 1}"
        self.note(name, "open", f"{path} as {user or 'nobody'}")
        handshake.setdefault("token_in", self.target.token_in)
        client = await StreamClient.open(
            self.target.base,
            path,
            token,
            record=lambda d, t: self.note(name, d, t),
            open_timeout=self.target.frame_timeout * 2,
            **handshake,
        )
        self._streams.append(client)
        return client

    async def sse(
        self,
        user: str | None,
        path: str,
        *,
        tok: str | None = None,
        label: str | None = None,
        **kwargs: Any,
    ) -> SseStream:
        token = tok if tok is not None else (self.token(user) if user else None)
        name = label or f"sse{len(self._sse) + 1}"
        self.note(name, "open", f"{path} as {user or 'nobody'}")
        kwargs.setdefault("token_in", self.target.token_in)  # as the target's streams take it
        stream = await SseStream.open(self.target.base, path, token, **kwargs)
        self._sse.append(stream)
        return stream

    def note(self, stream: str, direction: str, text: str) -> None:
        entry = Entry(round(time.monotonic() - self.started, 4), stream, direction, text[:2000])
        if len(self._head) < TRANSCRIPT_ENDS:
            self._head.append(entry)
            return
        if len(self._tail) == TRANSCRIPT_ENDS:
            self._left_out += 1
        self._tail.append(entry)

    @property
    def transcript(self) -> list[Entry]:
        """The first and the last TRANSCRIPT_ENDS entries, with a count of those between (a
        case that read thousands of frames once made a 9 MB report)."""
        if not self._left_out:
            return [*self._head, *self._tail]
        gap = Entry(self._tail[0].at, "suite", "note", f"{self._left_out} entries left out")
        return [*self._head, gap, *self._tail]

    async def close_all(self) -> None:
        for client in self._streams:
            self.close_codes.append(client.close_code)
            try:
                await client.close()
            except Exception as exc:
                self.note("suite", "note", f"closing a stream failed: {exc!r}")
        for stream in self._sse:
            await stream.aclose()

    # -- verdict helpers ------------------------------------------------------------------

    def must(self, condition: bool, message: str) -> None:
        if not condition:
            raise CaseFailed(message)

    def should(self, condition: bool, message: str) -> None:
        """The outcome a SHOULD rule names: non-strict, not failed. Only SHOULD cases say it."""
        if self.level is not Level.SHOULD:
            raise TypeError("should() in a case of a MUST rule: use must()")
        if not condition:
            self.notes.append(message)
            self.note("suite", "note", f"SHOULD missed: {message}")

    def shape(self, frame: Frame) -> Frame:
        """The frame must match its JSON Schema (rule 3.1)."""
        problems = violations({"type": frame.type, "data": frame.data})
        self.must(not problems, f"`{frame.type}` frame breaks its schema: {'; '.join(problems)}")
        return frame

    def offsets(self, frame: Frame) -> None:
        """Rule 3.4: the frame's timestamps should carry a UTC offset."""
        for key in ("timestamp", "created_at"):
            value = frame.data.get(key)
            if isinstance(value, str):
                self.should(
                    has_utc_offset(value), f"`{frame.type}` {key} {value!r} has no UTC offset"
                )
