"""Attack rows about request bodies (rules 11.8 and 11.9): one far over the limit, one trickled a
byte a second."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from notify_client.target import Target
from notify_faults.raw import (
    BODY_DEADLINE,
    OVERSIZED_BODY,
    RSS_GROWTH_MB,
    SLACK,
    TRICKLE_BYTES,
    BodyAnswer,
    body_chunks,
    needs_tokens,
    new_user_joins,
    no_body,
    post_head,
    send_body,
    trickled_body_of,
)
from notify_faults.registry import Scale, Victim, attack
from notify_faults.table import Facts, Row


@dataclass
class BodyFacts(Facts):
    declared: BodyAnswer
    chunked: BodyAnswer
    server_rss_mb: list[float] = field(default_factory=list)


@attack(
    "oversized-body",
    rule="11.8",
    title=f"a POST of {OVERSIZED_BODY // 2**20} MB without a token, declared and then chunked",
    expected="refused (a 4xx or a closed connection) before the body is read: the declared one "
    "with none of it sent, the chunked one long before its end; server memory grows by less than "
    f"{RSS_GROWTH_MB:g} MB (with its pid); a new user connects",
    ci=True,
)
async def oversized_body(target: Target, scale: Scale, victim: Victim, row: Row) -> Row:
    tokens = needs_tokens(target, row)
    if tokens is None:
        return row
    rss = [r for r in [victim.rss_mb()] if r is not None]
    declared = await send_body(
        target, post_head(target, f"Content-Length: {OVERSIZED_BODY}"), no_body(), BODY_DEADLINE
    )
    chunked = await send_body(
        target,
        post_head(target, "Transfer-Encoding: chunked"),
        body_chunks(OVERSIZED_BODY),
        BODY_DEADLINE,
    )
    rss += [r for r in [victim.rss_mb()] if r is not None]
    row.facts = BodyFacts(declared, chunked, rss)
    row.check(declared.ended, f"declared {OVERSIZED_BODY} bytes, sent none: {declared.status!r}")
    row.check(
        chunked.ended and chunked.sent < OVERSIZED_BODY,
        f"chunked: {chunked.status!r} after {chunked.sent} of {OVERSIZED_BODY} bytes",
    )
    if len(rss) == 2:
        row.check(rss[1] - rss[0] < RSS_GROWTH_MB, f"server memory {rss[0]} -> {rss[1]} MB")
    joined, why = await new_user_joins(target, tokens, f"{row.id}-newcomer")
    row.check(joined is not None, f"no new user could connect afterwards: {why}")
    memory = f"; server memory {rss[0]} -> {rss[1]} MB" if len(rss) == 2 else ""
    return row.finish(
        f"declared: {declared.status!r} in {declared.after_s} s; chunked: {chunked.status!r} "
        f"after {chunked.sent // 1024} KB{memory}; afterwards "
        + ("a new user connected" if joined is not None else "no new user could connect")
    )


@dataclass
class TrickleFacts(Facts):
    answer: BodyAnswer


@attack(
    "trickled-body",
    rule="11.9",
    title=f"a POST body of {TRICKLE_BYTES} bytes sent a byte a second, without a token",
    expected=f"answered (a 4xx, 408) or closed within {BODY_DEADLINE:g} s of its head; a new "
    "user connects meanwhile",
    ci=True,
)
async def trickled_body(target: Target, scale: Scale, victim: Victim, row: Row) -> Row:
    tokens = needs_tokens(target, row)
    if tokens is None:
        return row
    trickled = asyncio.create_task(
        send_body(
            target,
            post_head(target, f"Content-Length: {TRICKLE_BYTES}"),
            trickled_body_of(TRICKLE_BYTES, 1.0),
            BODY_DEADLINE + SLACK,
        )
    )
    joined, why = await new_user_joins(target, tokens, f"{row.id}-newcomer")
    answer = await trickled
    row.facts = TrickleFacts(answer)
    row.recovery_s = answer.after_s if answer.ended else None
    row.check(answer.ended, f"{answer.status!r} after {answer.sent} bytes in {answer.after_s} s")
    row.check(
        answer.after_s <= BODY_DEADLINE + SLACK,
        f"ended {answer.after_s} s after its head, past {BODY_DEADLINE:g} s",
    )
    row.check(joined is not None, f"a new user could not connect meanwhile: {why}")
    return row.finish(
        f"{answer.status!r} after {answer.sent} of {TRICKLE_BYTES} bytes, {answer.after_s} s "
        "after its head; "
        + ("a new user connected meanwhile" if joined is not None else "no new user connected")
    )
