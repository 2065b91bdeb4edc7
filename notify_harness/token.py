"""`notify-harness token`: a token for a user of the target, minted as every job mints them."""

from __future__ import annotations

import argparse
import os
import sys

from notify_client.options import OptionError, add_target_arguments, resolve
from notify_contract.verdicts import NotRun


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Print a token for USER: signed with --jwt-secret, or from --token-cmd.",
        epilog='examples: %(prog)s alice --jwt-secret "$JWT_SECRET"; '
        "%(prog)s ops --admin --target-file target.toml",
    )
    p.add_argument("user", metavar="USER", help="the token's subject (`sub`)")
    p.add_argument("--admin", action="store_true", help="an admin token (`role: admin`)")
    p.add_argument("--ttl", type=float, help="seconds it stays valid (default: an hour)")
    add_target_arguments(p)
    return p


def main(argv: list[str] | None = None, prog: str = "python -m notify_harness.token") -> int:
    args = parser(prog).parse_args(argv)
    try:
        # $JWT_SECRET as the server reads its own, when no other token source is given.
        tokens = resolve(args, fallback_secret=os.environ.get("JWT_SECRET")).tokens
        if tokens is None:
            raise OptionError(
                "needs --jwt-secret or --token-cmd (given here or in the file), or $JWT_SECRET"
            )
        if args.ttl is not None and args.ttl <= 0:
            raise OptionError(f"--ttl {args.ttl:g}: must be more than 0 seconds")
        print(tokens.mint(args.user, admin=args.admin, ttl=args.ttl))
    except (OptionError, NotRun) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
