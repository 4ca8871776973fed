"""Clocks for driving a simulated site: virtual seconds, injected rather than read."""

from __future__ import annotations

import time
from collections.abc import Callable


class ScaledClock:
    """Virtual time that runs ``scale`` times faster than the wall clock (the running portal).

    The portal calls ``site.advance_to(clock.now())`` on each tick; tests use plain numbers instead.
    """

    __slots__ = ("scale", "start", "_wall", "_wall0")

    def __init__(self, scale: float = 60.0, *, start: float = 0.0, wall: Callable[[], float] = time.monotonic):
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = scale
        self.start = start
        self._wall = wall
        self._wall0 = wall()

    def now(self) -> float:
        return self.start + (self._wall() - self._wall0) * self.scale
