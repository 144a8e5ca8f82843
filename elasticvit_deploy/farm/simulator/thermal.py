"""First-order thermal model of a simulated phone, kept in a small state file shared by processes.

    dT/dt = n_busy * heat_mc_per_busy_s - (T - ambient) / cooling_tau_s

with n_busy the number of simulated benchmark_model processes running on the phone. The phone's sensor refresher
(in the farm's process) and every simulated benchmark_model (a child process) update the file under an exclusive
flock, integrating exactly over the time since the last update. Time is simulated time: host seconds divided by
the farm's time_scale. Busy processes register their pid; pids of processes that died are dropped.
"""

from __future__ import annotations

import fcntl
import math
import os
import time
from collections.abc import Iterator
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
        self.path.write_text(f"{self.profile.ambient_mc!r} {time.monotonic()!r} -", encoding="ascii")

    def current(self) -> float:
        """Temperature now, in millidegrees."""
        return self._update()

    def set(self, temp_mc: float) -> None:
        """Force the temperature (tests pre-heat phones this way)."""
        self._update(temp_mc=float(temp_mc))

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Count the calling process as busy (heating the phone) for the duration of the block."""
        self._update(add=os.getpid())
        try:
            yield
        finally:
            self._update(remove=os.getpid())

    def _update(self, temp_mc: float | None = None, add: int | None = None, remove: int | None = None) -> float:
        p = self.profile
        with open(self.path, "r+", encoding="ascii") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            temp_text, stamp_text, pids_text = f.read().split()
            busy = {int(pid) for pid in pids_text.split(",")} if pids_text != "-" else set()
            now = time.monotonic()
            elapsed = max(now - float(stamp_text), 0.0) / self.time_scale
            steady = p.ambient_mc + len(busy) * p.heat_mc_per_busy_s * p.cooling_tau_s
            temp = steady + (float(temp_text) - steady) * math.exp(-elapsed / p.cooling_tau_s)
            if temp_mc is not None:
                temp = temp_mc
            busy = {pid for pid in busy if pid != remove and _alive(pid)} | ({add} if add is not None else set())
            f.seek(0)
            f.truncate()
            f.write(f"{temp!r} {now!r} {','.join(map(str, sorted(busy))) or '-'}")
        return temp


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
