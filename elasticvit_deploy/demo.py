"""`elasticvit-deploy demo`: the whole loop on this machine with nothing attached, in minutes.

Each step runs the toolkit's own command in a subprocess and prints it, so the demo doubles as a tour of the
commands a user runs: train a tiny-space supernet on Fashion-MNIST (scikit-learn's digits when the Debian package
is missing), build a `host` latency predictor by measuring blocks, search under a host-latency budget with the
trained supernet's accuracy, export and verify the winner on this host, measure it on simulated phones (a
simulator, labelled as such), then search the full ElasticViT space for Pixel 1 at 30 ms with its nn-Meter table
and verify the winner on the phone's digital twin (a simulated phone timed from that table), measure it on the
four twins, and write the per-phone report. The twin steps need the four tables: installed ones are used, else
`--tables DIR` imports them, else they are downloaded from the pinned URL; offline without them the twin steps
are skipped with a note. Work is cached under the output directory and the user-data directory, so a second run is
quick.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from supernet.documents import header
from supernet.errors import OperationFailed
from supernet.sampling import max_arch, min_arch
from supernet.space import TINY
from supernet.training.data import FASHION_MNIST_DIR

from .latency.predictors import load_predictor
from .latency.tables import TABLE_DEVICES, installed_table_path

SIM_PHONES = ("pixel1", "pixel4", "pixel6", "xiaomi11")
TWIN_TARGET, TWIN_BUDGET_MS = "pixel1", 30.0  # the ElasticViT search the demo verifies on a digital twin
SIM_TIME_SCALE = 0.05  # host seconds per simulated phone second while measuring on the simulated phones
TRAIN_CONFIG = "tiny-demo"  # the shipped training configuration (supernet/training/configs/tiny-demo.toml)
DEMO_KIND, DEMO_VERSION = "demo", 1


def _setting(key: str, value: str) -> str:
    """``--set key=value``'s argument, the value quoted only where YAML would not read it back as that text."""
    return f"{key}={value}" if yaml.safe_load(value) == value else f"{key}={json.dumps(value)}"


@dataclass(frozen=True)
class DemoSettings:
    out: Path
    train_steps: int = 400
    predictor_blocks: int = 48
    budget_fraction: float = 0.5    # the host budget: this far from the smallest to the largest subnet's latency
    tables: Path | None = None      # where to import the nn-Meter tables from, if they are not installed


class DemoStepFailed(OperationFailed):
    """A step's command failed; the message names the step and its log."""


class Demo:
    def __init__(self, settings: DemoSettings, say: Callable[[str], None]):
        self.s, self.say = settings, say
        self.logs = settings.out / "logs"
        self.steps_done: list[dict[str, Any]] = []

    def _run(self, step: str, args: list[str], check: bool = True) -> str | None:
        """Run `elasticvit-deploy ARGS` (printed first), its stderr to logs/<step>.log; return its stdout."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{step}.log"
        shown = " ".join(a if " " not in a else repr(a) for a in args)
        self.say(f"  $ elasticvit-deploy {shown}")
        t0 = time.perf_counter()
        with open(log, "w", encoding="utf-8") as err:
            proc = subprocess.run([sys.executable, "-m", "elasticvit_deploy", *args], stdout=subprocess.PIPE,
                                  stderr=err, text=True)
        seconds = time.perf_counter() - t0
        self.steps_done.append({"step": step, "seconds": round(seconds, 1), "log": str(log)})
        if proc.returncode != 0:
            tail = log.read_text(encoding="utf-8").strip().splitlines()[-1:] or ["(no output)"]
            if not check:
                self.say(f"    failed: {tail[0]}")
                return None
            raise DemoStepFailed(f"step {step} failed (exit {proc.returncode}): {tail[0]} (log: {log})")
        self.say(f"    done in {seconds:.0f} s")
        return proc.stdout

    def train(self) -> Path:
        out = self.s.out / "train"
        data = "fashion-mnist" if FASHION_MNIST_DIR.is_dir() else "digits"
        if data == "digits":
            self.say("  note: Debian's dataset-fashion-mnist is not installed; training on scikit-learn's digits")
        checkpoint = out / "checkpoint.pt"
        settings = [_setting("data", data), f"steps={self.s.train_steps}", _setting("output_dir", out.as_posix())]
        args = ["train", "--json"] + (["--resume", str(checkpoint)] if checkpoint.is_file() else
                                      ["--config", TRAIN_CONFIG, *(a for s in settings for a in ("--set", s))])
        self._run("1-train", args)
        return checkpoint

    def build_predictor(self) -> None:
        self._run("2-predictor", ["predictor", "build", "--device", "host", "--space", TINY.name, "--budget",
                                  str(self.s.predictor_blocks), "--models", "4", "--json"])

    def host_budget(self) -> float:
        model = load_predictor("host", TINY)
        lo, hi = model.predict(min_arch(TINY)), model.predict(max_arch(TINY))
        return round(lo + self.s.budget_fraction * (hi - lo), 3)

    def search(self, checkpoint: Path, budget: float) -> dict[str, Any]:
        out = self.s.out / "search"
        self._run("3-search", ["search", "--checkpoint", str(checkpoint), "--target", "host", "--ms", f"{budget:g}",
                               "--verify", "--population", "64", "--parents", "32", "--mutations", "16",
                               "--crossovers", "16", "--generations", "8", "--eval-initial", "12",
                               "--eval-per-generation", "1", "--eval-final", "3", "--calib-batches", "16",
                               "--out", str(out), "--json"])
        return json.loads((out / "result.json").read_text(encoding="utf-8"))

    def _run_out(self, step: str, args: list[str]) -> str:
        out = self._run(step, args)
        assert out is not None  # a checked step raises instead
        return out

    def measure(self, model: Path) -> list[Path]:
        host = self.s.out / "measure-host.json"
        host.write_text(self._run_out("4-measure-host", ["measure", str(model), "--device", "host", "--json"]))
        return [host, self.measure_simulated("5-measure-simulated", model, "measure-simulated.json")]

    def measure_simulated(self, step: str, model: Path, name: str) -> Path:
        """Measure `model` on the four simulated phones (twins of the table phones), started for this step."""
        from .simulator import SimulatedFarm

        out = self.s.out / name
        with SimulatedFarm(list(SIM_PHONES), time_scale=SIM_TIME_SCALE) as farm:
            self.say(f"  simulated phones (a SIMULATOR, not real phones) on 127.0.0.1:{farm.port}")
            out.write_text(self._run_out(step, ["measure", str(model), "--all", "--adb", f"127.0.0.1:{farm.port}",
                                                "--json"]))
        return out

    def tables_ready(self) -> bool:
        """Whether the four nn-Meter tables are installed (importing or downloading them first if not)."""
        if all(installed_table_path(d) is not None for d in TABLE_DEVICES):
            return True
        if self.s.tables is not None:
            return self._run("0-tables", ["predictor", "import-tables", str(self.s.tables)], check=False) is not None
        return self._run("0-tables", ["predictor", "fetch-tables"], check=False) is not None

    def twin_search(self) -> dict[str, Any]:
        """Search the ElasticViT space for the twin target's budget (its table) and verify on its twin."""
        out = self.s.out / "search-twin"
        self._run("6-search-twin", ["search", "--target", TWIN_TARGET, "--ms", f"{TWIN_BUDGET_MS:g}", "--verify",
                                    "--simulate", "--out", str(out), "--json"])
        return json.loads((out / "result.json").read_text(encoding="utf-8"))

    def report(self, inputs: list[Path]) -> Path:
        out = self.s.out / "report"
        self._run("7-report", ["report", *map(str, inputs), "--out", str(out)])  # the search result brings the budget
        return out

    def run(self) -> dict[str, Any]:
        self.s.out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        tables = self.tables_ready()  # first, so every simulated phone follows its table from the start
        self.say(f"[1/7] train a supernet of the tiny space ({self.s.train_steps} steps)")
        checkpoint = self.train()
        self.say(f"[2/7] build a host latency predictor ({self.s.predictor_blocks} blocks, each exported to "
                 f"TFLite and measured)")
        self.build_predictor()
        budget = self.host_budget()
        self.say(f"[3/7] search the best subnet within {budget:g} ms on this host (predicted), then export and "
                 f"verify it")
        result = self.search(checkpoint, budget)
        choice = result["choices"][0]
        if choice.get("model") is None:
            raise DemoStepFailed(f"the search found no subnet that measured within {budget:g} ms: "
                                 f"{'; '.join(choice['notes'])}")
        self.say(f"    chosen: {choice['mflops']:.1f} MFLOPs, top-1 {choice['accuracy']:.2%} "
                 f"({choice['accuracy_source']}), predicted {choice['predicted_ms']:.2f} ms, measured "
                 f"{choice['measured_ms']:.2f} ms")
        if choice.get("measured_on", {}).get("statistic") == "best":
            self.say("    (on this host the search reads the fastest inference of a measurement, robust to other "
                     "tenants of a shared machine; `measure` and the report show medians)")
        self.say("[4/7]+[5/7] measure the exported winner on this host and on simulated phones (a tiny-space "
                 "model: the phones' tables do not know it, so they time it as host latency x a speed factor)")
        inputs = self.measure(Path(choice["model"]))
        twin: dict[str, Any] | None = None
        self.say(f"[6/7] search the ElasticViT space for {TWIN_TARGET} at {TWIN_BUDGET_MS:g} ms (its nn-Meter table, "
                 f"FLOPs as the accuracy proxy) and verify the winner on its digital twin")
        if tables:
            twin = self.twin_search()["choices"][0]
            if twin.get("model") is None:
                raise DemoStepFailed(f"the twin search found no subnet that measured within {TWIN_BUDGET_MS:g} ms: "
                                     f"{'; '.join(twin['notes'])}")
            self.say(f"    chosen: {twin['mflops']:.1f} MFLOPs, predicted {twin['predicted_ms']:.2f} ms, measured "
                     f"{twin['measured_ms']:.2f} ms on the simulated {TWIN_TARGET}")
            self.say("  and measure it on the four twins (each timed from its own phone's table)")
            inputs += [self.measure_simulated("6-measure-twins", Path(twin["model"]), "measure-twins.json"),
                       self.s.out / "search-twin" / "result.json"]
        else:
            self.say("    skipped: the nn-Meter tables are not installed (give --tables DIR, or run "
                     "'elasticvit-deploy predictor import-tables DIR')")
        self.say("[7/7] write the per-phone report")
        report = self.report(inputs + [self.s.out / "search" / "result.json"])
        return {**header(DEMO_KIND, DEMO_VERSION), "out": str(self.s.out), "checkpoint": str(checkpoint),
                "budget_ms": budget, "choice": choice, "model": choice["model"], "report": str(report),
                "summary": str(report / "summary.md"), "twin_choice": twin, "steps": self.steps_done,
                "total_s": round(time.perf_counter() - t0, 1)}
