"""`python -m loadtests` (`nox -s load`): a capacity run through nginx, with a report.

python -m loadtests                                  # the default capacity profile
python -m loadtests --profile smoke                  # under two minutes (CI)
python -m loadtests --scenario idle --users 20000 --rate 1000 --duration 120
python -m loadtests --threshold 'p99_ms<250' --threshold 'lost==0'
python -m loadtests --target http://127.0.0.1:8000 --jwt-secret S --scenario fanout --users 200
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loadtests import target_options
from loadtests.config import PROFILES, SCENARIOS, BudgetError, from_profile
from loadtests.run import LoadError, run
from notify_client.options import OptionError
from notify_stack.stack import StackError


def parser(prog: str = "python -m loadtests") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0],
        epilog="examples: %(prog)s --profile smoke; %(prog)s --target http://127.0.0.1:8000 "
        '--jwt-secret "$JWT_SECRET" --users 2000 --duration 60',
    )
    p.add_argument("--profile", default="capacity", choices=sorted(PROFILES))
    p.add_argument("--scenario", choices=SCENARIOS)
    p.add_argument("--users", type=int, help="streams to open")
    p.add_argument("--rate", type=float, help="streams opened per second during the ramp")
    p.add_argument(
        "--duration",
        dest="hold",
        type=float,
        metavar="SECONDS",
        help="how long to hold the streams after the ramp",
    )
    p.add_argument("--instances", type=int, help="server processes (more than 1 adds Redis)")
    p.add_argument("--generator-workers", type=int, help="locust worker processes on this host")
    p.add_argument(
        "--remote-workers",
        type=int,
        metavar="N",
        help="also wait for N workers on other hosts (notify-harness worker --master HOST:PORT)",
    )
    p.add_argument(
        "--master-bind",
        type=host_port,
        metavar="HOST[:PORT]",
        help="where the locust master listens for workers (default 127.0.0.1, a free port)",
    )
    p.add_argument("--nginx-workers", type=int, help="nginx worker processes")
    p.add_argument(
        "--direct",
        dest="via_nginx",
        action="store_false",
        default=None,
        help="connect to the server without nginx",
    )
    p.add_argument("--sse-mode", choices=["shared", "per-connection"])
    p.add_argument("--broadcast-interval", type=float, metavar="SECONDS")
    p.add_argument("--publish-rate", type=float, help="personal notifications per second")
    p.add_argument("--heartbeat-interval", type=float, metavar="SECONDS")
    p.add_argument(
        "--source-addresses",
        type=lambda s: tuple(a for a in s.split(",") if a),
        metavar="A,B,...",
        help="client source addresses, e.g. 127.0.0.2,127.0.0.3",
    )
    p.add_argument(
        "--threshold",
        dest="thresholds",
        action="append",
        metavar="EXPR",
        help="e.g. 'p99_ms<250' or 'lost==0': exit 1 when missed (repeatable)",
    )
    p.add_argument(
        "--server-setting",
        dest="server_settings",
        action="append",
        metavar="NAME=VALUE",
        help="an environment setting for the servers, e.g. GC_THRESHOLD=700,10,10 (repeatable)",
    )
    p.add_argument("--reports", type=Path, default=Path("reports"))
    # --heartbeat-interval above is the started servers' setting; a target's is its own.
    target_options.add_arguments(p, skip=("heartbeat_interval",))
    return p


def host_port(text: str) -> tuple[str, int | None]:
    """HOST or HOST:PORT."""
    host, sep, port = text.rpartition(":") if ":" in text else (text, "", "")
    if sep and not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: HOST or HOST:PORT")
    return host, int(port) if sep else None


def settings_pairs(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--server-setting {pair!r} is not NAME=VALUE")
        out[name] = value
    return out


def main(argv: list[str] | None = None, prog: str = "python -m loadtests") -> int:
    namespace = parser(prog).parse_args(argv)
    args = {k: v for k, v in vars(namespace).items() if k not in target_options.KEYS}
    profile, reports = args.pop("profile"), args.pop("reports")
    if args.get("thresholds"):
        args["thresholds"] = tuple(args["thresholds"])
    try:
        target, probes = target_options.load_target(namespace)
        if args.get("server_settings"):
            if target is not None:
                raise ValueError("--server-setting is for the servers a run starts, not a target")
            args["server_settings"] = settings_pairs(args["server_settings"])
        if target is not None:
            args["via_nginx"] = False  # whatever is in front of the target is the user's
        if args.get("remote_workers") and args.get("source_addresses"):
            raise ValueError(
                "--source-addresses are this host's; with --remote-workers each host "
                "connects from its own (leave one of them out)"
            )
        if args.get("master_bind"):
            args["master_bind"], args["master_port"] = args["master_bind"]
        config = from_profile(profile, **args)
        outcome = run(config, reports, target=target, probes=probes)
    except (BudgetError, ValueError, StackError, LoadError, OptionError) as exc:
        print(f"loadtests: {exc}", file=sys.stderr)
        return 2
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
