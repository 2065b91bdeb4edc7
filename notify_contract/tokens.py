"""Tokens by docs/contract.md section 2, minted with pyjwt: what a judge signs with a key."""

from __future__ import annotations

import time
from typing import Any

import jwt

from notify_contract.protocol import ADMIN_ROLE


def claims_for(user: str, *, admin: bool = False, ttl: float = 3600.0) -> dict[str, Any]:
    """`sub`, `exp` (now + `ttl`) and, for an admin, `role`."""
    claims: dict[str, Any] = {"sub": user, "exp": int(time.time() + ttl)}
    if admin:
        claims["role"] = ADMIN_ROLE
    return claims


def sign(claims: dict[str, Any], key: str, algorithm: str = "HS256") -> str:
    """Exactly these claims, signed with `key` (any claims: the judge's bad tokens too)."""
    return jwt.encode(claims, key, algorithm=algorithm)


def mint(
    user: str, key: str, *, admin: bool = False, ttl: float = 3600.0, algorithm: str = "HS256"
) -> str:
    """A valid token for `user`."""
    return sign(claims_for(user, admin=admin, ttl=ttl), key, algorithm)


class Minter:
    """Tokens signed with one key and algorithm: the judges' (and the playground's) token source."""

    def __init__(self, key: str, algorithm: str = "HS256") -> None:
        self.key = key
        self.algorithm = algorithm

    def mint(self, user: str, *, admin: bool = False, ttl: float | None = None) -> str:
        """A valid token for `user`, for `ttl` seconds (an hour if None)."""
        return mint(user, self.key, admin=admin, ttl=ttl or 3600.0, algorithm=self.algorithm)

    def sign(self, claims: dict[str, Any], key: str | None = None) -> str:
        return sign(claims, key or self.key, self.algorithm)
