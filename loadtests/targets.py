"""The target options of the load tools: the contract suite's (`--target`, the target file, ...)
and what only a load run needs (`--server-pid`, `--redis-url`)."""

from __future__ import annotations

import argparse

from contract_tests.options import OPTIONS, add_target_arguments, resolve
from loadtests.run import External

# Options of this group, to keep apart from the run's own settings.
KEYS = ("target_file", *(o.name for o in OPTIONS), "server_pids", "redis_url")


def add_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    add_target_arguments(parser, skip=skip)
    parser.add_argument(
        "--server-pid",
        dest="server_pids",
        type=int,
        action="append",
        default=[],
        metavar="PID",
        help="with --target: a process of the server to sample (CPU, memory, files; repeatable)",
    )
    parser.add_argument(
        "--redis-url", metavar="URL", help="with --target: the server's Redis, for client counts"
    )


def external(args: argparse.Namespace) -> External | None:
    """The user's server from the target options, or None: start the reference stack."""
    values = resolve(args)
    if values["url"] is None:
        if args.server_pids or args.redis_url:
            raise ValueError("--server-pid and --redis-url describe a --target")
        return None
    if not values["jwt_secret"]:
        raise ValueError(
            "a load run against --target needs --jwt-secret: its users mint their own tokens, "
            "thousands of them (--token-cmd is for the contract suite)"
        )
    return External(
        values["url"],
        values["jwt_secret"],
        values["driver_cmd"],
        tuple(args.server_pids),
        args.redis_url,
        tuple(values["without"]),
    )
