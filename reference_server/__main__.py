"""`python -m reference_server`: serve, or mint a token to try it with."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from reference_server.auth import TokenVerifier
from reference_server.logs import log_config
from reference_server.settings import Settings, SettingsError, load_settings


def _serve_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m reference_server",
        description="Reference WebSocket notification server (settings: see README).",
        epilog="`python -m reference_server token USER [--admin]` prints a token instead.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--uds", help="listen on this unix socket instead of host:port")
    parser.add_argument("--workers", type=int, default=1, help="processes (needs REDIS_URL)")
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def _token_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m reference_server token",
        description="Print a JWT signed with JWT_SECRET / JWT_ALGORITHM.",
    )
    parser.add_argument("user", help="the `sub` claim")
    parser.add_argument("--admin", action="store_true", help='add `role: "admin"`')
    parser.add_argument("--ttl", type=float, default=3600.0, help="seconds until `exp`")
    return parser.parse_args(argv)


def check_workers(settings: Settings, workers: int) -> None:
    if workers > 1 and settings.redis_url is None:
        raise SettingsError(
            f"--workers {workers} needs REDIS_URL: without Redis each process would see only "
            "its own connections"
        )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["token"]:
            targs = _token_args(argv[1:])
            settings = load_settings()
            verifier = TokenVerifier(
                settings.jwt_secret.get_secret_value(),
                settings.jwt_algorithm,
                settings.jwt_max_bytes,
            )
            print(verifier.mint(targs.user, admin=targs.admin, ttl=targs.ttl))
            return 0
        args = _serve_args(argv)
        settings = load_settings()  # fail here, with the variable's name, not in a worker
        check_workers(settings, args.workers)
    except SettingsError as exc:
        print(f"reference_server: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        "reference_server.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        uds=args.uds,
        workers=args.workers,
        loop=settings.ws_event_loop,
        # Below the app (guard.py): a deadline for request heads, a connection cap, and an
        # answer to a handshake websockets cannot parse.
        ws="reference_server.guard:GuardedWebSocketProtocol",
        http="reference_server.guard:GuardedH11Protocol",
        ws_max_size=settings.ws_max_message_bytes,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        ws_per_message_deflate=settings.ws_compression,
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        log_config=log_config(args.log_level, access_log=not args.no_access_log),
        access_log=not args.no_access_log,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
