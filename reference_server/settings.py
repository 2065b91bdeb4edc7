"""Every limit and interval of the server, read once from the environment (contract section 10)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from notify_contract.settings import DEFAULTS


class SettingsError(ValueError):
    """A bad setting; the message names the environment variable."""


class Settings(BaseSettings):
    """Server settings; the environment variable is the field name in upper case."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # docs/contract.md section 10
    ws_heartbeat_interval: float = Field(DEFAULTS.heartbeat_interval, gt=0)
    ws_max_connections_per_user: int = Field(DEFAULTS.max_connections_per_user, ge=1)
    ws_max_message_bytes: int = Field(DEFAULTS.max_message_bytes, ge=64)
    ws_send_queue: int = Field(DEFAULTS.send_queue, ge=1)
    ws_history_size: int = Field(DEFAULTS.history_size, ge=1)
    ws_stats_public: bool = False
    ws_allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    ws_client_rate: int = Field(DEFAULTS.client_rate, ge=1)
    ws_compression: bool = False
    jwt_secret: SecretStr
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"  # JWT_ALGORITHMS
    redis_url: str | None = None
    sse_pubsub_mode: Literal["per-connection", "shared"] = "shared"

    # Extensions of the contract: the reference server's own knobs.
    ws_ping_interval: float = Field(20.0, gt=0)
    ws_ping_timeout: float = Field(20.0, gt=0)
    ws_handshake_timeout: float = Field(5.0, gt=0)
    ws_max_connections: int = Field(0, ge=0)  # 0: the open-file limit less a reserve
    # Request bodies (bodies.py): larger ones get 413 unread, slower ones 408.
    http_max_body_bytes: int = Field(65536, ge=1024)
    http_body_timeout: float = Field(5.0, gt=0)
    # A fan-out frames its item once and writes the bytes to each transport (guard.py); off:
    # one ASGI send, and websockets' framing, per stream.
    ws_prepared_frames: bool = True
    # One timer pings every stream of the process, a slot at a time, with one frame for all
    # (keepalive.py); off: uvicorn's timers and framing per stream.
    ws_ping_sweep: bool = True
    # uvicorn's `loop`: "auto" takes uvloop when it is installed (the `server` extra has it).
    ws_event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    jwt_max_bytes: int = Field(4096, ge=64)
    notifications_archive_size: int = Field(1000, ge=1)
    redis_max_connections: int = Field(20000, ge=2)
    shutdown_timeout: float = Field(10.0, gt=0)
    fanout_chunk: int = Field(200, ge=1)
    presence_ttl: float = Field(15.0, gt=0)
    # Full collections scan every object: with CPython's third threshold (10) they came every
    # few thousand new streams and paused the loop 0.75 s at 10k streams. 100 kept a 10k ramp
    # free of them; 1000 also, but then heavy churn grew memory fast (see README).
    gc_threshold: Annotated[tuple[int, int, int], NoDecode] = (700, 10, 100)
    gc_freeze: bool = False

    @field_validator("ws_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(o.strip() for o in value.split(",") if o.strip())
        return value

    @field_validator("gc_threshold", mode="before")
    @classmethod
    def _split_threshold(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = value.split(",")
            if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
                raise ValueError("must be three whole numbers, e.g. 700,10,1000")
            return tuple(int(p) for p in parts)
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _secret_long_enough(self) -> Settings:
        need = int(self.jwt_algorithm[2:]) // 8  # RFC 7518 3.2: a key at least the hash size
        if len(self.jwt_secret.get_secret_value().encode()) < need:
            raise ValueError(f"JWT_SECRET: must be at least {need} bytes for {self.jwt_algorithm}")
        return self

    @property
    def redis_urls(self) -> tuple[str, ...]:
        """`REDIS_URL` as a list: several Redis instances, each a partition of the bus."""
        if self.redis_url is None:
            return ()
        return tuple(u.strip() for u in self.redis_url.split(",") if u.strip())

    @model_validator(mode="after")
    def _mode_needs_redis(self) -> Settings:
        if self.sse_pubsub_mode == "per-connection" and self.redis_url is None:
            raise ValueError(
                "SSE_PUBSUB_MODE=per-connection needs REDIS_URL: that mode opens one Redis "
                "PubSub connection per SSE client"
            )
        if self.sse_pubsub_mode == "per-connection" and len(self.redis_urls) > 1:
            raise ValueError(
                "SSE_PUBSUB_MODE=per-connection takes one Redis in REDIS_URL: that legacy mode "
                "subscribes each SSE client on its own, and knows no partitions"
            )
        return self


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus overrides); raise SettingsError naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if p != "__root__"]
        name = loc[0].upper() if loc else "settings"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required but not set"
        hide = err["type"] == "missing" or name == "JWT_SECRET" or not loc
        shown = "" if hide else f" (got {err.get('input')!r})"
        lines.append(f"{name}: {msg}{shown}" if loc else msg)
    return "invalid settings: " + "; ".join(lines)
