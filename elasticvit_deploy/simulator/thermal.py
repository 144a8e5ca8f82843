"""First-order thermal model of a simulated phone, kept in a small state file shared by processes.

    dT/dt = n_busy * heat_mc_per_busy_s - (T - ambient) / cooling_tau_s

with n_busy the number of simulated benchmark_model processes running on the phone. The phone's sensor refresher
(in the farm's process) and every simulated benchmark_model (a child process) update the file under an exclusive
flock, integrating exactly over the time since the last update. Time is simulated time: host seconds divided by
the farm's time_scale. Busy processes register their pid; pids of processes that died are dropped.

A process killed while rewriting the file leaves it empty or cut short: the next update finds no valid state,
takes the phone as idle at ambient temperature and rewrites the file, so the phone keeps working.
"""

from __future__ import annotations

import builtins
import fcntl
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .profiles import PhoneProfile

THROTTLE_RAMP_MC = 5000.0  # the frequency falls linearly over this many millidegrees above the threshold


def freq_fraction(profile: PhoneProfile, temp_mc: float) -> float:
    """Fraction of the maximum CPU frequency the phone runs at: 1 below the throttling threshold, falling to
    profile.throttle_factor over the next THROTTLE_RAMP_MC."""
    over = min(max((temp_mc - profile.throttle_threshold_mc) / THROTTLE_RAMP_MC, 0.0), 1.0)
    return 1.0 - (1.0 - profile.throttle_factor) * over


class Thermal:
    """The temperature of one phone, stored as "<temp_mc> <monotonic stamp> <busy pids or ->" in `path`."""

    def __init__(self, path: Path, profile: PhoneProfile, time_scale: float) -> None:
        self.path = path
        self.profile = profile
        self.time_scale = time_scale

    def reset(self) -> None:
        """Start idle, at ambient temperature."""
        self.path.write_text(f"{float(self.profile.ambient_mc)!r} {time.monotonic()!r} -", encoding="ascii")

    def current(self) -> float:
        """Temperature now, in millidegrees."""
        return self._update()

    def set(self, temp_mc: float) -> None:
        """Force the temperature (tests pre-heat phones this way)."""
        self._update(temp_mc=float(temp_mc))

    def sample(self) -> tuple[float, int]:
        """(temperature now in millidegrees, how many processes are busy on the phone), read together."""
        count = 0

        def counted(busy: set[int]) -> None:
            nonlocal count
            count = len(busy)

        return self._update(observe=counted), count

    @contextmanager
    def busy(self, pid: int | None = None) -> Iterator[None]:
        """Count a process (default: the calling one) as busy, heating the phone, for the duration of the block."""
        pid = os.getpid() if pid is None else pid
        self._update(add=pid)
        try:
            yield
        finally:
            self._update(remove=pid)

    def _update(self, temp_mc: float | None = None, add: int | None = None, remove: int | None = None,
                observe: Callable[[builtins.set[int]], None] | None = None) -> float:  # `set` is a method here
        p = self.profile
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        with open(fd, "r+", encoding="ascii", errors="replace") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            now = time.monotonic()
            state = _parse_state(f.read())
            if state is None:  # empty or cut short by a killed writer: idle at ambient, from now
                state = (float(p.ambient_mc), now, set())
            last_temp, stamp, busy = state
            elapsed = max(now - stamp, 0.0) / self.time_scale
            steady = p.ambient_mc + len(busy) * p.heat_mc_per_busy_s * p.cooling_tau_s
            temp = steady + (last_temp - steady) * math.exp(-elapsed / p.cooling_tau_s)
            if temp_mc is not None:
                temp = temp_mc
            busy = {pid for pid in busy if pid != remove and _alive(pid)} | ({add} if add is not None else set())
            if observe is not None:
                observe(busy)
            f.seek(0)
            f.truncate()
            f.write(f"{temp!r} {now!r} {','.join(map(str, sorted(busy))) or '-'}")
        return temp


def _parse_state(text: str) -> tuple[float, float, set[int]] | None:
    """(temperature, stamp, busy pids) from the file's text; None if it is not a complete, valid state."""
    parts = text.split()
    if len(parts) != 3:
        return None
    try:
        temp, stamp = float(parts[0]), float(parts[1])
        busy = {int(pid) for pid in parts[2].split(",")} if parts[2] != "-" else set()
    except ValueError:
        return None
    if not (math.isfinite(temp) and math.isfinite(stamp)) or any(pid <= 0 for pid in busy):
        return None
    return temp, stamp, busy


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
