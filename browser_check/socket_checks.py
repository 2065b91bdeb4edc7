"""Client checks of rules 7.6 to 7.9 and the real server: the watchdog, one socket at a time,
nothing after sign-out, a new token, jitter, a server killed under the page."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

from browser_check import frames
from browser_check.lab import Attempt, CheckPage, Probe
from browser_check.registry import (
    QUIET_MS,
    SLACK_MS,
    USER,
    Options,
    Requires,
    Titles,
    bound_ms,
    check,
    fmt,
    gaps,
    must,
)
from browser_check.resume_checks import replaying
from notify_contract.codes import (
    CloseCode,
)
from notify_contract.protocol import TOKEN_PARAM
from notify_contract.reconnect import WATCHDOG_BEATS
from notify_contract.verdicts import NotRun

# -- 7.6 / 7.7: the watchdog, one socket at a time, nothing after sign-out ----------------------


async def one_at_a_time(lab: CheckPage, due: int) -> Probe:
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


async def _connected(lab: CheckPage, attempt: Attempt) -> None:
    lab.send(attempt, frames.connected(USER))


async def _silent_stream(lab: CheckPage, options: Options, beats: int) -> tuple[float, bool]:
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
async def _watchdog(lab: CheckPage, options: Options) -> str:
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
async def _one_socket(lab: CheckPage, options: Options) -> str:
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
    needs=(Requires.SIGN_OUT,),
)
async def _sign_out(lab: CheckPage, options: Options) -> str:
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
    needs=(Requires.TOKEN_HOOK,),
    late_close=True,
)
async def _token_change(lab: CheckPage, options: Options) -> str:
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
async def _jitter(lab: CheckPage, options: Options) -> str:
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
    needs=(Requires.LIVE,),
)
async def _server_killed(lab: CheckPage, options: Options) -> str:
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
