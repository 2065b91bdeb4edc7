"""`notify-harness worker --master HOST:PORT`: this host's share of a load run whose master is
elsewhere (`notify-harness load --remote-workers N --master-bind 0.0.0.0:PORT` there).

It is locust's own worker on the toolkit's locustfile: the master sends it the run (the target,
the scenario, its herd) and it sends back its counts, stream records and latency histograms, so
the master's report holds every host's streams. It needs the target to be reachable from this
host; it writes nothing here.
"""

from __future__ import annotations

import argparse
import os
import sys

from loadtests.run import LOCUSTFILE


def master_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: the master as HOST:PORT")
    return host, int(port)


def main(argv: list[str] | None = None, prog: str = "notify-harness worker") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0],
        epilog=f"example: {prog} --master 10.0.0.5:5557",
    )
    parser.add_argument("--master", type=master_address, required=True, metavar="HOST:PORT")
    args = parser.parse_args(argv)
    host, port = args.master
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    command += ["--worker", "--master-host", host, "--master-port", str(port)]
    sys.stdout.flush()
    # This process becomes the worker: no parent of 100 MB waiting beside it, and a signal
    # for this pid reaches locust itself.
    os.execv(sys.executable, command)  # noqa: S606


if __name__ == "__main__":
    sys.exit(main())
