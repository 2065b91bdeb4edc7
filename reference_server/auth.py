"""Token verification (docs/contract.md section 2): one decoder, pinned algorithm, one failure."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from reference_server.protocol import TOKEN_PARAM


class AuthError(Exception):
    """Any token problem. The message is safe to show: it never echoes the token."""


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    is_admin: bool
    expires_at: float


class TokenVerifier:
    """Decodes tokens with the configured key and algorithm only."""

    def __init__(self, secret: str, algorithm: str, max_bytes: int) -> None:
        self._secret = secret
        self._algorithms = [algorithm]
        self._max_bytes = max_bytes

    def verify(self, token: str | None) -> Principal:
        if not token:
            raise AuthError("missing token")
        if len(token) > self._max_bytes:
            raise AuthError("token too large")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=self._algorithms,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.PyJWTError:
            raise AuthError("invalid token") from None
        sub = claims.get("sub")
        exp = claims.get("exp")
        if not isinstance(sub, str) or not sub or not isinstance(exp, int | float):
            raise AuthError("invalid token")
        return Principal(user_id=sub, is_admin=claims.get("role") == "admin", expires_at=float(exp))

    def mint(self, user_id: str, *, admin: bool = False, ttl: float = 3600.0) -> str:
        """A token for `user_id`; used by `python -m reference_server token` and the tests."""
        claims: dict[str, Any] = {"sub": user_id, "exp": int(time.time() + ttl)}
        if admin:
            claims["role"] = "admin"
        return jwt.encode(claims, self._secret, algorithm=self._algorithms[0])


def token_from_request(query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
    """The token from `?token=` or `Authorization: Bearer`; two different ones are refused."""
    from_query = query.get(TOKEN_PARAM) or None
    from_header = None
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("malformed Authorization header")
        from_header = value.strip()
    if from_query is not None and from_header is not None and from_query != from_header:
        raise AuthError("token in query and header disagree")
    return from_query or from_header
