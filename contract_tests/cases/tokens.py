"""CONTRACT.md section 2: every token failure is the same 4401 after accept, nothing delivered."""

from __future__ import annotations

import secrets
import time

import jwt

from contract_tests.cases.helpers import closes_with, connected, refused_after_accept
from contract_tests.context import Context
from contract_tests.registry import Need, case
from reference_server.protocol import CloseCode

UNAUTHORIZED = CloseCode.UNAUTHORIZED


def _later() -> int:
    return int(time.time()) + 3600


@case("token-missing", "2", "no token: 4401", needs=())
async def token_missing(ctx: Context) -> None:
    await refused_after_accept(ctx, None, UNAUTHORIZED, "no token")


@case("token-malformed", "2", "a malformed token: 4401", needs=())
async def token_malformed(ctx: Context) -> None:
    for bad in ("not-a-jwt", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..."):
        await refused_after_accept(ctx, bad, UNAUTHORIZED, f"token {bad!r}")


@case("token-wrong-key", "2", "a token signed with another key: 4401", needs=())
async def token_wrong_key(ctx: Context) -> None:
    tok = jwt.encode({"sub": ctx.user(), "exp": _later()}, secrets.token_hex(32), "HS256")
    await refused_after_accept(ctx, tok, UNAUTHORIZED, "a token signed with another key")


@case("token-alg-none", "2", "an unsigned token (alg: none): 4401", needs=())
async def token_alg_none(ctx: Context) -> None:
    tok = jwt.encode({"sub": ctx.user(), "exp": _later(), "role": "admin"}, None, "none")
    await refused_after_accept(ctx, tok, UNAUTHORIZED, "alg none")


@case("token-expired", "2", "an expired token: 4401", needs=(Need.SECRET,))
async def token_expired(ctx: Context) -> None:
    tok = ctx.signed({"sub": ctx.user(), "exp": int(time.time()) - 60})
    await refused_after_accept(ctx, tok, UNAUTHORIZED, "an expired token")


@case(
    "token-claims-missing",
    "2",
    "a token without `sub` or `exp`, or a non-string `sub`: 4401",
    needs=(Need.SECRET,),
)
async def token_claims_missing(ctx: Context) -> None:
    for what, claims in (
        ("no sub", {"exp": _later()}),
        ("no exp", {"sub": ctx.user()}),
        ("numeric sub", {"sub": 12345, "exp": _later()}),
    ):
        await refused_after_accept(ctx, ctx.signed(claims), UNAUTHORIZED, f"a token with {what}")


@case("token-oversized", "2", "an oversized (6 KB) token: 4401", needs=(Need.SECRET,))
async def token_oversized(ctx: Context) -> None:
    tok = ctx.signed({"sub": ctx.user(), "exp": _later(), "pad": "x" * 4500})
    ctx.must(len(tok) > 6000, "the oversized token came out too small")
    await refused_after_accept(ctx, tok, UNAUTHORIZED, "an oversized token", token_in="header")


@case(
    "token-expires-while-connected",
    "2",
    "a token that expires while connected closes the stream with 4401",
    needs=(Need.SECRET,),
    timeout=30,
)
async def token_expires(ctx: Context) -> None:
    user = ctx.user()
    stream = await connected(ctx, user, tok=ctx.token(user, ttl=2))
    await closes_with(
        ctx, stream, UNAUTHORIZED, "an expiring token", timeout=5 + ctx.target.frame_timeout
    )
