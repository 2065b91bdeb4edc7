"""The client reconnect policy of CONTRACT.md section 7, as pure code.

Delay before attempt n (n = 0, 1, ...) is `min(base * 2**n, cap)`; at most `max_attempts`
attempts; a successful open resets the count. With jitter the delay is uniform in [0, that]
("full jitter"), so a restarted server is not hit by every client at once. The clock and the
random source are injected: no I/O and no sleeping here.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from reference_server.protocol import CloseCode

# Close codes after which reconnecting cannot help (CONTRACT.md section 6).
FINAL_CODES = frozenset(
    {
        CloseCode.NORMAL,
        CloseCode.UNSUPPORTED_DATA,
        CloseCode.POLICY_VIOLATION,
        CloseCode.MESSAGE_TOO_BIG,
        CloseCode.UNAUTHORIZED,
        CloseCode.FORBIDDEN,
        CloseCode.NOT_FOUND,
        CloseCode.TOO_MANY_CONNECTIONS,
    }
)


def reconnects_after(code: int | None) -> bool:
    """1001, 4408, 1006 and any other code: yes; the codes in FINAL_CODES: no."""
    return code not in FINAL_CODES


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

    def opened(self) -> None:
        """A connection opened: the next failure starts again from the first delay."""
        self.attempts = 0
