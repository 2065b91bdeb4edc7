"""docs/contract.md section 8: connection statistics."""

from __future__ import annotations

import httpx

from contract_tests.cases.helpers import connected
from contract_tests.context import Context
from contract_tests.registry import case
from notify_client.driver import auth_header
from notify_client.waiting import until_true
from notify_contract.protocol import STATS_PATH
from notify_contract.verdicts import Need


async def _get(ctx: Context, token: str | None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=ctx.target.base, trust_env=False) as http:
        response = await http.get(STATS_PATH, headers=auth_header(token))
    ctx.note("http", "received", f"GET {STATS_PATH}: {response.status_code} {response.text[:300]}")
    return response


@case(
    "stats-access",
    "8.2",
    "stats need an admin token; with WS_STATS_PUBLIC (--stats-public) no token at all",
    needs=(Need.STATS,),
)
async def stats_access(ctx: Context) -> None:
    if ctx.target.stats_public:
        response = await _get(ctx, None)
        ctx.must(response.status_code == 200, f"public stats answered {response.status_code}")
        return
    for label, token in (("no token", None), ("a user token", ctx.token(ctx.user()))):
        status = (await _get(ctx, token)).status_code
        ctx.must(status in (401, 403), f"stats with {label} answered {status}, not 401/403")
    ctx.must((await _get(ctx, ctx.admin)).status_code == 200, "stats refused an admin token")


@case(
    "stats-count-streams",
    "8.1",
    "stats count each user's open notification streams; totals add up",
    needs=(Need.TOKENS, Need.STATS),
)
async def stats_counts(ctx: Context) -> None:
    a, b = ctx.user("a"), ctx.user("b")
    a_streams = [
        await connected(ctx, a) for _ in range(min(2, ctx.limits.max_connections_per_user))
    ]
    await connected(ctx, b)
    token = None if ctx.target.stats_public else ctx.admin
    body = (await _get(ctx, token)).json()
    ctx.must(
        set(body) >= {"total_users", "total_connections", "users"},
        f"stats body lacks fields: {sorted(body)}",
    )
    users = body["users"]
    ctx.must(
        users.get(a) == len(a_streams) and users.get(b) == 1,
        f"stats count {users.get(a)} and {users.get(b)}, open are {len(a_streams)} and 1",
    )
    ctx.must(body["total_connections"] == sum(users.values()), "total_connections != sum(users)")
    ctx.must(body["total_users"] == len(users), "total_users != len(users)")
    await a_streams[0].close()

    async def dropped() -> bool:
        return bool((await _get(ctx, token)).json()["users"].get(a) == len(a_streams) - 1)

    await until_true(dropped, 5, "stats never counted the closed stream out")
