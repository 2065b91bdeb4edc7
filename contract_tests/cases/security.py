"""docs/contract.md section 11: Origin, client flood, exact user ids."""

from __future__ import annotations

from websockets.exceptions import InvalidStatus

from contract_tests.cases.helpers import closes_with, connected
from contract_tests.context import Context
from contract_tests.registry import case
from notify_client.client import notifications_until
from notify_contract.codes import CloseCode
from notify_contract.verdicts import Need

FOREIGN = "https://contract-suite.invalid"


@case(
    "origin-allowlist",
    "11.1",
    "a handshake from an Origin outside WS_ALLOWED_ORIGINS is "
    "refused with HTTP 403; allowed and absent Origins are served",
    needs=(Need.TOKENS, Need.ORIGIN),
)
async def origin(ctx: Context) -> None:
    try:
        await ctx.stream(ctx.user(), origin=FOREIGN, label="foreign")
    except InvalidStatus as exc:
        ctx.must(
            exc.response.status_code == 403,
            f"a foreign Origin got HTTP {exc.response.status_code}, not 403",
        )
    else:
        ctx.must(False, f"a handshake with Origin {FOREIGN} was accepted")
    await connected(ctx, ctx.user(), origin=ctx.target.allowed_origin)
    await connected(ctx, ctx.user())


@case(
    "flood-1008",
    "11.2",
    "more than WS_CLIENT_RATE frames a second closes that stream with "
    "1008; the user's other streams go on",
)
async def flood(ctx: Context) -> None:
    user = ctx.user()
    flooder, calm = await connected(ctx, user, label="flooder"), await connected(ctx, user)
    for _ in range(ctx.limits.client_rate * 3):
        await flooder.ping()
    await closes_with(ctx, flooder, CloseCode.POLICY_VIOLATION, "a flood")
    await calm.ping()
    await calm.expect("pong", timeout=ctx.target.frame_timeout)


@case(
    "user-id-exact",
    "11.3",
    "a user id is an exact string, never a pattern",
    needs=(Need.TOKENS, Need.DRIVER),
)
async def user_id_exact(ctx: Context) -> None:
    user = ctx.user("exact")
    stream = await connected(ctx, user)
    for other in ("*", "notifications:*", user[:-1], user + "*", user.upper()):
        await ctx.driver.publish(other, f"for {other}")
    await ctx.driver.publish(user, "end")
    titles = [f.data["title"] for f in await notifications_until(stream, "end")]
    ctx.must(titles == ["end"], f"{user} got notifications for other ids: {titles[:-1]}")
