"""Whether a measurement ran hot or throttled, judged from the runner's records of each round.

What each record can and cannot tell:

- `scaling_cur_freq` read after a round is an idle sample: benchmark_model has exited, and the governor lowers an
  idle core's frequency (schedutil asks for 1.25 * max_freq * util / max, and the utilization decays while the
  core idles), throttled or not. A low reading there is no evidence of throttling, and neither is one before the
  round (the core idles through the cool-down). So a low frequency is reported (`freq_drop`) only when the same
  round shows a corroborating sign: its own timing slowed, or the sensor reached the zone's passive trip point
  (where the kernel throttles).
- A round whose mean latency is more than SLOWDOWN_PCT above the fastest earlier round (`slowdown`) ran slower
  than the phone has shown it can; thermal throttling is the usual cause, background load another.
- `hot`: a reading above HOT_C; `at_trip_point`: a reading at or above the sensor's lowest passive trip point.
- `cooldown_timeout`: a round started before the phone cooled below the target. `cooldown_unknown`: the
  temperature could not be read while cooling, so nobody knows how warm the round started; it is reported but is
  not a throttling sign, so it is left out of `any`.
"""

from __future__ import annotations

from typing import Any

HOT_C = 45.0
SLOWDOWN_PCT = 10.0
LOW_FREQ_RATIO = 0.8  # a pinned core below this fraction of its maximum counts as running low


def _temps_c(round_info: dict[str, Any]) -> list[float]:
    temps = [round_info.get(k, {}).get("temp_mc") for k in ("before", "after")]
    return [t / 1000 for t in temps if isinstance(t, (int, float)) and t >= 0]


def _low_freq(round_info: dict[str, Any], max_khz: list[int], cores: list[int]) -> bool:
    """A pinned core of known maximum read below LOW_FREQ_RATIO of it after the round (0: no reading)."""
    freqs = round_info.get("after", {}).get("freqs_khz") or []
    return any(0 < freqs[c] < LOW_FREQ_RATIO * max_khz[c] for c in cores
               if c < len(freqs) and c < len(max_khz) and max_khz[c] > 0)


def _slowed(rounds: list[dict[str, Any]], index: int) -> bool:
    """Round `index` is more than SLOWDOWN_PCT slower than the fastest round before it."""
    earlier: list[float] = [t for t in (r.get("avg_us") for r in rounds[:index])
                            if isinstance(t, (int, float)) and t > 0]
    now = rounds[index].get("avg_us")
    return bool(earlier) and isinstance(now, (int, float)) and now > min(earlier) * (1 + SLOWDOWN_PCT / 100)


def _cool_state(round_info: dict[str, Any]) -> str | None:
    cool = round_info.get("cool") or {}
    if "state" in cool:
        return str(cool["state"])
    reached = cool.get("reached")  # records of the first runner version
    return {0: "timeout", 1: "cooled"}.get(reached) if isinstance(reached, int) else None


def judge_throttling(rounds: list[dict[str, Any]], runtime: dict[str, Any]) -> dict[str, bool]:
    """The throttling flags of a measurement (see the module docstring) from its rounds' records (RoundResult.info:
    `avg_us`, `cool`, `before`/`after` with `temp_mc` and `freqs_khz` by core number) and the device's runtime
    info: `max_khz` by core number, `pinned_cores` (default: every core), `throttle_c` (the sensor's lowest passive
    trip point in C, when known)."""
    max_khz = list(runtime.get("max_khz") or [])
    cores = list(runtime.get("pinned_cores") or range(len(max_khz)))
    throttle_c = runtime.get("throttle_c")
    temps = [t for r in rounds for t in _temps_c(r)]
    slowed = [_slowed(rounds, i) for i in range(len(rounds))]
    at_trip = [isinstance(throttle_c, (int, float)) and any(t >= throttle_c for t in _temps_c(r)) for r in rounds]
    flags = {
        "cooldown_timeout": any(_cool_state(r) == "timeout" for r in rounds),
        "hot": bool(temps) and max(temps) > HOT_C,
        "at_trip_point": any(at_trip),
        "slowdown": any(slowed),
        "freq_drop": any(_low_freq(r, max_khz, cores) and (slowed[i] or at_trip[i]) for i, r in enumerate(rounds)),
    }
    return dict(flags, any=any(flags.values()),
                cooldown_unknown=any(_cool_state(r) == "unknown" for r in rounds))
