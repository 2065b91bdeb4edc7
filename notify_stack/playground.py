"""`nox -s serve`: the stack in the foreground for a person to try, with tokens printed.

    python -m notify_stack.playground [--redis] [--instances N] [--nginx] [--port P]

Settings for the servers come from the environment as usual (JWT_SECRET defaults to a
development secret here, and only here).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading

from notify_contract.settings import DEFAULTS
from notify_contract.tokens import Minter
from notify_stack.stack import StackError, StackSpec, scratch_dir, stack

DEV_SECRET = "playground-secret-do-not-use-in-production-0123456789"


def main(argv: list[str] | None = None, prog: str = "python -m notify_stack.playground") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0],
        epilog="examples: %(prog)s; %(prog)s --redis --instances 2",
    )
    parser.add_argument("--redis", action="store_true", help="start redis-server and use it")
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="server processes on consecutive ports (more than 1 needs --redis)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port of the first instance")
    parser.add_argument(
        "--nginx",
        action="store_true",
        help="put nginx (nginx_conf/) in front of the instances, on port - 1",
    )
    args = parser.parse_args(argv)
    if args.instances > 1 and not args.redis:
        parser.error(
            "--instances above 1 needs --redis: each process would see only its own connections"
        )
    env = {k: v for k, v in os.environ.items() if k.startswith(("WS_", "JWT_", "SSE_"))}
    env.setdefault("JWT_SECRET", DEV_SECRET)
    # A bad setting stops the first server, whose log (naming the variable) the error shows.
    verifier = Minter(env["JWT_SECRET"], env.get("JWT_ALGORITHM", "HS256"))
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    spec = StackSpec(
        settings=env,
        instances=args.instances,
        redis=args.redis,
        nginx=args.nginx,
        first_port=args.port,
        nginx_port=args.port - 1,
        secret=env["JWT_SECRET"],
    )
    with scratch_dir("playground-") as logs, contextlib.ExitStack() as running:
        try:
            st = running.enter_context(stack(logs, spec))
        except StackError as exc:
            print(f"playground: {exc}", file=sys.stderr)
            return 1
        if st.redis is not None:
            binary = st.redis.binary
            print(f"redis-server  {st.redis.url}  ({binary.path}, from {binary.source})")
        for handle in st.servers:
            print(f"server        {handle.base}  (log: {handle.process.log_path})")
        if st.proxy is not None:
            print(
                f"nginx         {st.proxy.base}  ({st.proxy.binary.path}, from "
                f"{st.proxy.binary.source}; config {st.proxy.run_dir / 'nginx.conf'})"
            )
        entry = st.proxy.port if st.proxy is not None else args.port
        _explain(
            entry, verifier, env.get("WS_HEARTBEAT_INTERVAL", str(DEFAULTS.heartbeat_interval))
        )
        stop.wait()
        print("\nstopping ...")
    return 0


def _explain(port: int, verifier: Minter, heartbeat: str) -> None:
    alice = verifier.mint("alice", ttl=86400)
    admin = verifier.mint("admin", admin=True, ttl=86400)
    base = f"127.0.0.1:{port}"
    print(
        f"""
tokens (24 h):
  alice  {alice}
  admin  {admin}

open the notification page (alice) in a browser:
  http://{base}/app/?token={alice}&heartbeat={heartbeat}

try it:
  websocat 'ws://{base}/api/ws/notifications?token={alice}'
  curl -X POST http://{base}/api/notifications -H 'Authorization: Bearer {admin}' \\
       -H 'Content-Type: application/json' -d '{{"user_id": "alice", "title": "hi"}}'
  curl http://{base}/api/ws/stats -H 'Authorization: Bearer {admin}'
  curl -N 'http://{base}/api/notifications/stream?token={alice}'

Ctrl-C stops everything.""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
