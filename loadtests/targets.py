"""The target options of the load tools: the contract suite's (`--target`, the target file, ...)
and what only a load run needs (`--server-pid`, `--redis-url`)."""

from __future__ import annotations

import argparse

from contract_tests.options import OPTIONS, add_target_arguments, flag_of, resolve
from loadtests.run import External

# The target options a load run acts on; the others describe the target for the contract suite
# and the faults, and a run that was given one says it does not use it.
USED = frozenset({"url", "jwt_secret", "jwt_alg", "token_cmd", "token_in", "driver_cmd", "without"})
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
    if values["token_in"] != "query":
        raise ValueError(
            "--token-in header: the load generator's streams carry the token in the query "
            "(?token=) only; run the contract suite for the header"
        )
    if values["jwt_alg"] != "HS256":
        raise ValueError(f"--jwt-alg {values['jwt_alg']}: the load generator signs HS256 only")
    ignored = tuple(
        flag_of(o)
        for o in OPTIONS
        if o.name not in USED and values[o.name] not in (o.default, None, [], ())
    )
    return External(
        values["url"],
        values["jwt_secret"],
        values["driver_cmd"],
        tuple(args.server_pids),
        args.redis_url,
        tuple(values["without"]),
        ignored=ignored,
    )
