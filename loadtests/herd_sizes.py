"""How many streams each generator worker holds: shares of the run by what each worker's host
says it can hold, not equal shares. The numbers only; `herd_exchange.py` carries them between
the master and its workers.

Every worker, as its herd starts, tells the master its capacity: the descriptors its process may
open and the ephemeral ports its source addresses reach one destination through, less margins.
Once every worker the run expects has told, the master divides the streams in proportion (no
worker over its capacity), answers each worker its herd's size, and writes the division to
`run_files.HERDS`. A run whose workers together hold less than its streams is never silently
shrunk: every worker gets all it can hold, the file names the shortfall, and the run counts the
streams left over as unreported (`unreported_streams`) and fails. A worker that
hears nothing from the master in time takes an equal share and logs it.
"""

from __future__ import annotations

import resource

from loadtests.config import FD_MARGIN, PORT_MARGIN, port_range


def capacity(source_addresses: int) -> int:
    """Streams this process can hold: descriptors (one a stream) and ephemeral ports."""
    descriptors = resource.getrlimit(resource.RLIMIT_NOFILE)[1] - FD_MARGIN
    ports = port_range() * max(1, source_addresses) - PORT_MARGIN
    return max(0, min(descriptors, ports))


def divide(streams: int, capacities: list[int]) -> list[int]:
    """`streams` over workers in proportion to `capacities`, none over its own; when they hold
    less than `streams` together, each gets all it can (the caller reports the shortfall)."""
    total = sum(capacities)
    if total <= streams:
        return list(capacities)
    sizes = [streams * c // total for c in capacities]
    left = streams - sum(sizes)
    for i in sorted(range(len(capacities)), key=lambda i: capacities[i] - sizes[i], reverse=True):
        if left == 0:
            break
        if sizes[i] < capacities[i]:
            sizes[i] += 1
            left -= 1
    return sizes


def equal_share(streams: int, workers: int, index: int) -> int:
    share, extra = divmod(streams, max(1, workers))
    return share + (1 if index < extra else 0)
