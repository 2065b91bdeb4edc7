"""The target options of the load tools: every tool's (`--target`, the target file, ...) and what
only a load run needs (`--server-pid`, `--redis-url`)."""

from __future__ import annotations

import argparse

from loadtests.run import Probes
from notify_client.options import OPTIONS, add_target_arguments, resolve
from notify_client.target import QUERY, Target

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


def load_target(args: argparse.Namespace) -> tuple[Target | None, Probes]:
    """The user's server and what may be sampled of it; no target: start the reference stack."""
    target = resolve(args)
    probes = Probes(tuple(args.server_pids), args.redis_url)
    if target.url is None:
        if args.server_pids or args.redis_url:
            raise ValueError("--server-pid and --redis-url describe a --target")
        return None, probes
    if target.minter is None:
        raise ValueError(
            "a load run against --target needs --jwt-secret: its users mint their own tokens, "
            "thousands of them (--token-cmd is for the contract suite)"
        )
    if target.token_in != QUERY:
        raise ValueError(
            "--token-in header: the load generator's streams carry the token in the query "
            "(?token=) only; run the contract suite for the header"
        )
    if target.minter.algorithm != "HS256":
        raise ValueError(
            f"--jwt-alg {target.minter.algorithm}: the load generator signs HS256 only"
        )
    return target, probes
