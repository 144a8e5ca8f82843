"""Measuring .tflite models on a phone (through the runner) or on this host (ai-edge-litert), with one schema.

A measurement is a number of rounds; each round is one benchmark_model run (`warmup` warm-ups, `runs` timed
inferences) whose mean latency is one sample. Rounds are committed to the results store as they finish, so an
interrupted measurement resumes where it stopped; a complete one with the same key (model sha256, device
fingerprint, runtime version, flags) is reused unless `fresh`.
"""

from __future__ import annotations

import hashlib
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..export.quiet import native_output_captured
from ..tflite_check import ModelFileCheckError, check_tflite
from .adb import FarmError, Phone
from .identity import DeviceIdentity, read_health, read_identity
from .runner_protocol import (BENCHMARK_PATH, MODELS_DIR, RUNNER_PATH, RoundResult, RunnerOutputError,
                              RunnerSettings, parse_runner_output, runner_argv)
from .stats import is_stable, summarize
from .store import ResultsStore, measurement_key

RUNNER_SOURCE = Path(__file__).resolve().parents[2] / "android_runner" / "runner.sh"
HOT_C = 45.0


@dataclass(frozen=True)
class LocalModel:
    path: Path
    sha256: str
    size: int

    @classmethod
    def load(cls, path: str | Path) -> LocalModel:
        """Check a .tflite file locally (exists, parses as a TFLite flatbuffer) before anything is pushed."""
        path = Path(path)
        try:
            data = check_tflite(path)
        except ModelFileCheckError as e:
            raise FarmError(str(e)) from None
        return cls(path, hashlib.sha256(data).hexdigest(), len(data))


@dataclass(frozen=True)
class MeasureOptions:
    rounds: int = 3
    until_stable_pct: float | None = None  # keep adding rounds until the median's 95% CI is within +-this %
    max_rounds: int = 20
    fresh: bool = False
    min_battery: int = 20
    max_start_temp_c: float = 50.0
    min_free_mb: int = 64


@dataclass
class MeasurementResult:
    model: str
    model_sha256: str
    device: dict[str, Any]
    runtime_version: str
    flags: dict[str, Any]
    summary: dict[str, Any]
    cached: bool

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "model_sha256": self.model_sha256, "device": self.device,
                "runtime_version": self.runtime_version, "flags": self.flags, "cached": self.cached,
                **self.summary}


class Target(Protocol):
    """Where models are measured: a phone or this host."""

    name: str
    settings: RunnerSettings

    def prepare(self) -> None: ...

    def device_info(self) -> dict[str, Any]: ...

    def runtime_version(self) -> str: ...

    def run_rounds(self, model: LocalModel, rounds: int) -> tuple[list[RoundResult], dict[str, Any]]: ...


def summarize_rounds(rounds: list[dict[str, Any]], samples_ms: list[float], runtime: dict[str, Any]) -> dict:
    """The reported figures: latency statistics over round means (each round's mean in `round_ms`), the fastest
    single inference (`best_ms`), init time, temperatures, throttling."""
    stats = summarize(samples_ms).to_dict()
    temps = [r[k].get("temp_mc") for r in rounds for k in ("before", "after") if r.get(k)]
    temps = [t / 1000 for t in temps if isinstance(t, int) and t >= 0]
    inits = [r["init_us"] / 1000 for r in rounds if r.get("init_us") is not None]
    max_khz = runtime.get("max_khz") or []
    cores = runtime.get("pinned_cores") or range(len(max_khz))
    ratios = [freqs[c] / max_khz[c] for r in rounds if (freqs := r.get("after", {}).get("freqs_khz"))
              for c in cores if c < min(len(freqs), len(max_khz)) and max_khz[c]]
    throttling = {
        "cooldown_timeout": any(r.get("cool", {}).get("reached") == 0 for r in rounds),
        "hot": bool(temps) and max(temps) > HOT_C,
        "freq_drop": bool(ratios) and min(ratios) < 0.8,  # a pinned core ended a round below 80% of its max
    }
    mins = [r["min_us"] / 1000 for r in rounds if isinstance(r.get("min_us"), (int, float)) and r["min_us"] > 0]
    return dict(stats, best_ms=min(mins) if mins else None, round_ms=[round(float(x), 6) for x in samples_ms],
                rounds=len(samples_ms), inferences=int(sum(r.get("count", 0) for r in rounds)),
                init_ms=float(np.median(inits)) if inits else None,
                temperature_c={"first": temps[0] if temps else None, "last": temps[-1] if temps else None,
                               "max": max(temps) if temps else None},
                throttling=dict(throttling, any=any(throttling.values())))


class PhoneTarget:
    """A phone behind an adb server, driven through android_runner/runner.sh."""

    def __init__(self, phone: Phone, alias: str | None, settings: RunnerSettings, options: MeasureOptions):
        settings.validate()
        self.phone = phone
        self.alias = alias
        self.name = alias or phone.serial
        self.options = options
        self.settings = settings
        self.identity: DeviceIdentity | None = None
        self._runtime: str | None = None

    def prepare(self) -> None:
        """Identity, runtime version (the sha256 of the phone's benchmark_model), runner on the phone, health."""
        self.identity = read_identity(self.phone, self.alias)
        if self.settings.cores == "auto":
            self.settings = replace(self.settings, cores=self.identity.big_core_mask())
        bench_sha = self.phone.remote_sha256(BENCHMARK_PATH)
        if bench_sha is None:
            raise FarmError(f"{self.phone.serial}: no benchmark_model at {BENCHMARK_PATH}; install it once with "
                            f"`elasticvit-deploy farm setup --benchmark-binary PATH`")
        self._runtime = f"benchmark_model@{bench_sha[:16]}"
        runner = RUNNER_SOURCE.read_bytes()
        self.phone.push_if_changed(RUNNER_SOURCE, RUNNER_PATH, hashlib.sha256(runner).hexdigest())
        health = read_health(self.phone, self.identity)
        problems = health.problems(self.options.min_battery, self.options.max_start_temp_c, self.options.min_free_mb)
        if problems:
            raise FarmError(f"{self.phone.serial}: skipped, {'; '.join(problems)}")

    def device_info(self) -> dict[str, Any]:
        assert self.identity is not None, "prepare() first"
        return dict(self.identity.to_dict(), kind="phone")

    def runtime_version(self) -> str:
        assert self._runtime is not None, "prepare() first"
        return self._runtime

    def run_rounds(self, model: LocalModel, rounds: int) -> tuple[list[RoundResult], dict[str, Any]]:
        assert self.identity is not None, "prepare() first"
        remote = f"{MODELS_DIR}/{model.sha256}.tflite"
        self.phone.push_if_changed(model.path, remote, model.sha256)
        argv = runner_argv(remote, self.settings, rounds, self.identity.temp_path, self.identity.temp_scale)
        timeout = 120 + rounds * (self.settings.cool_timeout_s + 120)
        result = self.phone.shell(argv, timeout=timeout)
        try:
            out = parse_runner_output(result.stdout)
        except RunnerOutputError as e:
            tail = " | ".join(ln for ln in result.stdout.strip().splitlines()[-2:] if not ln.startswith("EVD "))
            raise FarmError(f"{self.phone.serial}: {e}{f' ({tail[:200]})' if tail else ''}") from None
        mask = int(self.settings.cores, 16) if self.settings.cores else None
        pinned = [c for c in range(len(self.identity.core_max_khz)) if mask is None or mask >> c & 1]
        return out.rounds, {"version": out.runtime_version, "root": out.root, "knobs": out.knobs,
                            "max_khz": self.identity.core_max_khz, "pinned_cores": pinned}


class HostTarget:
    """This machine's CPU through ai-edge-litert's interpreter: same rounds, statistics and schema as a phone."""

    name = "host"

    def __init__(self, settings: RunnerSettings):
        self.settings = settings

    def prepare(self) -> None:
        if self.settings.delegate not in ("cpu", "xnnpack"):
            raise FarmError(f"host: the {self.settings.delegate} delegate is only available on phones")
        if self.settings.cores not in (None, "auto"):
            raise FarmError("host: --cores (taskset) applies to phones only")

    def device_info(self) -> dict[str, Any]:
        cpu = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        node = platform.node()
        fingerprint = hashlib.sha256(f"host|{node}|{cpu}".encode()).hexdigest()[:16]
        return {"kind": "host", "serial": "host", "alias": "host", "model": cpu, "manufacturer": platform.system(),
                "soc": platform.machine(), "abi": platform.machine(), "build_fingerprint": platform.platform(),
                "fingerprint": fingerprint, "hostname": node}

    def runtime_version(self) -> str:
        from importlib.metadata import version

        return f"ai-edge-litert {version('ai-edge-litert')}"

    def run_rounds(self, model: LocalModel, rounds: int) -> tuple[list[RoundResult], dict[str, Any]]:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if self.settings.delegate == "xnnpack" else \
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        results = []
        for r in range(rounds):
            t0 = time.perf_counter()
            try:
                with native_output_captured():
                    it = Interpreter(model_path=str(model.path), num_threads=self.settings.threads,
                                     experimental_op_resolver_type=resolver)
                    it.allocate_tensors()
            except (ValueError, RuntimeError) as e:  # e.g. ops this host's LiteRT lacks (Flex, custom)
                raise FarmError(f"host: cannot run {model.path.name} ({' '.join(str(e).split())[:200]})") from None
            init_us = int((time.perf_counter() - t0) * 1e6)
            for d in it.get_input_details():
                it.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
            warm = [self._time(it) for _ in range(max(self.settings.warmup, 1))]
            timed = np.array([self._time(it) for _ in range(self.settings.runs)])
            results.append(RoundResult(r, count=len(timed), avg_us=float(timed.mean()), min_us=int(timed.min()),
                                       max_us=int(timed.max()), std_us=int(timed.std()), init_us=init_us,
                                       first_us=int(warm[0]), warmup_avg_us=float(np.mean(warm)), exit_code=0))
        return results, {"version": self.runtime_version(), "root": False, "knobs": []}

    @staticmethod
    def _time(interpreter: Any) -> float:
        t0 = time.perf_counter()
        interpreter.invoke()
        return (time.perf_counter() - t0) * 1e6


def measure_model(target: Target, model: LocalModel, store: ResultsStore, options: MeasureOptions) -> MeasurementResult:
    """Measure `model` on a prepared `target`, reusing or resuming stored work."""
    device = target.device_info()
    runtime = target.runtime_version()
    flags = target.settings.flags()
    key = measurement_key(model.sha256, device["fingerprint"], runtime, flags)
    if not options.fresh and (done := store.find(key)) is not None:
        return MeasurementResult(str(model.path), model.sha256, device, runtime, flags, done.summary or {}, True)
    mid = store.start(key, model_sha256=model.sha256, model_name=model.path.name, device=device,
                      runtime_version=runtime, flags=flags)
    stored = store.get(mid)
    samples, infos, extra = list(stored.samples), list(stored.rounds), {}
    while True:
        wanted = options.rounds - len(samples) if len(samples) < options.rounds else 2
        if len(samples) >= options.rounds:
            if options.until_stable_pct is None or is_stable(samples, options.until_stable_pct) \
                    or len(samples) >= options.max_rounds:
                break
            wanted = min(wanted, options.max_rounds - len(samples))
        rounds, extra = target.run_rounds(model, wanted)
        for r in rounds:
            store.add_round(mid, [r.latency_ms], r.info())
            samples.append(r.latency_ms)
            infos.append(r.info())
    summary = summarize_rounds(infos, samples, extra)
    summary["runtime"] = {k: v for k, v in extra.items() if k in ("version", "root", "knobs")}
    if options.until_stable_pct is not None:
        summary["stable"] = is_stable(samples, options.until_stable_pct)
    store.finish(mid, summary)
    return MeasurementResult(str(model.path), model.sha256, device, runtime, flags, summary, False)
