"""docs/contract.md section 2: every bad token is the same 4401 after accept, nothing delivered."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

import jwt

from contract_tests.cases.helpers import closes_with, connected, refused_after_accept
from contract_tests.context import Context
from contract_tests.registry import case
from notify_client.client import Closed
from notify_contract.codes import WS_4401_UNAUTHORIZED, describe
from notify_contract.verdicts import Need

UNAUTHORIZED = WS_4401_UNAUTHORIZED

# Any RSA public key will do: the attack signs HS256 with the server's *public* key, hoping a
# server that also accepts RS256 uses that PEM as the HMAC secret (algorithm confusion).
RSA_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEArqc0qDivbWcpKkvBfHGh
8UQCPRLOti+f2FQSTocMyf7Hp8Yoa6jgoOTHx1GW/QXbSBSPhfu+0D6N4W/sAnhb
XB+ilnhIttP+bDvJeX4uqaNDLGTMAbWs3Y3LzGa29W6bGVqSODaR16LtIkOnQhlS
6mqQCWj4mRTxxjuahSz8waOBx+konmtqNgDUcVmRo5bGzvB39rUN9LZwCvez0q6W
H9p1FJdju4fW2Gkyp6eHy5ftgmHPiVBnYZUEnum1DhanXk6AfHS9g/OoD8VFXj1f
laJ+Ncl6znX4jTgHyCoDV+bK8zmLkYV5l72mMC27NpQ6yYPTSJJUgrIRV1gwPl+R
awIDAQAB
-----END PUBLIC KEY-----
"""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256_with_raw_key(claims: dict[str, object], key: bytes) -> str:
    """HS256 by hand: PyJWT refuses a PEM as an HMAC secret, which is what the attack needs."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


def _later() -> int:
    return int(time.time()) + 3600


@case("token-missing", "2.1", "no token: 4401", needs=())
async def token_missing(ctx: Context) -> None:
    await refused_after_accept(ctx, None, UNAUTHORIZED, "no token")


@case("token-malformed", "2.1", "a malformed token: 4401", needs=())
async def token_malformed(ctx: Context) -> None:
    for bad in ("not-a-jwt", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..."):
        await refused_after_accept(ctx, bad, UNAUTHORIZED, f"token {bad!r}")


@case("token-wrong-key", "2.1", "a token signed with another key: 4401", needs=())
async def token_wrong_key(ctx: Context) -> None:
    tok = jwt.encode({"sub": ctx.user(), "exp": _later()}, secrets.token_hex(32), "HS256")
    await refused_after_accept(ctx, tok, UNAUTHORIZED, "a token signed with another key")


@case("token-alg-none", "2.1", "an unsigned token (alg: none): 4401", needs=())
async def token_alg_none(ctx: Context) -> None:
    tok = jwt.encode({"sub": ctx.user(), "exp": _later(), "role": "admin"}, None, "none")
    await refused_after_accept(ctx, tok, UNAUTHORIZED, "alg none")


@case(
    "token-hs256-public-key",
    "2.1",
    "HS256 signed with an RSA public key as the secret (algorithm confusion): 4401",
    needs=(),
)
async def token_public_key(ctx: Context) -> None:
    claims: dict[str, object] = {"sub": ctx.user(), "exp": _later(), "role": "admin"}
    tok = hs256_with_raw_key(claims, RSA_PUBLIC_PEM)
    await refused_after_accept(ctx, tok, UNAUTHORIZED, "HS256 keyed with an RSA public key")


@case("token-expired", "2.1", "an expired token: 4401", needs=(Need.SECRET,))
async def token_expired(ctx: Context) -> None:
    tok = ctx.signed({"sub": ctx.user(), "exp": int(time.time()) - 60})
    await refused_after_accept(ctx, tok, UNAUTHORIZED, "an expired token")


@case(
    "token-claims-missing",
    "2.1",
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


@case(
    "token-not-yet-valid", "2.1", "a token whose `nbf` is in the future: 4401", needs=(Need.SECRET,)
)
async def token_not_yet_valid(ctx: Context) -> None:
    tok = ctx.signed({"sub": ctx.user(), "exp": _later(), "nbf": int(time.time()) + 600})
    await refused_after_accept(ctx, tok, UNAUTHORIZED, "a token valid only from 10 minutes on")


@case(
    "token-oversized",
    "2.1",
    "an oversized (6 KB) token in the header: 4401",
    needs=(Need.SECRET,),
)
async def token_oversized(ctx: Context) -> None:
    await _oversized(ctx, 6_000, ("header",))


@case(
    "token-16kb",
    "2.2",
    "a 16 KB token in the query and in the header: 4401 (a proxy's default header buffers, "
    "8 KB in nginx, answer 414 or 400 first: raise them)",
    needs=(Need.SECRET,),
)
async def token_16kb(ctx: Context) -> None:
    await _oversized(ctx, 16_000, ("query", "header"), tolerated=PROXY_REFUSALS)


# What a proxy with small header buffers answers before the server sees a 16 KB token.
PROXY_REFUSALS = (400, 414, 431, 494)


async def _oversized(
    ctx: Context, size: int, places: tuple[str, ...], tolerated: tuple[int, ...] = ()
) -> None:
    tok = ctx.signed({"sub": ctx.user(), "exp": _later(), "pad": "x" * (size * 3 // 4)})
    ctx.must(len(tok) > size, f"the {size // 1000} KB token came out too small")
    for token_in in places:
        what = f"a {len(tok) // 1000} KB token in the {token_in}"
        await refused_after_accept(
            ctx, tok, UNAUTHORIZED, what, token_in=token_in, tolerated=tolerated
        )


@case(
    "token-query-header-disagree",
    "2.3",
    "a stream whose query token and Authorization header name different users: 4401",
)
async def token_disagree(ctx: Context) -> None:
    header = {"Authorization": f"Bearer {ctx.token(ctx.user('header'))}"}
    tok = ctx.token(ctx.user("query"))
    stream = await ctx.stream(None, tok=tok, label="two tokens", extra_headers=header)
    try:
        first = await stream.recv(ctx.target.frame_timeout * 2)
    except Closed:
        ctx.must(
            stream.close_code == UNAUTHORIZED,
            f"two tokens: awaited close 4401, got {describe(stream.close_code)}",
        )
        return
    ctx.must(first.type == "connected", f"two tokens: the first frame is `{first.type}`")
    ctx.should(False, f"two tokens: served as {first.data.get('user_id')!r}, not closed 4401")


@case(
    "token-expires-while-connected",
    "2.4",
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
