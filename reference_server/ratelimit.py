"""The client frame rate limit (rule 11.2): at most `rate` frames in any 1 s window."""

from __future__ import annotations

from collections import deque


class FrameRate:
    """Remembers the times of the last `rate` frames; one more inside a second is too many."""

    __slots__ = ("_rate", "_times", "_window")

    def __init__(self, rate: int, window: float = 1.0) -> None:
        self._rate = rate
        self._window = window
        # Made on the first frame: most streams never send one, and a deque is 750 bytes.
        self._times: deque[float] | None = None

    def allow(self, now: float) -> bool:
        if self._times is None:
            self._times = deque(maxlen=self._rate)
        if len(self._times) == self._rate and now - self._times[0] < self._window:
            return False
        self._times.append(now)
        return True
