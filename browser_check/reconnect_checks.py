"""Client checks of rules 7.1 to 7.4: final codes, the back-off count, reconnecting after a
server-side close."""

from __future__ import annotations

from browser_check import frames
from browser_check.lab import Attempt, CheckPage
from browser_check.registry import (
    POLICY,
    QUIET_MS,
    SLACK_MS,
    USER,
    CheckFn,
    Options,
    ScriptFn,
    bound_ms,
    check,
    fmt,
    gaps,
    must,
)
from notify_contract.codes import (
    WS_4401_UNAUTHORIZED,
    WS_4403_FORBIDDEN,
    WS_4404_NOT_FOUND,
    WS_4408_SLOW_CONSUMER,
    WS_4429_TOO_MANY_CONNECTIONS,
    CloseCode,
)

# -- 7.2: final codes --------------------------------------------------------------------------


def _closes_with(code: int) -> ScriptFn:
    async def script(lab: CheckPage, attempt: Attempt) -> None:
        await lab.close(attempt, code)

    return script


def _final(code: int) -> CheckFn:
    async def run(lab: CheckPage, options: Options) -> str:
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
    async def run(lab: CheckPage, options: Options) -> str:
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
    async def script(lab: CheckPage, attempt: Attempt) -> None:
        lab.send(attempt, frames.connected(USER))
        if attempt.n == 0:
            await lab.close(attempt, code)

    return script


def _reconnects(code: int) -> CheckFn:
    async def run(lab: CheckPage, options: Options) -> str:
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
