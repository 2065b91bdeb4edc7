"""CONTRACT.md section 1: the driver API, the archive, token placement, the access log."""

from __future__ import annotations

import asyncio
import time

import httpx

from contract_tests.cases.helpers import connected
from contract_tests.client import notifications_until
from contract_tests.context import Context
from contract_tests.registry import Need, case
from reference_server.protocol import NOTIFICATIONS_PATH

EXTRA = {"x_probe": {"n": 1.5, "list": [1, "a", None], "text": "grüße"}}


@case(
    "driver-publish",
    "1",
    "POST /api/notifications: 201, id and created_at, extra fields carried unchanged",
    needs=(Need.TOKENS, Need.DRIVER_HTTP),
)
async def driver_publish(ctx: Context) -> None:
    user = ctx.user()
    stream = await connected(ctx, user)
    published = await ctx.driver.publish(user, "probe", **EXTRA)
    ctx.must(
        isinstance(published.get("id"), str) and bool(published["id"]),
        f"201 body has no string `id`: {published}",
    )
    ctx.must("created_at" in published, f"201 body has no `created_at`: {published}")
    ctx.must(
        published.get("x_probe") == EXTRA["x_probe"],
        f"extra field changed in the 201 body: {published.get('x_probe')!r}",
    )
    frame = ctx.shape(await stream.expect("notification", timeout=ctx.target.frame_timeout))
    ctx.must(frame.data.get("id") == published["id"], "the frame's id is not the 201 body's id")
    ctx.must(
        frame.data.get("x_probe") == EXTRA["x_probe"],
        f"extra field changed in the frame: {frame.data.get('x_probe')!r}",
    )


@case(
    "driver-admin-only",
    "1",
    "publishing needs an admin token; refused calls publish nothing",
    needs=(Need.TOKENS, Need.DRIVER_HTTP),
)
async def driver_admin_only(ctx: Context) -> None:
    user = ctx.user()
    stream = await connected(ctx, user)
    body = {"user_id": user, "title": "forged", "type": "alert"}
    async with httpx.AsyncClient(base_url=ctx.target.base, trust_env=False) as http:
        for label, headers in (
            ("no token", {}),
            ("a user token", {"Authorization": f"Bearer {ctx.token(ctx.user())}"}),
        ):
            r = await http.post(NOTIFICATIONS_PATH, json=body, headers=headers)
            ctx.note("http", "received", f"POST with {label}: {r.status_code}")
            ctx.must(
                r.status_code in (401, 403),
                f"POST /api/notifications with {label} answered {r.status_code}, not 401/403",
            )
    await ctx.driver.publish(user, "marker")
    got = await notifications_until(stream, "marker", ctx.target.frame_timeout)
    ctx.must(
        [f.data["title"] for f in got] == ["marker"],
        f"a refused publish was delivered: {[f.data['title'] for f in got]}",
    )


@case(
    "archive-after",
    "1",
    "GET /api/notifications?after=ID lists the later notifications, oldest first",
    needs=(Need.TOKENS, Need.DRIVER),
)
async def archive_after(ctx: Context) -> None:
    user = ctx.user()
    ids = [(await ctx.driver.publish(user, f"n{i}"))["id"] for i in range(4)]
    await ctx.driver.publish(ctx.user(), "someone else")
    items = await ctx.driver.after(ctx.token(user), ids[0])
    ctx.must(
        [i.get("id") for i in items] == ids[1:],
        f"after {ids[0]} the archive lists {[i.get('id') for i in items]}, not {ids[1:]}",
    )


@case("token-in-header", "1", "a WebSocket client may send the token as Authorization: Bearer")
async def token_in_header(ctx: Context) -> None:
    await connected(ctx, ctx.user(), token_in="header")


@case(
    "token-not-in-logs",
    "1",
    "the token never appears in a log line of the server or its proxy",
    needs=(Need.TOKENS, Need.LOGS),
)
async def token_not_logged(ctx: Context) -> None:
    logs = ctx.target.logs
    before = {log: log.stat().st_size if log.exists() else 0 for log in logs}
    user = ctx.user("logged")
    tok = ctx.token(user)
    stream = await connected(ctx, user)
    await stream.close()
    signature = tok.rsplit(".", 1)[-1]
    for log in logs:
        text = ""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # nginx logs a WebSocket when it closes
            with log.open(errors="replace") as f:
                f.seek(before[log])
                text = f.read()
            if "/api/ws/notifications" in text:
                break
            await asyncio.sleep(0.05)
        ctx.must(
            "/api/ws/notifications" in text,
            f"no line about the stream appeared in {log} within 5 s",
        )
        ctx.must(signature not in text, f"the token is in {log}")
