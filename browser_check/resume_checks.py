"""Client checks of rule 7.5: resume with last_id, the archive after resync, each id once."""

from __future__ import annotations

from typing import Any

from browser_check import frames
from browser_check.lab import Attempt, CheckPage
from browser_check.registry import (
    USER,
    Options,
    ScriptFn,
    Titles,
    bound_ms,
    check,
    must,
)
from notify_contract.codes import (
    CloseCode,
)

# -- 7.5: resume with last_id, the archive after resync, each id once ---------------------------


def replaying(t: Titles) -> ScriptFn:
    """The first socket gets notifications 1 and 2; every later one, as a server resuming
    after last_id would send: 2 again (the last shown) and 3, new."""

    async def script(lab: CheckPage, attempt: Attempt) -> None:
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
async def _resume(lab: CheckPage, options: Options) -> str:
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


async def _resync_script(lab: CheckPage, attempt: Attempt) -> None:
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
async def _resync(lab: CheckPage, options: Options) -> str:
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
