"""The client checks: each plays the server for one page and judges what its sockets did by one
rule of section 7. Declared with `@check(id, rule, title, expected)`; the policy's numbers come
from notify_contract, never from the client under test."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs, urlsplit

from browser_check import frames
from browser_check.lab import Archive, Attempt, Lab, Probe, Socket
from notify_contract.codes import (
    WS_4401_UNAUTHORIZED,
    WS_4403_FORBIDDEN,
    WS_4404_NOT_FOUND,
    WS_4408_SLOW_CONSUMER,
    WS_4429_TOO_MANY_CONNECTIONS,
    CloseCode,
)
from notify_contract.protocol import TOKEN_PARAM
from notify_contract.reconnect import WATCHDOG_BEATS, ReconnectPolicy
from notify_contract.rules import Rule, rule
from notify_contract.settings import DEFAULTS
from notify_contract.verdicts import CaseFailed, NotRun

POLICY = ReconnectPolicy()
SLACK_MS = 25.0  # the fake clock fires timers at their due time; this covers rounding only
QUIET_MS = 45_000.0  # how long "no further attempt" is watched: past the policy's 1+2+4+8+16 s


class Need(StrEnum):
    SIGN_OUT = "sign-out"  # a selector that signs the user out of the page
    TOKEN_HOOK = "token-hook"  # a page function that hands the client a new token
    LIVE = "live"  # a server the check started and can restart (not a --client-url page)


@dataclass
class Options:
    """What the check knows of the page and of the server behind it."""

    heartbeat_ms: float = 1000 * DEFAULTS.heartbeat_interval
    sign_out_selector: str | None = None
    token_hook: str | None = None
    live: LiveServer | None = None


class LiveServer:
    """The real server behind a page the check started: publish to the page's user, restart."""

    user: str

    async def publish(self, title: str) -> str:
        raise NotImplementedError

    async def kill(self) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError


CheckFn = Callable[[Lab, Options], Awaitable[str]]
ScriptFn = Callable[[Lab, Attempt], Awaitable[None]]


@dataclass(frozen=True)
class ClientCheck:
    id: str
    rule: Rule
    title: str
    expected: str
    script: ScriptFn | None  # None: the page talks to the real server
    run: CheckFn
    needs: frozenset[Need] = field(default_factory=frozenset)
    archive: Archive | None = None  # how the check answers the page's archive fetches
    late_close: bool = False  # a close the page starts completes only after its next socket

    @property
    def label(self) -> str:
        return f"[{self.rule.id}] {self.id}"


CHECKS: dict[str, ClientCheck] = {}


def check(
    check_id: str,
    rule_id: str,
    title: str,
    expected: str,
    script: ScriptFn | None,
    needs: tuple[Need, ...] = (),
    archive: Archive | None = None,
    late_close: bool = False,
) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if check_id in CHECKS:
            raise ValueError(f"two client checks named {check_id!r}")
        CHECKS[check_id] = ClientCheck(
            check_id,
            rule(rule_id),
            title,
            expected,
            script,
            fn,
            frozenset(needs),
            archive,
            late_close,
        )
        return fn

    return register


# -- helpers -------------------------------------------------------------------------------------


def bound_ms(attempt: int) -> float:
    """The policy's longest delay before retry `attempt` (0-based)."""
    return POLICY.delay_ms(attempt)


def gaps(sockets: list[Socket]) -> list[float]:
    """Time from each socket's end to the next socket's start (ms)."""
    out = []
    for before, after in itertools.pairwise(sockets):
        ended = before.ended_at if before.ended_at is not None else before.at
        out.append(after.at - ended)
    return out


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def must(condition: bool, message: str) -> None:
    if not condition:
        raise CaseFailed(message)


class Titles:
    """Unique titles and ids for one check, so that the page's text can be counted."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)

    def title(self, n: int) -> str:
        return f"cc{self.tag}n{n}"

    def id(self, n: int) -> str:
        return f"id-{self.tag}-{n}"

    def frame(self, n: int) -> str:
        return frames.notification(self.id(n), self.title(n))

    def item(self, n: int) -> dict[str, Any]:
        return frames.notification_data(self.id(n), self.title(n))


USER = "client-check"


# -- 7.2: final codes --------------------------------------------------------------------------


def _closes_with(code: int) -> ScriptFn:
    async def script(lab: Lab, attempt: Attempt) -> None:
        await lab.close(attempt, code)

    return script


def _final(code: int) -> CheckFn:
    async def run(lab: Lab, options: Options) -> str:
        await lab.advance(QUIET_MS, step=500)
        probe = await lab.probe()
        again = len(probe.sockets) - 1
        must(
            again == 0,
            f"{again} more attempts in the {QUIET_MS / 1000:g} s after {code}, at "
            f"+{fmt(gaps(probe.sockets))} ms",
        )
        return f"closed with {code}; no further attempt in {QUIET_MS / 1000:g} s"

    return run


for _code, _name in (
    (WS_4401_UNAUTHORIZED, "unauthorized"),
    (WS_4403_FORBIDDEN, "forbidden"),
    (WS_4404_NOT_FOUND, "not found"),
):
    check(
        f"final-{_code}",
        "7.2",
        f"after {_code} ({_name}) the page does not reconnect",
        f"no attempt within {QUIET_MS / 1000:g} s of the close",
        _closes_with(_code),
    )(_final(_code))


# -- 7.1 / 7.3: the count is not reset before `connected` ---------------------------------------


def _backoff(code: int, what: str) -> CheckFn:
    async def run(lab: Lab, options: Options) -> str:
        await lab.advance(2 * QUIET_MS, step=500)
        probe = await lab.probe()
        retries = len(probe.sockets) - 1
        seen = gaps(probe.sockets)
        must(retries >= 1, f"no reconnect after {code} ({what}): it must back off, then retry")
        must(
            retries <= POLICY.max_attempts,
            f"{retries} reconnects after {code} without a `connected` frame (the policy allows "
            f"{POLICY.max_attempts}: the count was reset, or never kept); gaps {fmt(seen[:12])} ms",
        )
        late = [
            f"retry {n}: {g:.0f} ms > {bound_ms(n):.0f}"
            for n, g in enumerate(seen)
            if g > bound_ms(n) + SLACK_MS
        ]
        must(not late, "waited longer than the policy's bound: " + "; ".join(late))
        bounds = [bound_ms(n) for n in range(len(seen))]
        return (
            f"{retries} reconnects, then it stopped; gaps {fmt(seen)} ms within the bounds "
            f"{fmt(bounds)} ms"
        )

    return run


check(
    "backoff-4429",
    "7.3",
    "after 4429 the page backs off by the policy and keeps its count",
    f"retries at most min(1000 * 2^n, 30000) ms apart, at most {POLICY.max_attempts} of them",
    _closes_with(WS_4429_TOO_MANY_CONNECTIONS),
)(_backoff(WS_4429_TOO_MANY_CONNECTIONS, "too many connections"))

check(
    "count-kept-until-connected",
    "7.1",
    "a socket that opens and closes before `connected` does not reset the count",
    f"after 1011 on every open: at most {POLICY.max_attempts} retries, then it stops",
    _closes_with(CloseCode.INTERNAL_ERROR),
)(_backoff(CloseCode.INTERNAL_ERROR, "server error"))


# -- 7.4: reconnect after a server-side close ---------------------------------------------------


def _connected_then_close(code: int) -> ScriptFn:
    async def script(lab: Lab, attempt: Attempt) -> None:
        lab.send(attempt, frames.connected(USER))
        if attempt.n == 0:
            await lab.close(attempt, code)

    return script


def _reconnects(code: int) -> CheckFn:
    async def run(lab: Lab, options: Options) -> str:
        back = await lab.attempts_by(1, bound_ms(0) + 1000, step=50)
        probe = await lab.probe()
        must(back, f"no reconnect within {bound_ms(0) + 1000:.0f} ms of {code}")
        gap = gaps(probe.sockets)[0]
        must(
            gap <= bound_ms(0) + SLACK_MS, f"reconnected {gap:.0f} ms after {code}, past the bound"
        )
        return f"reconnected {gap:.0f} ms after {code} (bound {bound_ms(0):.0f} ms)"

    return run


for _code in (
    CloseCode.GOING_AWAY,
    CloseCode.INTERNAL_ERROR,
    CloseCode.SERVICE_RESTART,
    WS_4408_SLOW_CONSUMER,
):
    check(
        f"reconnect-{int(_code)}",
        "7.4",
        f"after {int(_code)} the page reconnects by the policy",
        f"a new socket within {bound_ms(0):.0f} ms of the close",
        _connected_then_close(int(_code)),
    )(_reconnects(int(_code)))


# -- 7.5: resume with last_id, the archive after resync, each id once ---------------------------


def replaying(t: Titles) -> ScriptFn:
    """The first socket gets notifications 1 and 2; every later one, as a server resuming
    after last_id would send: 2 again (the last shown) and 3, new."""

    async def script(lab: Lab, attempt: Attempt) -> None:
        if attempt.n == 0:
            lab.send(attempt, frames.connected(USER), t.frame(1), t.frame(2))
        else:
            lab.send(attempt, frames.connected(USER), t.frame(2), t.frame(3))

    return script


RESUME = Titles()
_resume_script = replaying(RESUME)


@check(
    "resume-last-id",
    "7.5",
    "a reconnect carries last_id, and a replayed notification is shown once",
    "the new socket's URL has last_id = the last id shown; each of 3 notifications shown once",
    _resume_script,
)
async def _resume(lab: Lab, options: Options) -> str:
    t = RESUME
    must(await lab.shows(t.title(1), t.title(2)), "the page never showed the first notifications")
    await lab.close(lab.attempts[0], CloseCode.SERVICE_RESTART)
    must(await lab.attempts_by(1, bound_ms(0) + 1000, step=50), "no reconnect after 1012")
    await lab.shows(t.title(3))
    again = lab.attempts[1]
    must(
        again.last_id == t.id(2),
        f"the reconnect URL carries last_id={again.last_id!r}, not the last id shown {t.id(2)!r}",
    )
    counts = await lab.shown(t.title(1), t.title(2), t.title(3))
    must(all(n == 1 for n in counts.values()), f"shown {counts} times, not once each")
    return f"reconnected with last_id={again.last_id}; each notification shown once"


RESYNC = Titles()


async def _resync_script(lab: Lab, attempt: Attempt) -> None:
    t = RESYNC
    if attempt.n == 0:
        lab.send(attempt, frames.connected(USER), t.frame(1), t.frame(2))
    else:  # the history no longer reaches last_id: resync, the rest is in the archive
        lab.send(attempt, frames.connected(USER), frames.resync(attempt.last_id or ""))


def _resync_archive(after: str | None) -> list[dict[str, Any]]:
    t = RESYNC
    return [t.item(3), t.item(4)] if after == t.id(2) else [t.item(n) for n in (1, 2, 3, 4)]


@check(
    "resync-archive",
    "7.5",
    "after `resync` the page fetches the archive after the last id shown",
    "GET /api/notifications?after=<last id shown>; what it returns shown once each",
    _resync_script,
    archive=_resync_archive,
)
async def _resync(lab: Lab, options: Options) -> str:
    t = RESYNC
    must(await lab.shows(t.title(1), t.title(2)), "the page never showed the first notifications")
    await lab.close(lab.attempts[0], CloseCode.SERVICE_RESTART)
    must(await lab.attempts_by(1, bound_ms(0) + 1000, step=50), "no reconnect after 1012")
    fetched = await lab.advance(3000, until=lambda: _true(bool(lab.archive_requests)))
    must(fetched, "no archive fetch after `resync`: notifications of the gap are lost")
    must(
        lab.archive_requests[0] == t.id(2),
        f"the archive was fetched after={lab.archive_requests[0]!r}, not {t.id(2)!r}",
    )
    await lab.shows(t.title(3), t.title(4))
    counts = await lab.shown(*(t.title(n) for n in (1, 2, 3, 4)))
    must(all(n == 1 for n in counts.values()), f"shown {counts} times, not once each")
    return f"fetched the archive after={lab.archive_requests[0]}; 4 notifications, once each"


async def _true(value: bool) -> bool:
    return value


# -- 7.6 / 7.7: the watchdog, one socket at a time, nothing after sign-out ----------------------


async def one_at_a_time(lab: Lab, due: int) -> Probe:
    """Rule 7.7 after the check's events: a while later, never two sockets held at once and
    exactly `due` opened (an old socket's late close event scheduled none more)."""
    await lab.advance(QUIET_MS / 3, step=500)
    probe = await lab.probe()
    must(
        probe.max_held <= 1,
        f"{probe.max_held} notification sockets were held at once ({len(probe.sockets)} opened)",
    )
    must(
        len(probe.sockets) == due,
        f"{len(probe.sockets)} sockets opened where {due} were due: a late close scheduled more",
    )
    return probe


async def _connected(lab: Lab, attempt: Attempt) -> None:
    lab.send(attempt, frames.connected(USER))


async def _silent_stream(lab: Lab, options: Options, beats: int) -> tuple[float, bool]:
    """Heartbeats on the newest socket for `beats` intervals, then silence. Returns when its last
    frame went out (the page's clock, ms) and whether a new socket came within the bound."""
    interval = options.heartbeat_ms
    current = len(lab.attempts) - 1
    last = lab.clock_ms()
    for _ in range(beats):
        await lab.advance(interval, step=500)
        lab.send(lab.attempts[current], frames.heartbeat())
        last = lab.clock_ms()
    limit = WATCHDOG_BEATS * interval + bound_ms(0) + 1000
    back = await lab.attempts_by(current + 1, limit, step=250)
    return last, back


@check(
    "watchdog",
    "7.6",
    "a stream silent for 2.5 heartbeat intervals is closed and replaced",
    "the page lets the silent socket go and opens a new one within 2.5 intervals + the first delay",
    _connected,
)
async def _watchdog(lab: Lab, options: Options) -> str:
    last, back = await _silent_stream(lab, options, beats=2)
    interval = options.heartbeat_ms
    must(
        back,
        f"no new socket {(WATCHDOG_BEATS * interval + bound_ms(0) + 1000) / 1000:g} s after the "
        f"last frame (heartbeat interval {interval / 1000:g} s): the dead stream was kept",
    )
    probe = await lab.probe()
    first, second = probe.sockets[0], probe.sockets[1]
    must(first.ended_at is not None, "a new socket opened while the silent one was kept open")
    quiet = (second.at - last) / 1000
    must(
        quiet >= WATCHDOG_BEATS * interval / 1000 - 1,
        f"replaced {quiet:.1f} s after the last frame: before 2.5 heartbeat intervals",
    )
    return f"the silent socket was let go and replaced {quiet:.1f} s after its last frame"


@check(
    "one-socket",
    "7.7",
    "never two notification sockets at once, even when an old one closes late",
    "one socket held at a time through a watchdog replacement (the old socket's close event "
    "coming late) and two restarts; 4 in all",
    _connected,
    late_close=True,
)
async def _one_socket(lab: Lab, options: Options) -> str:
    _, back = await _silent_stream(lab, options, beats=0)
    must(back, "the silent socket was never replaced (no watchdog)")
    for n in (1, 2):
        await lab.advance(500, step=100)
        await lab.close(lab.attempts[n], CloseCode.SERVICE_RESTART)
        must(
            await lab.attempts_by(n + 1, bound_ms(0) + 1000, step=50),
            f"no reconnect after restart {n}",
        )
    await one_at_a_time(lab, due=4)
    return "4 sockets, one at a time"


@check(
    "sign-out",
    "7.7",
    "after sign-out nothing reconnects",
    "the page closes its socket; a server restart afterwards brings no attempt",
    _connected,
    needs=(Need.SIGN_OUT,),
)
async def _sign_out(lab: Lab, options: Options) -> str:
    if options.sign_out_selector is None:
        raise NotRun("needs the page's sign-out control: give --sign-out-selector CSS")
    await lab.advance(500, step=100)
    await lab.page.click(options.sign_out_selector)
    await lab.advance(1000, step=100)
    first = lab.attempts[0]
    if not first.closed_by_page:
        await lab.close(first, CloseCode.SERVICE_RESTART)  # the server goes away regardless
    await lab.advance(QUIET_MS, step=500)
    probe = await lab.probe()
    again = len(probe.sockets) - 1
    must(again == 0, f"{again} attempts after sign-out")
    let_go = "closed its socket" if first.closed_by_page else "kept its socket until the server"
    return f"signed out: it {let_go}; no attempt in {QUIET_MS / 1000:g} s"


# -- 7.9: a new token while connected -------------------------------------------------------------

TOKEN = Titles()
_token_script = replaying(TOKEN)


def token_of(url: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get(TOKEN_PARAM)
    return values[0] if values else None


@check(
    "token-change",
    "7.9",
    "a new token while connected: the old socket closed by the page, one new socket",
    f"within {bound_ms(0):.0f} ms of the new token one new socket with it and last_id; never two "
    "open, none more when the old socket's close event comes late; each notification shown once",
    _token_script,
    needs=(Need.TOKEN_HOOK,),
    late_close=True,
)
async def _token_change(lab: Lab, options: Options) -> str:
    t = TOKEN
    hook = options.token_hook
    if hook is None:
        raise NotRun("needs the page's token hook: give --token-hook FUNCTION")
    must(await lab.shows(t.title(1), t.title(2)), "the page never showed the first notifications")
    fresh = f"refreshed-{secrets.token_hex(6)}"
    handed = lab.clock_ms()
    if not await lab.call(hook, fresh):
        raise NotRun(f"the page has no function window.{hook}: give --token-hook FUNCTION")
    must(
        await lab.attempts_by(1, bound_ms(0), step=50),
        f"no new socket within {bound_ms(0):.0f} ms of the new token",
    )
    await lab.shows(t.title(3))
    probe = await one_at_a_time(lab, due=2)
    old, new = lab.attempts[0], lab.attempts[1]
    must(old.closed_by_page, "the page left its old socket open (the server closed it)")
    must(
        token_of(new.url) == fresh,
        "the new socket carries the old token, not the one handed to the page",
    )
    must(
        new.last_id == t.id(2),
        f"the new socket's URL carries last_id={new.last_id!r}, not the last id shown {t.id(2)!r}",
    )
    counts = await lab.shown(t.title(1), t.title(2), t.title(3))
    must(all(n == 1 for n in counts.values()), f"shown {counts} times, not once each")
    return (
        f"the page closed its socket and opened one with the new token and last_id={new.last_id} "
        f"{probe.sockets[1].at - handed:.0f} ms after it; each notification shown once"
    )


# -- 7.8: jitter ---------------------------------------------------------------------------------

JITTER_ROUNDS = 8


@check(
    "jitter",
    "7.8",
    "reconnect delays are jittered",
    f"over {JITTER_ROUNDS} restarts the first delays spread over at least a tenth of the bound",
    _connected,
)
async def _jitter(lab: Lab, options: Options) -> str:
    for n in range(JITTER_ROUNDS):
        await lab.advance(200, step=100)
        await lab.close(lab.attempts[n], CloseCode.SERVICE_RESTART)
        must(
            await lab.attempts_by(n + 1, bound_ms(0) + 1000, step=50),
            f"no reconnect after restart {n + 1}",
        )
    delays = gaps((await lab.probe()).sockets)
    spread = max(delays) - min(delays)
    must(
        max(delays) <= bound_ms(0) + SLACK_MS,
        f"a first delay of {max(delays):.0f} ms, past the bound",
    )
    if spread < bound_ms(0) / 10:
        lab.notes.append(
            f"first delays {fmt(delays)} ms spread over {spread:.0f} ms only: not jittered, so "
            "every client of a restarted server comes back at once"
        )
    return f"first delays {fmt(delays)} ms (spread {spread:.0f} ms)"


# -- the real server: killed and started again under the page -------------------------------------


@check(
    "server-killed",
    "7.4",
    "the real server killed and started again: the page comes back and misses nothing",
    "after 1006 a new socket within the first delay, with last_id; what was published while it "
    "was away shown once",
    None,
    needs=(Need.LIVE,),
)
async def _server_killed(lab: Lab, options: Options) -> str:
    live = options.live
    if live is None:
        raise NotRun("needs a server the check starts and kills (not with --client-url)")
    t = Titles()

    async def opened() -> bool:
        return (await lab.probe()).sockets[-1].opened_at is not None

    await lab.advance(3000, step=100, until=opened)
    await live.publish(t.title(1))
    await live.publish(t.title(2))
    must(await lab.shows(t.title(1), t.title(2)), "the page never showed what was published")
    await live.kill()

    async def cut() -> bool:
        return (await lab.probe()).sockets[0].closed_at is not None

    must(await lab.until_real(cut, seconds=10), "the page saw no close within 10 s of the kill")
    await live.start()
    await live.publish(t.title(3))  # while the page waits to reconnect
    must(await lab.attempts_by(1, bound_ms(0) + 1000, step=50), "no reconnect after the kill")
    shown = await lab.shows(t.title(3), ms=8000)
    probe = await lab.probe()
    code = probe.sockets[0].code
    must(shown, f"the notification published while the page was away never showed (close {code})")
    last_ids = [s.last_id for s in probe.sockets[1:]]
    must(any(last_ids), f"no reconnect carried last_id: {last_ids}")
    counts = await lab.shown(t.title(1), t.title(2), t.title(3))
    must(all(n == 1 for n in counts.values()), f"shown {counts} times, not once each")
    return (
        f"closed with {code}; back after {gaps(probe.sockets)[0]:.0f} ms with last_id; "
        f"3 notifications, once each"
    )
