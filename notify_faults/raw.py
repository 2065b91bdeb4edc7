"""What the attacks send and read: raw HTTP heads over a socket, a stream held by an attacker, a
newcomer connecting by the reconnect policy, request bodies sent whole, chunked or trickled;
and how one attack becomes a row."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from websockets.exceptions import InvalidHandshake, InvalidStatus

from notify_client.client import Closed, ProtocolViolation, StreamClient
from notify_client.target import Target, TokenSource
from notify_contract.protocol import NOTIFICATIONS_PATH, WS_NOTIFICATIONS_PATH
from notify_contract.rules import Level, rule
from notify_contract.verdicts import Verdict
from notify_faults.fleet import Archive, Fleet, WsClient
from notify_faults.registry import Attack, Scale, Victim
from notify_faults.table import Row

HEAD_DEADLINE = 10.0  # rule 11.6: a request head not complete by then is closed
SLACK = 3.0  # the closes of hundreds of peers land over a moment
BACK_WITHIN = 20.0  # after an attack, a new user connects by the reconnect policy within this
LEGIT_CONNECT_P99 = 2.0  # seconds: what a legitimate user may wait for `connected` under a flood
EXTRA_HEADERS = 500
ATTACKER_ADDRESS = "127.0.0.2"
CLOSED = "closed without an answer"
BODY_DEADLINE = 10.0  # rule 11.9: a request body not complete by then is ended
OVERSIZED_BODY = 64 * 2**20  # rule 11.8: far past any limit a notification API needs
TRICKLE_BYTES = 60  # at a byte a second, past BODY_DEADLINE and its slack
RSS_GROWTH_MB = 32.0  # the body is refused unread: the server's memory stays about where it was


# -- raw connections -------------------------------------------------------------------------


def target_address(target: Target) -> tuple[str, int, str]:
    parts = urlsplit(target.base)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "127.0.0.1", port, parts.path.rstrip("/") + WS_NOTIFICATIONS_PATH


def upgrade_head(target: Target, *lines: str, key: bool = True, end: bool = True) -> bytes:
    host, port, path = target_address(target)
    head = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Version: 13",
    ]
    if key:
        head.append("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==")
    head += lines
    return ("\r\n".join(head) + ("\r\n\r\n" if end else "\r\n")).encode()


async def raw_connection(target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port, _ = target_address(target)
    source = attacker_address(target)
    return await asyncio.open_connection(host, port, local_addr=(source, 0) if source else None)


async def status_line(target: Target, head: bytes, timeout: float = 10.0) -> str:
    """The status line the target answers `head` with, or how the connection ended."""
    try:
        reader, writer = await asyncio.wait_for(raw_connection(target), timeout)
    except (OSError, TimeoutError) as exc:
        return f"no connection ({type(exc).__name__})"
    try:
        writer.write(head)
        line = await asyncio.wait_for(reader.readline(), timeout)
        return line.decode("latin-1").strip() or CLOSED
    except (OSError, TimeoutError) as exc:
        return f"no answer ({type(exc).__name__})"
    finally:
        writer.close()


async def eof_after(reader: asyncio.StreamReader, since: float, limit: float) -> float | None:
    """Seconds from `since` until the peer closed, or None if not by `limit` seconds."""
    try:
        async with asyncio.timeout(max(0.0, limit - (time.monotonic() - since))):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return None
    except OSError:
        pass
    return time.monotonic() - since


async def new_user_joins(
    target: Target, tokens: TokenSource, name: str
) -> tuple[float | None, str]:
    """A new user connecting by the reconnect policy: seconds until `connected`, or why not."""
    user = f"{name}-{time.time_ns()}"
    archive = Archive(target.base, tokens.mint("faults-admin", admin=True))
    client = WsClient(name, user, target.base, tokens.mint(user), archive, token_in=target.token_in)
    fleet = Fleet([client])
    started = time.monotonic()
    try:
        await fleet.start(timeout=BACK_WITHIN)
        return time.monotonic() - started, ""
    except TimeoutError as exc:
        return None, str(exc)
    finally:
        await fleet.close()
        await archive.aclose()


def needs_tokens(target: Target, row: Row) -> TokenSource | None:
    if target.tokens is None:
        row.outcome, row.observed = (
            Verdict.NOT_RUN,
            "needs tokens: give --jwt-secret or --token-cmd",
        )
    return target.tokens


def attacker_address(target: Target) -> str | None:
    """Attacks come from their own loopback address, as they would from their own host, so
    that a per-address limit (nginx's) can tell them from the legitimate users."""
    host = urlsplit(target.base).hostname or ""
    return ATTACKER_ADDRESS if host.startswith("127.") else None


async def attacker_stream(
    target: Target, token: str, source: str | None = None
) -> StreamClient | str:
    """A stream held open by an attacker, or how the target refused it."""
    try:
        stream = await StreamClient.open(
            target.base,
            WS_NOTIFICATIONS_PATH,
            token,
            open_timeout=10,
            local_address=source,
            token_in=target.token_in,
        )
    except InvalidStatus as exc:
        return f"HTTP {exc.response.status_code}"
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        return type(exc).__name__
    try:
        await stream.expect("connected", timeout=10)
    except (Closed, ProtocolViolation, TimeoutError) as exc:
        stream.ws.transport.abort()
        return f"closed {exc.code}" if isinstance(exc, Closed) else type(exc).__name__
    return stream


# -- request bodies (rules 11.8, 11.9) ------------------------------------------------------


def post_head(target: Target, *lines: str) -> bytes:
    """A publish request's head, without a token: the body must be judged before any auth."""
    host, port, _ = target_address(target)
    path = urlsplit(target.base).path.rstrip("/") + NOTIFICATIONS_PATH
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    return ("\r\n".join([*head, *lines]) + "\r\n\r\n").encode()


@dataclass(frozen=True)
class BodyAnswer:
    """How the target ended one request body: its status line (or how the connection ended),
    the body bytes sent by then, and the seconds from the head."""

    status: str
    sent: int
    after_s: float

    @property
    def ended(self) -> bool:
        return status_code(self.status).startswith("4") or self.status == CLOSED


async def send_body(
    target: Target, head: bytes, pieces: AsyncIterator[bytes], limit: float
) -> BodyAnswer:
    """Sends `head`, then `pieces` while watching for an answer; stops at the first answer, at
    the end of `pieces` (then waits for one), or at `limit` seconds."""
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(raw_connection(target), limit)
    except (OSError, TimeoutError) as exc:
        return BodyAnswer(f"no connection ({type(exc).__name__})", 0, 0.0)
    sent = 0

    async def feed() -> None:
        nonlocal sent
        writer.write(head)
        async for piece in pieces:
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
            # drain() does not yield while the peer keeps up (nginx draining after its 413
            # does): without this the answer is read only once the whole body is sent.
            await asyncio.sleep(0)

    feeding = asyncio.create_task(feed())
    try:
        async with asyncio.timeout(limit):
            line = await reader.readline()
        status = line.decode("latin-1").strip() or CLOSED
    except TimeoutError:
        status = f"no answer within {limit:g} s"
    except OSError:
        status = CLOSED
    finally:
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await feeding
        writer.close()
    return BodyAnswer(status, sent, round(time.monotonic() - started, 2))


async def body_chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    piece = b"%x\r\n%s\r\n" % (size, b"a" * size)
    for _ in range(total // size):
        yield piece
    yield b"0\r\n\r\n"


async def no_body() -> AsyncIterator[bytes]:
    return
    yield b""


async def trickled_body_of(size: int, every: float) -> AsyncIterator[bytes]:
    for _ in range(size):
        yield b"a"
        await asyncio.sleep(every)


def merge(runs: list[tuple[str, Row]], into: Row) -> Row:
    """One table row from the same attack on several paths (directly, through nginx)."""
    for where, r in runs:
        into.problems += [f"{where}: {p}" for p in r.problems]
    recoveries = [r.recovery_s for _, r in runs if r.recovery_s is not None]
    into.recovery_s = max(recoveries) if recoveries else None
    losts = [r.lost for _, r in runs if r.lost is not None]
    into.lost = sum(losts) if losts else None
    dups = [r.duplicates for _, r in runs if r.duplicates is not None]
    into.duplicates = sum(dups) if dups else None
    observed = " | ".join(f"{where}: {r.observed}" for where, r in runs)
    if all(r.outcome is Verdict.NOT_RUN for _, r in runs):
        into.outcome, into.observed = Verdict.NOT_RUN, observed
        return into
    return into.finish(observed)


async def run_attack(attack: Attack, target: Target, scale: Scale, victim: Victim) -> Row:
    """One attack against one target; a row that raises is a failed row, with why. A SHOULD
    rule's row that is not met is non-strict: reported, never a failed run."""
    row = attack.row(scale)
    try:
        row = await asyncio.wait_for(attack.run(target, scale, victim, row), timeout=600)
    except Exception as exc:
        row.problems.append(f"{type(exc).__name__}: {exc}"[:600])
        row.finish("the attack raised")
    if row.outcome is Verdict.FAIL and rule(attack.rule).level is Level.SHOULD:
        row.outcome = Verdict.NON_STRICT
    return row


def status_code(status: str) -> str:
    """The status code of a status line ('' if the connection ended without one)."""
    return status.split(" ", 2)[1] if status.startswith("HTTP/") and " " in status else ""
