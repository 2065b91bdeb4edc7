"""docs/contract.md sections 3 and 5: task streams."""

from __future__ import annotations

from contract_tests.cases.behaviour import heartbeats, judge_beats
from contract_tests.cases.helpers import closes_with, refused_after_accept
from contract_tests.context import Context
from contract_tests.registry import case
from notify_client.client import Frame, StreamClient
from notify_contract.codes import WS_4403_FORBIDDEN, WS_4404_NOT_FOUND, CloseCode
from notify_contract.protocol import HEARTBEAT_SPAN, WS_TASKS_PATH
from notify_contract.verdicts import Need

PLAIN = (Need.TOKENS, Need.TASKS)
DRIVEN = (Need.TOKENS, Need.DRIVER, Need.TASKS)


def path(task_id: str) -> str:
    return WS_TASKS_PATH.format(task_id=task_id)


async def watch(
    ctx: Context, user: str, task_id: str, *, tok: str | None = None, label: str | None = None
) -> StreamClient:
    stream = await ctx.stream(user, path(task_id), tok=tok, label=label)
    hello = ctx.shape(await stream.expect("connected", timeout=ctx.target.frame_timeout))
    ctx.must(hello.data.get("task_id") == task_id, f"`connected` names task {hello.data}")
    return stream


async def to_the_end(ctx: Context, stream: StreamClient) -> list[Frame]:
    frames = await closes_with(
        ctx, stream, CloseCode.NORMAL_CLOSURE, "a finished task stream", timeout=30
    )
    return [ctx.shape(f) for f in frames if f.type != "heartbeat"]


@case(
    "task-progress-completed",
    "5.4",
    "the owner sees progress steps in order "
    "(progress = 100*step/total), then `completed`, then close 1000",
    needs=DRIVEN,
)
async def task_progress(ctx: Context) -> None:
    owner = ctx.user()
    task_id = await ctx.driver.start_task(ctx.token(owner), total_steps=4, step_interval_ms=100)
    frames = await to_the_end(ctx, await watch(ctx, owner, task_id))
    ctx.must(
        bool(frames) and frames[-1].type == "completed",
        f"the stream did not end with `completed`: {[f.type for f in frames]}",
    )
    ctx.must(all(f.type == "progress" for f in frames[:-1]), "other frames before `completed`")
    steps = [f.data["step"] for f in frames]
    ctx.must(steps == sorted(set(steps)), f"steps out of order or repeated: {steps}")
    for f in frames:
        ctx.must(f.data["task_id"] == task_id, f"a frame of task {f.data['task_id']}")
        expected = 100 * f.data["step"] / f.data["total_steps"]
        ctx.must(
            abs(f.data["progress"] - expected) < 1e-6,
            f"progress {f.data['progress']} at step {f.data['step']}/{f.data['total_steps']}",
        )
    last = frames[-1].data
    ctx.must(
        last["step"] == last["total_steps"] and last["progress"] == 100.0,
        f"`completed` has step {last['step']}/{last['total_steps']}, {last['progress']}%",
    )


@case(
    "task-error",
    "5.4",
    "a failing task sends `error` (task_id, message), then close 1000",
    needs=DRIVEN,
)
async def task_error(ctx: Context) -> None:
    owner = ctx.user()
    task_id = await ctx.driver.start_task(
        ctx.token(owner), total_steps=5, step_interval_ms=50, fail_at_step=2
    )
    frames = await to_the_end(ctx, await watch(ctx, owner, task_id))
    ctx.must(
        bool(frames) and frames[-1].type == "error",
        f"the stream did not end with `error`: {[f.type for f in frames]}",
    )
    ctx.must(frames[-1].data.get("task_id") == task_id, "`error` names another task")


@case(
    "task-forbidden-4403",
    "5.4",
    "another user's task stream is closed with 4403, the task running or ended",
    needs=DRIVEN,
)
async def task_forbidden(ctx: Context) -> None:
    owner = ctx.user()
    running = await ctx.driver.start_task(ctx.token(owner), total_steps=3, step_interval_ms=200)
    intruder = ctx.token(ctx.user("intruder"))
    await refused_after_accept(
        ctx, intruder, WS_4403_FORBIDDEN, "another user's task", path(running)
    )
    ended = await ctx.driver.start_task(ctx.token(owner), total_steps=1, step_interval_ms=0)
    await to_the_end(ctx, await watch(ctx, owner, ended))  # the owner saw it end
    await refused_after_accept(
        ctx, intruder, WS_4403_FORBIDDEN, "another user's ended task", path(ended)
    )


@case("task-unknown-4404", "5.4", "an unknown task is closed with 4404", needs=PLAIN)
async def task_unknown(ctx: Context) -> None:
    await refused_after_accept(
        ctx,
        ctx.token(ctx.user()),
        WS_4404_NOT_FOUND,
        "an unknown task",
        path("no-such-task-" + ctx.shared.run_id),
    )


@case("task-admin-may-watch", "5.4", "an admin may open any task's stream", needs=DRIVEN)
async def task_admin(ctx: Context) -> None:
    task_id = await ctx.driver.start_task(ctx.token(ctx.user()), total_steps=3, step_interval_ms=50)
    await to_the_end(ctx, await watch(ctx, "contract-admin", task_id, tok=ctx.admin))


@case(
    "task-late-subscriber",
    "5.4",
    "a late subscriber first gets the task's latest state",
    needs=DRIVEN,
)
async def task_late(ctx: Context) -> None:
    owner = ctx.user()
    task_id = await ctx.driver.start_task(ctx.token(owner), total_steps=8, step_interval_ms=250)
    early = await watch(ctx, owner, task_id, label="early")
    await early.expect("progress", timeout=ctx.target.frame_timeout)
    second = await early.expect("progress", timeout=ctx.target.frame_timeout)
    late = await watch(ctx, owner, task_id, label="late")
    first = ctx.shape(await late.expect("progress", timeout=ctx.target.frame_timeout))
    ctx.must(
        first.data["step"] >= second.data["step"],
        f"the late subscriber started at step {first.data['step']}, the task was at "
        f"{second.data['step']}",
    )


@case(
    "task-ended-subscriber",
    "5.4",
    "a subscriber after the end gets the end, then close 1000",
    needs=DRIVEN,
)
async def task_ended(ctx: Context) -> None:
    owner = ctx.user()
    task_id = await ctx.driver.start_task(ctx.token(owner), total_steps=2, step_interval_ms=10)
    await to_the_end(ctx, await watch(ctx, owner, task_id, label="first"))
    frames = await to_the_end(ctx, await watch(ctx, owner, task_id, label="after-the-end"))
    ctx.must(
        [f.type for f in frames] == ["completed"],
        f"after the end a subscriber got {[f.type for f in frames]}",
    )


@case(
    "task-no-cross-talk",
    "5.4",
    "progress of one task never reaches another task's stream",
    needs=DRIVEN,
)
async def task_isolation(ctx: Context) -> None:
    owner = ctx.user()
    ids = [
        await ctx.driver.start_task(ctx.token(owner), total_steps=3, step_interval_ms=60)
        for _ in range(3)
    ]
    streams = [await watch(ctx, owner, t, label=f"task{n}") for n, t in enumerate(ids)]
    for task_id, stream in zip(ids, streams, strict=True):
        seen = {f.data.get("task_id") for f in await to_the_end(ctx, stream)}
        ctx.must(seen == {task_id}, f"the stream of {task_id} got frames of {seen - {task_id}}")


@case(
    "task-heartbeat",
    "5.1",
    "a task stream gets heartbeats too, at the same cadence",
    needs=DRIVEN,
    timeout=600,
    estimate=lambda t: (HEARTBEAT_SPAN + 1) * t.limits.heartbeat_interval,
)
async def task_heartbeat(ctx: Context) -> None:
    interval = ctx.limits.heartbeat_interval
    owner = ctx.user()
    # A task that outlasts the heartbeats looked for: 100 steps over (span + 3) intervals.
    step_ms = max(1, int((HEARTBEAT_SPAN + 3) * interval * 1000 / 100))
    task_id = await ctx.driver.start_task(
        ctx.token(owner), total_steps=100, step_interval_ms=step_ms
    )
    stream = await watch(ctx, owner, task_id)
    judge_beats(ctx, await heartbeats(ctx, stream, interval), interval)
