"""The `--driver-cmd` of the partial example server: the driver's JSON on stdin, sent over the
server's `/admin/publish` WebSocket with an admin token minted from JWT_SECRET; the published
notification on stdout. Actions the server lacks (`start_task`) exit 3: "unsupported".

    echo '{"action": "publish", "user_id": "bob", "title": "hi"}' |
        JWT_SECRET=... python -m examples.partial_publish --url ws://127.0.0.1:8765
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jwt
from websockets.sync.client import connect

UNSUPPORTED = 3


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="ws://127.0.0.1:8765")
    args = p.parse_args()
    request = json.load(sys.stdin)
    if request.get("action") not in ("publish", "broadcast"):
        print(f"the partial example server has no {request.get('action')!r}")
        return UNSUPPORTED
    claims = {"sub": "example-driver", "role": "admin", "exp": int(time.time()) + 60}
    token = jwt.encode(claims, os.environ["JWT_SECRET"], algorithm="HS256")
    with connect(f"{args.url}/admin/publish?token={token}", open_timeout=10) as ws:
        if isinstance(request.get("sent_at"), int | float):
            # Stamped again as it reaches the server, so that this command's start-up is not
            # counted as delivery latency (the HTTP driver stamps just before its request).
            request["sent_at"] = time.time()
        ws.send(json.dumps(request))
        print(ws.recv(timeout=10))
    return 0


if __name__ == "__main__":
    sys.exit(main())
