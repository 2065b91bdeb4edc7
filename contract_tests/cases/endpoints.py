"""docs/contract.md section 1: the driver API, the archive, token placement, the access log."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from contract_tests.cases.helpers import connected
from contract_tests.context import Context
from contract_tests.registry import case
from notify_client.client import notifications_until
from notify_client.driver import Driver
from notify_client.waiting import until_true
from notify_contract.protocol import (
    ARCHIVE_PATH,
    NOTIFICATIONS_PATH,
    STATS_PATH,
    WS_NOTIFICATIONS_PATH,
)
from notify_contract.verdicts import Need

EXTRA = {"x_probe": {"n": 1.5, "list": [1, "a", None], "text": "grüße"}}


@case(
    "driver-publish",
    "1.1",
    "POST /api/notifications: 201, id and created_at, extra fields carried unchanged",
    needs=(Need.TOKENS, Need.DRIVER_HTTP),
)
async def driver_publish(ctx: Context) -> None:
    user = ctx.user()
    stream = await connected(ctx, user)
    api = Driver(ctx.target.base, ctx.admin)  # this API itself, whatever else publishes
    api.record = lambda direction, text: ctx.note("driver", direction, text)
    try:
        published = await api.publish(user, "probe", **EXTRA)
    finally:
        await api.aclose()
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


NOT_ADMIN_ROLES = ("user", "Admin", "administrator")  # rule 2: exactly "admin" is an admin


@case(
    "http-token-checks",
    "2.5",
    "HTTP endpoints: an expired token gets 401, a role other than exactly `admin` gets 403",
    needs=(Need.SECRET, Need.DRIVER_HTTP),
)
async def http_token_checks(ctx: Context) -> None:
    now = int(time.time())
    expired_admin = ctx.signed({"sub": "contract-admin", "exp": now - 3600, "role": "admin"})
    expired_user = ctx.signed({"sub": ctx.user(), "exp": now - 3600})
    roles = {
        role: ctx.signed({"sub": ctx.user(), "exp": now + 3600, "role": role})
        for role in NOT_ADMIN_ROLES
    }
    body = {"user_id": ctx.user(), "title": "forged", "type": "alert"}
    calls: list[tuple[str, str, str, str, int]] = [
        ("POST", NOTIFICATIONS_PATH, "an admin token expired an hour ago", expired_admin, 401)
    ]
    calls += [
        ("POST", NOTIFICATIONS_PATH, f"role {role!r}", tok, 403) for role, tok in roles.items()
    ]
    if Need.STATS not in ctx.target.without and not ctx.target.stats_public:
        calls.append(("GET", STATS_PATH, "an admin token expired an hour ago", expired_admin, 401))
        calls += [("GET", STATS_PATH, f"role {role!r}", tok, 403) for role, tok in roles.items()]
    if Need.ARCHIVE not in ctx.target.without:
        calls.append(("GET", ARCHIVE_PATH, "a user token expired an hour ago", expired_user, 401))
    async with httpx.AsyncClient(base_url=ctx.target.base, trust_env=False) as http:
        for method, where, label, tok, wanted in calls:
            json = body if method == "POST" else None
            r = await http.request(
                method, where, json=json, headers={"Authorization": f"Bearer {tok}"}
            )
            ctx.note("http", "received", f"{method} {where} with {label}: {r.status_code}")
            ctx.must(
                r.status_code == wanted,
                f"{method} {where} with {label} answered {r.status_code}, not {wanted}",
            )


@case(
    "driver-admin-only",
    "1.2",
    "publishing needs an admin token; refused calls publish nothing",
    needs=(Need.TOKENS, Need.DRIVER_HTTP, Need.DRIVER),
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
    "1.4",
    "GET /api/notifications?after=ID lists the later notifications, oldest first",
    needs=(Need.TOKENS, Need.DRIVER, Need.ARCHIVE),
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


@case("token-in-header", "1.5", "a WebSocket client may send the token as Authorization: Bearer")
async def token_in_header(ctx: Context) -> None:
    await connected(ctx, ctx.user(), token_in="header")


@case(
    "token-not-in-logs",
    "1.6",
    "no token the run used appears in a log line of the server or its proxy, from its first "
    "case to its last",
    needs=(Need.TOKENS, Need.LOGS),
    last=True,
)
async def token_not_logged(ctx: Context) -> None:
    logs = ctx.target.logs
    before = {log: log.stat().st_size if log.exists() else 0 for log in logs}
    user = ctx.user("logged")
    stream = await connected(ctx, user)
    await stream.close()
    for log in logs:
        start = before[log]

        async def written(log: Path = log, start: int = start) -> bool:
            return "/api/ws/notifications" in _since(log, start)

        # nginx logs a WebSocket when it closes, a moment after the client does.
        await until_true(written, 5, f"a line about the stream in {log} within 5 s")
    minted = dict(ctx.shared.minted)
    leaks = []
    for log in logs:
        text = _since(log, ctx.shared.log_start.get(log, 0))
        ctx.note("suite", "note", f"{log}: {len(text)} characters since the run began")
        leaks += [
            f"{who}'s token in {log}"
            for tok, who in minted.items()
            if any(form in text for form in token_forms(tok))
        ]
    ctx.note("suite", "note", f"looked for {len(minted)} tokens the run used")
    ctx.must(not leaks, f"{len(leaks)} tokens in the logs: {'; '.join(leaks[:5])}")


def token_forms(token: str) -> tuple[str, ...]:
    """How a token shows in a log line: its signature (what makes it a credential) as sent, or
    percent-encoded by a client or a proxy. Unsigned tokens have none to look for."""
    signature = token.rsplit(".", 1)[-1]
    if len(signature) < 16:
        return ()
    encoded = "".join(f"%{b:02X}" for b in signature.encode())
    return (signature, encoded, encoded.lower())


def _since(log: Path, offset: int) -> str:
    with log.open(errors="replace") as f:
        f.seek(offset)
        return f.read()


def _no_trace(ctx: Context, what: str, body: str) -> None:
    ctx.must(
        "Traceback" not in body and 'File "' not in body, f"{what}: the body has a stack trace"
    )


@case(
    "http-not-an-upgrade",
    "1.7",
    "a plain GET of a WebSocket path, or a handshake with a wrong Sec-WebSocket-Version, gets a "
    "4xx answer without a stack trace; nothing is accepted",
)
async def http_not_an_upgrade(ctx: Context) -> None:
    query = {"token": ctx.token(ctx.user())}
    bad_version = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "8",
    }
    async with httpx.AsyncClient(base_url=ctx.target.base, trust_env=False) as http:
        for what, headers in (("a GET without Upgrade", {}), ("version 8", bad_version)):
            r = await http.get(WS_NOTIFICATIONS_PATH, params=query, headers=headers)
            ctx.note("http", "received", f"{what}: {r.status_code} {r.text[:200]!r}")
            ctx.must(400 <= r.status_code < 500, f"{what} got HTTP {r.status_code}, not a 4xx")
            _no_trace(ctx, what, r.text)


async def raw_get(base: str, target: str, timeout: float) -> bytes:
    """One HTTP/1.1 GET written by hand: httpx refuses URLs this long. Returns the status line."""
    parts = urlsplit(base)
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    host = parts.hostname or "127.0.0.1"
    context = ssl.create_default_context() if secure else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context), timeout
    )
    try:
        request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
        await writer.wait_closed()


@case(
    "http-huge-url",
    "11.5",
    "a 100 KB URL is refused with a 4xx (or the connection closed), and the server still serves",
)
async def http_huge_url(ctx: Context) -> None:
    path = urlsplit(ctx.target.base).path.rstrip("/") + STATS_PATH + "?x=" + "a" * 100_000
    try:
        status = await raw_get(ctx.target.base, path, ctx.target.frame_timeout * 2)
    except ConnectionError as exc:
        status = f"connection closed: {exc!r}".encode()
    ctx.note("http", "received", f"100 KB URL: {status!r}")
    code = status.split(b" ")[1] if status.startswith(b"HTTP/") else b""
    ctx.must(
        status == b"" or code.startswith(b"4") or status.startswith(b"connection closed"),
        f"a 100 KB URL got {status!r}, not a 4xx",
    )
    await connected(ctx, ctx.user())
