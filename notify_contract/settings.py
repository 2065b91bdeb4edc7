"""The contract's settings and their defaults (docs/contract.md section 10).

`Limits` is what a judge must know of a target: the defaults unless the target says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

# Every variable of the table, with its default as the table writes it (None: required or unset).
SETTINGS: Final[dict[str, str | None]] = {
    "WS_HEARTBEAT_INTERVAL": "30",
    "WS_MAX_CONNECTIONS_PER_USER": "3",
    "WS_MAX_MESSAGE_BYTES": "65536",
    "WS_SEND_QUEUE": "256",
    "WS_HISTORY_SIZE": "100",
    "WS_STATS_PUBLIC": "false",
    "WS_ALLOWED_ORIGINS": None,
    "WS_CLIENT_RATE": "10",
    "WS_COMPRESSION": "false",
    "JWT_SECRET": None,
    "JWT_ALGORITHM": "HS256",
    "REDIS_URL": None,
    "SSE_PUBSUB_MODE": "shared",
}
JWT_ALGORITHMS: Final = ("HS256", "HS384", "HS512")


@dataclass(frozen=True, slots=True)
class Limits:
    """The numeric settings a judge needs, at their defaults; field `x` is variable `WS_X`."""

    heartbeat_interval: float = 30.0
    max_connections_per_user: int = 3
    max_message_bytes: int = 65536
    send_queue: int = 256
    history_size: int = 100
    client_rate: int = 10

    def by_env(self) -> dict[str, float | int]:
        """The values keyed by their environment variable."""
        return {f"WS_{f.name.upper()}": getattr(self, f.name) for f in fields(self)}


DEFAULTS: Final = Limits()
