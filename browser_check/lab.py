"""One page under test: a fake clock the check drives, a probe on its sockets, and a scripted
server (or the real one) answering each socket it opens at the contract's path."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import Page, Request, Route, WebSocketRoute

from notify_contract.protocol import AFTER_PARAM, ARCHIVE_PATH, LAST_ID_PARAM, WS_NOTIFICATIONS_PATH

PROBE_EVENT = "__notifyProbeEvent"  # the probe calls it on every socket event
PAUSE_AHEAD_S = 1  # the clock is stopped this far after the time it is installed at
FAKE_START_S = 1_800_000_000  # the page's clock when the check takes it (Playwright: seconds)


@dataclass
class Attempt:
    """One socket the page opened at the notification path, as the server side saw it."""

    n: int
    url: str
    route: WebSocketRoute
    received: list[str] = field(default_factory=list)
    closed_by_page: bool = False

    @property
    def last_id(self) -> str | None:
        values = parse_qs(urlsplit(self.url).query).get(LAST_ID_PARAM)
        return values[0] if values else None


@dataclass(frozen=True)
class Socket:
    """One socket as the probe inside the page saw it (times are the fake clock's, in ms)."""

    url: str
    at: float
    opened_at: float | None
    closed_at: float | None
    code: int | None
    close_called_at: float | None
    close_called_code: int | None

    @property
    def last_id(self) -> str | None:
        values = parse_qs(urlsplit(self.url).query).get(LAST_ID_PARAM)
        return values[0] if values else None

    @property
    def ended_at(self) -> float | None:
        """When the page let go of it: its close() call, or its close event."""
        times = [t for t in (self.close_called_at, self.closed_at) if t is not None]
        return min(times) if times else None


@dataclass(frozen=True)
class Probe:
    sockets: list[Socket]
    max_held: int


Script = Callable[["CheckPage", Attempt], Awaitable[None]]
Archive = Callable[[str | None], list[dict[str, Any]]]


def probe_script(path: str) -> str:
    text = resources.files("browser_check").joinpath("probe.js").read_text(encoding="utf-8")
    pattern = "(^|/)" + path.strip("/").replace("/", "\\/") + "$"
    return text.replace("__NOTIFY_PATH_PATTERN__", json.dumps(pattern))


class CheckPage:
    """The page of one check. `script` answers each socket the page opens; None passes the
    socket through to the real server (the live checks)."""

    def __init__(
        self,
        page: Page,
        script: Script | None,
        archive: Archive | None = None,
        path: str = WS_NOTIFICATIONS_PATH,
        late_close: bool = False,
    ) -> None:
        self.page = page
        self.script = script
        self.archive = archive
        self.path = path
        self.attempts: list[Attempt] = []
        self.archive_requests: list[str | None] = []
        self.errors: list[str] = []
        self.now = 0.0  # fake ms since the clock was paused
        self.epoch = 0.0  # the page's Date.now() when it was paused
        self.notes: list[str] = []  # SHOULD not met: the check is non-strict
        # A close the page starts completes at once, or (late_close) only once the page has
        # opened its next socket: the late close event of an old socket (rule 7.7).
        self.late_close = late_close
        self._pending_closes: list[tuple[Attempt, int | None, str | None]] = []
        self._jobs: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    async def open(self, url: str, first_within: float = 15_000.0) -> Attempt:
        """Load the page with the routes in place and its clock stopped; its first socket,
        waiting at most `first_within` ms of the page's time (a page may connect on a timer)."""
        await self.page.clock.install(time=FAKE_START_S)
        # Stopped before the page exists: nothing of the page runs on a clock the check does
        # not drive (a jump over a due timer would fire it late, skewing every measured delay).
        self.epoch = (FAKE_START_S + PAUSE_AHEAD_S) * 1000.0
        await self.page.clock.pause_at(self.epoch / 1000)
        await self.page.expose_function(PROBE_EVENT, self._probe_event)
        # The route first: Playwright puts its own WebSocket in place, which the probe wraps.
        await self.page.route_web_socket(self._matches, self._route)
        await self.page.add_init_script(probe_script(self.path))
        await self.page.route(lambda url: urlsplit(url).path.endswith(ARCHIVE_PATH), self._fetch)
        await self.page.goto(url)
        if not await self.attempts_by(0, first_within, step=100):
            raise TimeoutError(
                f"the page opened no socket at {self.path} within {first_within / 1000:g} s "
                "of loading"
            )
        return self.attempts[0]

    def clock_ms(self) -> float:
        """The page's Date.now() (the fake clock), as the probe records times."""
        return self.epoch + self.now

    def _probe_event(self, kind: str) -> None:
        self._changed.set()

    def _matches(self, url: str) -> bool:
        return urlsplit(url).path.endswith(self.path)

    def _route(self, route: WebSocketRoute) -> None:
        attempt = Attempt(len(self.attempts), route.url, route)
        self.attempts.append(attempt)
        if self.script is None:
            route.connect_to_server()
        else:
            route.on_message(lambda message: self._received(attempt, message))
            route.on_close(lambda code, reason: self._page_closed(attempt, code, reason))
            self._spawn(self._run_script(attempt))
            pending, self._pending_closes = self._pending_closes, []
            for old, code, reason in pending:
                self._spawn(self._answer_close(old, code, reason))
        self._changed.set()

    def _spawn(self, work: Awaitable[None]) -> None:
        job = asyncio.ensure_future(work)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _run_script(self, attempt: Attempt) -> None:
        if self.script is None:
            return
        try:
            await self.script(self, attempt)
        except Exception as exc:  # a script error is the check's, reported, never swallowed
            self.errors.append(f"script on attempt {attempt.n}: {type(exc).__name__}: {exc}")

    def _received(self, attempt: Attempt, message: str | bytes) -> None:
        attempt.received.append(message if isinstance(message, str) else repr(message))

    def _page_closed(self, attempt: Attempt, code: int | None, reason: str | None) -> None:
        """The page closes a socket: the server side answers the close (Playwright leaves that
        to a route that listens for closes), now or after the page's next socket."""
        attempt.closed_by_page = True
        if self.late_close:
            self._pending_closes.append((attempt, code, reason))
        else:
            self._spawn(self._answer_close(attempt, code, reason))
        self._changed.set()

    async def _answer_close(self, attempt: Attempt, code: int | None, reason: str | None) -> None:
        if code is None:  # the page gave no code: none goes back either
            await attempt.route.close()
        else:
            await attempt.route.close(code=code, reason=reason)

    async def _fetch(self, route: Route, request: Request) -> None:
        if request.method != "GET" or self.archive is None:
            await route.continue_()
            return
        after = parse_qs(urlsplit(request.url).query).get(AFTER_PARAM, [None])[0]
        self.archive_requests.append(after)
        body = json.dumps({"items": self.archive(after)})
        await route.fulfill(status=200, content_type="application/json", body=body)
        self._changed.set()

    # -- the server side ----------------------------------------------------------------------

    def send(self, attempt: Attempt, *frames: str) -> None:
        for text in frames:
            attempt.route.send(text)

    async def close(self, attempt: Attempt, code: int, reason: str = "") -> None:
        await attempt.route.close(code=code, reason=reason or f"client check: {code}")

    # -- time -----------------------------------------------------------------------------------

    async def settle(self) -> None:
        """Let what the page and the routes have queued happen (a round trip to the page)."""
        await self.page.evaluate("0")
        for _ in range(3):
            await asyncio.sleep(0)

    async def advance(
        self,
        ms: float,
        *,
        step: float = 100.0,
        until: Callable[[], Awaitable[bool]] | None = None,
        tick: Callable[[float], Awaitable[None]] | None = None,
    ) -> bool:
        """Run the page's clock `ms` forward in steps (its timers fire at their due times);
        stop early once `until` holds. True if `until` held (or none was given)."""
        end = self.now + ms
        while self.now < end:
            if until is not None and await until():
                return True
            delta = min(step, end - self.now)
            await self.page.clock.run_for(round(delta))
            self.now += delta
            await self.settle()
            if tick is not None:
                await tick(self.now)
        return until is None or await until()

    async def attempt(self, n: int, real_timeout: float = 5.0) -> Attempt:
        """Wait (in real time, the clock stopped) until the page has opened socket `n`."""
        async with asyncio.timeout(real_timeout):
            while len(self.attempts) <= n:
                self._changed.clear()
                await self._changed.wait()
        return self.attempts[n]

    async def until_real(self, done: Callable[[], Awaitable[bool]], seconds: float) -> bool:
        """Wait in real time, the clock stopped, for what only the network brings (a close when
        a server dies); woken by the probe's and the routes' events."""
        try:
            async with asyncio.timeout(seconds):
                while not await done():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return await done()
        return True

    async def attempts_by(self, n: int, ms: float, **kwargs: Any) -> bool:
        """Advance until the page opened socket `n` (0-based), at most `ms`."""

        async def opened() -> bool:
            return len(self.attempts) > n

        return await self.advance(ms, until=opened, **kwargs)

    async def call(self, function: str, *args: str) -> bool:
        """Call the page's global `function` with `args` as the page's own code would; False if
        the page has no such function."""
        return bool(
            await self.page.evaluate(
                "([name, args]) => typeof window[name] === 'function' "
                "&& (window[name](...args), true)",
                [function, list(args)],
            )
        )

    # -- what the page shows ----------------------------------------------------------------------

    async def probe(self) -> Probe:
        raw = await self.page.evaluate("window.__notifyProbe")
        if raw is None:
            raise RuntimeError("the socket probe is missing from the page")
        sockets = [
            Socket(
                url=s["url"],
                at=s["at"],
                opened_at=s["openedAt"],
                closed_at=s["closedAt"],
                code=s["code"],
                close_called_at=s["closeCalledAt"],
                close_called_code=s["closeCalledCode"],
            )
            for s in raw["attempts"]
        ]
        return Probe(sockets, int(raw["maxHeld"]))

    async def shown(self, *titles: str) -> dict[str, int]:
        """How many times each title appears in the page's text."""
        text = await self.page.inner_text("body")
        return {t: text.count(t) for t in titles}

    async def shows(self, *titles: str, ms: float = 5000.0) -> bool:
        """Advance until every title is shown, at most `ms`."""

        async def all_shown() -> bool:
            return all(n > 0 for n in (await self.shown(*titles)).values())

        return await self.advance(ms, until=all_shown)

    async def aclose(self) -> None:
        for job in list(self._jobs):
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
