"""The client reconnect policy of docs/contract.md section 7, as pure code.

Delay before attempt n (n = 0, 1, ...) is `min(base * 2**n, cap)`; at most `max_attempts`
attempts; only a `connected` frame resets the count (rule 7.1). With jitter the delay is uniform
in [0, that] ("full jitter"), so a restarted server is not hit by every client at once. The
clock and the random source are injected: no I/O and no sleeping here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from notify_contract.codes import CLOSE_RULES, Reconnect, reconnect_after

# Rule 7.6: this many heartbeat intervals without a frame and a stream is taken for dead.
WATCHDOG_BEATS: Final = 2.5

# Close codes after which reconnecting (with the same token) cannot help.
FINAL_CODES: Final = frozenset(
    rule.code for rule in CLOSE_RULES if rule.reconnect in (Reconnect.NO, Reconnect.NEW_TOKEN)
)


def reconnects_after(code: int | None) -> bool:
    """1001, 1006, 4408, 4429 and any unlisted code: yes; the codes in FINAL_CODES: no."""
    return reconnect_after(code) in (Reconnect.BACKOFF, Reconnect.RESUME)


@dataclass
class ReconnectPolicy:
    """Counts attempts and says when the next one is due, or that it is time to give up."""

    base_ms: float = 1000.0
    cap_ms: float = 30000.0
    max_attempts: int = 5
    jitter: bool = False
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random
    attempts: int = field(default=0, init=False)

    def delay_ms(self, attempt: int) -> float:
        """The unjittered delay before attempt `attempt` (0-based)."""
        return min(self.base_ms * 2.0**attempt, self.cap_ms)

    def next_attempt(self, close_code: int | None) -> float | None:
        """The clock time of the next attempt after a close, or None: do not reconnect."""
        if not reconnects_after(close_code) or self.attempts >= self.max_attempts:
            return None
        delay = self.delay_ms(self.attempts)
        if self.jitter:
            delay *= self.rand()
        self.attempts += 1
        return self.clock() + delay / 1000.0

    def connected(self) -> None:
        """A `connected` frame arrived: the next failure starts again from the first delay.

        Never call this on the socket's open event: 4401 and 4429 come after the open.
        """
        self.attempts = 0
