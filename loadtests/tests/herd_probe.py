"""A herd of streams in a gevent process of its own, as in a locust worker, for test_herd.py.

Prints `open N` whenever the number of open streams changes. On a line `stop N` on stdin it
waits (up to 10 s) until the streams have received N notifications in all, closes the herd and
prints one JSON line: each stream's connects and notification ids, and the closes it reported.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from functools import partial  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402
from gevent.fileobject import FileObjectThread  # noqa: E402
from locust import User  # noqa: E402
from locust.env import Environment  # noqa: E402

from loadtests.herd import Herd  # noqa: E402
from loadtests.locust_client import WsStream  # noqa: E402
from notify_contract.tokens import Minter  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--streams", type=int, required=True)
    args = parser.parse_args()
    env = Environment(user_classes=[User])
    env.create_local_runner()
    closes: dict[str, int] = {}
    received = [0]
    enough = Event()
    wanted = [-1]

    def count(request_type: str, name: str, **_: object) -> None:
        if name.startswith("close"):
            closes[name] = closes.get(name, 0) + 1
        elif name == "notification":
            received[0] += 1
            if received[0] == wanted[0]:
                enough.set()

    env.events.request.add_listener(count)  # type: ignore[no-untyped-call]
    minter = Minter(args.secret)
    names = [f"herd-{i}" for i in range(args.streams)]
    streams = [WsStream(env, args.target, partial(minter.mint, name, ttl=3600)) for name in names]

    def changed(herd: Herd) -> None:
        print(f"open {herd.open_streams}", flush=True)

    herd = Herd(streams, rate=200, on_change=changed)
    running = gevent.spawn(herd.run)
    command = FileObjectThread(sys.stdin).readline().split()  # the test says stop
    wanted[0] = int(command[1])
    if received[0] < wanted[0]:
        enough.wait(10)
    running.kill()
    herd.close()
    result = {
        "connects": [s.session.connects for s in streams],
        "ids": [s.report.ids for s in streams],
        "closes": closes,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
