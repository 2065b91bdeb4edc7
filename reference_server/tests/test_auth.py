from __future__ import annotations

import time

import jwt
import pytest

from reference_server.auth import AuthError, TokenVerifier, token_from_request

SECRET = "k" * 64


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(SECRET, "HS256", 4096)


def test_valid_token_gives_user_and_role(verifier: TokenVerifier) -> None:
    p = verifier.verify(verifier.mint("alice", admin=True))
    assert p.user_id == "alice" and p.is_admin and p.expires_at > time.time()
    assert not verifier.verify(verifier.mint("bob")).is_admin


def _sign(claims: dict[str, object], key: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


FUTURE = int(time.time()) + 3600


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "abc",
        "a.b.c",
        _sign({"sub": "alice", "exp": FUTURE}, key="x" * 64),
        _sign({"sub": "alice", "exp": int(time.time()) - 10}),
        _sign({"exp": FUTURE}),
        _sign({"sub": "alice"}),
        _sign({"sub": 42, "exp": FUTURE}),
        _sign({"sub": "", "exp": FUTURE}),
        _sign({"sub": "alice", "exp": FUTURE}, alg="HS512"),
        _sign({"sub": "alice", "exp": FUTURE, "nbf": FUTURE}),
        jwt.encode({"sub": "alice", "exp": FUTURE}, None, algorithm="none"),
        _sign({"sub": "alice", "exp": FUTURE, "pad": "x" * 5000}),
    ],
    ids=[
        "none",
        "empty",
        "garbage",
        "segments",
        "wrong-key",
        "expired",
        "no-sub",
        "no-exp",
        "int-sub",
        "empty-sub",
        "other-alg",
        "nbf-future",
        "alg-none",
        "oversized",
    ],
)
def test_bad_tokens_all_fail_the_same_way(verifier: TokenVerifier, token: str | None) -> None:
    with pytest.raises(AuthError) as info:
        verifier.verify(token)
    if token:
        assert token not in str(info.value)


def test_token_from_query_or_header() -> None:
    assert token_from_request({"token": "q"}, {}) == "q"
    assert token_from_request({}, {"authorization": "Bearer h"}) == "h"
    assert token_from_request({"token": "same"}, {"authorization": "Bearer same"}) == "same"
    assert token_from_request({}, {}) is None
    with pytest.raises(AuthError, match="disagree"):
        token_from_request({"token": "q"}, {"authorization": "Bearer h"})
    with pytest.raises(AuthError, match="malformed"):
        token_from_request({}, {"authorization": "Basic xyz"})
