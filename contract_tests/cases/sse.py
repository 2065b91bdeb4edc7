"""docs/contract.md section 9: the legacy SSE streams."""

from __future__ import annotations

from contract_tests.context import Context
from contract_tests.registry import case
from notify_client.sse_client import SseStream
from notify_contract.protocol import SSE_NOTIFICATIONS_PATH, SSE_TASKS_PATH
from notify_contract.verdicts import Need

PLAIN = (Need.TOKENS, Need.SSE)
DRIVEN = (Need.TOKENS, Need.DRIVER, Need.SSE)


async def opened(
    ctx: Context, user: str, path: str = SSE_NOTIFICATIONS_PATH, **resume: str
) -> SseStream:
    stream = await ctx.sse(user, path, **resume)
    ctx.must(stream.status == 200, f"GET {path} answered {stream.status}")
    first = await stream.next(ctx.target.frame_timeout)
    ctx.note("sse", "received", f"event: {first.event} id: {first.id} data: {first.data}")
    ctx.must(first.event == "connected", f"the first event is `{first.event}`, not `connected`")
    named = first.data.get("user_id")
    ctx.must(named == user, f"`connected` names user {named!r}, not {user!r}")
    return stream


@case(
    "sse-headers",
    "9.1",
    "text/event-stream with Cache-Control: no-cache and X-Accel-Buffering: no",
    needs=PLAIN,
)
async def sse_headers(ctx: Context) -> None:
    stream = await opened(ctx, ctx.user())
    headers = stream.headers
    ctx.must(
        headers.get("content-type", "").startswith("text/event-stream"),
        f"Content-Type is {headers.get('content-type')!r}",
    )
    ctx.must(
        headers.get("cache-control") == "no-cache",
        f"Cache-Control is {headers.get('cache-control')!r}",
    )
    ctx.must(
        headers.get("x-accel-buffering") == "no",
        f"X-Accel-Buffering is {headers.get('x-accel-buffering')!r}",
    )


@case(
    "sse-notification",
    "9.2",
    "`event: notification` with `id:` = the notification id and the notification as data",
    needs=DRIVEN,
)
async def sse_notification(ctx: Context) -> None:
    user = ctx.user()
    stream = await opened(ctx, user)
    sent = await ctx.driver.publish(user, "over sse")
    got = await stream.expect("notification", timeout=ctx.target.frame_timeout)
    ctx.must(got.id == sent["id"], f"`id:` is {got.id!r}, the notification is {sent['id']!r}")
    ctx.must(
        got.data.get("id") == sent["id"] and got.data.get("title") == "over sse",
        f"data is {got.data}",
    )


@case(
    "sse-heartbeat",
    "9.2",
    "`event: heartbeat` on SSE streams",
    timeout=120,
    needs=PLAIN,
    estimate=lambda t: t.limits.heartbeat_interval,
)
async def sse_heartbeat(ctx: Context) -> None:
    stream = await opened(ctx, ctx.user())
    wait = ctx.limits.heartbeat_interval * 1.5 + ctx.target.frame_timeout
    beat = await stream.expect("heartbeat", timeout=wait, skip=())
    stamp = beat.data.get("timestamp")
    ctx.must(isinstance(stamp, str) and bool(stamp), f"the heartbeat's data is {beat.data}")


@case("sse-resume", "9.3", "resume with the Last-Event-ID header or ?last_id=", needs=DRIVEN)
async def sse_resume(ctx: Context) -> None:
    user = ctx.user()
    ids = [(await ctx.driver.publish(user, f"n{i}"))["id"] for i in range(3)]
    for how in ("last_event_id", "last_id"):
        stream = await opened(ctx, user, **{how: ids[0]})
        got = [
            (await stream.expect("notification", timeout=ctx.target.frame_timeout)).id
            for _ in range(2)
        ]
        ctx.must(got == ids[1:], f"resumed with {how} after {ids[0]}: got {got}")


@case(
    "sse-task-stream",
    "9.2",
    "task SSE streams send progress and `completed`, then end",
    needs=DRIVEN,
)
async def sse_task(ctx: Context) -> None:
    owner = ctx.user()
    task_id = await ctx.driver.start_task(ctx.token(owner), total_steps=3, step_interval_ms=50)
    stream = await opened(ctx, owner, SSE_TASKS_PATH.format(task_id=task_id))
    events = [e.event for e in await stream.until_end(timeout=30) if e.event != "heartbeat"]
    ctx.must(
        bool(events) and events[-1] == "completed" and set(events[:-1]) <= {"progress"},
        f"task SSE events: {events}",
    )
