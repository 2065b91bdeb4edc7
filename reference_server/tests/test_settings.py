from __future__ import annotations

import pytest

from reference_server.settings import SettingsError, load_settings

SECRET = "s" * 40


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("WS_", "JWT_", "SSE_", "REDIS_", "GC_")):
            monkeypatch.delenv(name)


def test_defaults_are_the_contract_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    s = load_settings()
    assert (s.ws_heartbeat_interval, s.ws_max_connections_per_user, s.ws_max_message_bytes) == (
        30.0,
        3,
        65536,
    )
    assert (s.ws_send_queue, s.ws_history_size, s.ws_client_rate) == (256, 100, 10)
    assert s.ws_stats_public is False and s.ws_compression is False
    assert s.ws_allowed_origins == ()
    assert s.jwt_algorithm == "HS256" and s.redis_url is None and s.sse_pubsub_mode == "shared"


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("WS_HEARTBEAT_INTERVAL", "0.25")
    monkeypatch.setenv("WS_ALLOWED_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("WS_STATS_PUBLIC", "true")
    s = load_settings()
    assert s.ws_heartbeat_interval == 0.25
    assert s.ws_allowed_origins == ("https://a.example", "https://b.example")
    assert s.ws_stats_public is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WS_HEARTBEAT_INTERVAL", "-1"),
        ("WS_HEARTBEAT_INTERVAL", "soon"),
        ("WS_MAX_CONNECTIONS_PER_USER", "0"),
        ("WS_SEND_QUEUE", "many"),
        ("JWT_ALGORITHM", "none"),
        ("SSE_PUBSUB_MODE", "sometimes"),
        ("WS_STATS_PUBLIC", "maybe"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()


def test_missing_secret_is_named_and_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="JWT_SECRET: is required"):
        load_settings()
    monkeypatch.setenv("JWT_SECRET", "")
    with pytest.raises(SettingsError, match="JWT_SECRET") as info:
        load_settings()
    assert "got" not in str(info.value)


def test_per_connection_mode_needs_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("SSE_PUBSUB_MODE", "per-connection")
    with pytest.raises(SettingsError, match="REDIS_URL"):
        load_settings()
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert load_settings().sse_pubsub_mode == "per-connection"


def test_short_secret_is_refused_for_its_algorithm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", "short")
    with pytest.raises(SettingsError, match="JWT_SECRET: must be at least 32 bytes"):
        load_settings()
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("JWT_ALGORITHM", "HS512")
    with pytest.raises(SettingsError, match="64 bytes for HS512"):
        load_settings()


def test_gc_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    assert load_settings().gc_threshold == (700, 10, 100)
    monkeypatch.setenv("GC_THRESHOLD", "5000,20,100")
    assert load_settings().gc_threshold == (5000, 20, 100)
    monkeypatch.setenv("GC_THRESHOLD", "lots")
    with pytest.raises(SettingsError, match="GC_THRESHOLD: must be three whole numbers"):
        load_settings()
