"""`elasticvit-deploy search`: the best subnet per (target, latency budget), verified on the device on request."""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from supernet.checkpoint import CheckpointError
from supernet.space import SearchSpace
from supernet.training.data import DataError
from supernet.training.evaluate import SubnetEvaluator, resolve_device

from ..cli_common import emit_json, resolve_space
from ..errors import CommandFailed, UserError, shorten
from ..export.pipeline import ExportError
from ..farm.adb import AdbServer, FarmError, Phone
from ..farm.measure import MeasureOptions, PhoneTarget
from ..farm.registry import Registry
from ..farm.runner_protocol import RunnerSettings
from ..farm.store import ResultsStore
from ..latency import builder
from ..latency.model import ArchLatencyModel, UncoveredArchError
from ..latency.targets import TargetError, check_device_name, load_target
from ..search.evolution import BudgetError, EvolutionConfig, StateMismatchError
from ..search.objectives import PROXY_WARNING, AccuracyCache, FlopsProxy, SupernetAccuracy
from ..search.run import ORACLES, SearchRequest, SearchRun, Services
from .farm import adb_option, single_target
from .latency import open_target


def _split(value: str, what: str, cast: Any) -> tuple:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UserError(f"{what}: give at least one value")
    try:
        out = tuple(cast(v) for v in items)
    except ValueError:
        raise UserError(f"{what}: {shorten(value)} is not a comma list of {cast.__name__} values") from None
    if len(set(out)) != len(out):
        raise UserError(f"{what}: {shorten(value)} repeats a value")
    return out


def _budget(v: str) -> float:
    ms = float(v)
    if not math.isfinite(ms) or ms <= 0:
        raise ValueError(v)
    return ms


@contextlib.contextmanager
def _devices(device: str | None, simulate: bool, adb: str | None, statistic: str) -> Iterator[Any]:
    """A factory of measurers by target name, and the simulated phones it started (stopped on exit)."""
    settings = RunnerSettings(warmup=10, runs=50, threads=0, cores=None)
    options = MeasureOptions(rounds=3)
    stack = contextlib.ExitStack()

    def make(target: str) -> builder.Measurer:
        name = device or target
        stat = statistic if statistic != "auto" else ("best" if name == "host" else "median")
        if device is None and simulate and target != "host":
            from ..simulator import PROFILES, SimulatedFarm

            if target not in PROFILES:
                raise UserError(f"--simulate: no simulated twin of {target} (profiles: {', '.join(PROFILES)})")
            farm = stack.enter_context(SimulatedFarm([target]))
            phone = Phone(AdbServer("127.0.0.1", farm.port, explicit=True), farm.serials[0])
            measuring = PhoneTarget(phone, f"simulated-{target}", replace(settings, threads=1, cores="auto"), options)
            try:
                measuring.prepare()
            except FarmError as e:
                raise UserError(f"--simulate {target}: {e}") from None
            return builder.Measurer(measuring, ResultsStore(), options, stat)
        if device is None and target != "host" and target not in Registry().load():
            raise UserError(f"--target {target}: no device to measure on; register the phone "
                            f"(`elasticvit-deploy farm add {target} SERIAL`), give --device, or --simulate")
        return builder.Measurer(single_target(name, adb, settings, options), ResultsStore(), options, stat)

    with stack:
        yield make


def _objective(checkpoint: str | None, data: str | None, space: SearchSpace | None, out: Path, seed: int,
               eval_initial: int, eval_per_generation: int, eval_final: int, calib_batches: int,
               eval_device: str, as_json: bool) -> tuple[Any, SearchSpace, Any]:
    if checkpoint is None:
        return None, space or resolve_space("elasticvit"), None
    try:
        evaluator = SubnetEvaluator.from_checkpoint(checkpoint, data=data, split="val", space=space,
                                                    calib_batches=calib_batches, device=resolve_device(eval_device))
    except (CheckpointError, DataError, ValueError) as e:
        raise UserError(f"--checkpoint {checkpoint}: {e}") from None
    bar = tqdm(desc="evaluated subnets", unit="subnet", disable=as_json, position=1, leave=False)
    cache = AccuracyCache(out / "accuracy.jsonl", evaluator.source())
    objective = SupernetAccuracy(evaluator, cache, initial=eval_initial,
                                 per_generation=eval_per_generation, final=eval_final, seed=seed,
                                 on_evaluate=lambda _t: bar.update(1))
    return objective, evaluator.space, evaluator.weights


def _print(result: dict[str, Any], path: Path) -> None:
    for c in result["choices"]:
        head = f"{c['target']} <= {c['budget_ms']:g} ms:"
        if c.get("arch") is None:
            click.echo(f"{head} no subnet ({'; '.join(c['notes'])})")
            continue
        score = (f"top-1 {c['accuracy']:.2%} ({c['accuracy_source']})" if "accuracy" in c
                 else f"proxy {c['proxy']['name']} {c['proxy']['value']:.1f}")
        pred = "n/a" if c["predicted_ms"] is None else f"{c['predicted_ms']:.2f} ms"
        meas = "not measured" if c["measured_ms"] is None else f"measured {c['measured_ms']:.2f} ms"
        where = ""
        if c.get("measured_on"):
            sim = " SIMULATED" if c["measured_on"].get("simulated") else ""
            where = f" on {c['measured_on'].get('alias') or c['measured_on'].get('serial')}{sim}"
        click.echo(f"{head} {c['mflops']:.1f} MFLOPs, predicted {pred}, {meas}{where}, {score}")
        for note in c["notes"]:
            click.echo(f"    note: {note}")
        if c.get("model"):
            click.echo(f"    model: {c['model']}")
    for target, front in result["pareto"].items():
        click.echo(f"Pareto front for {target}: {len(front)} subnets, "
                   f"{front[0]['latency_ms']:.2f}..{front[-1]['latency_ms']:.2f} ms")
    t = result["timing"]
    click.echo(f"searched {sum(p['candidates'] for p in t['pairs'])} candidates in {t['total_s']:.1f} s; "
               f"wrote {path}")


@click.command("search")
@click.option("--target", "targets", required=True, metavar="T[,T...]",
              help="Latency targets: pixel1, pixel4, pixel6, xiaomi11 (tables), host, or a device with a built "
                   "predictor; a comma list searches each.")
@click.option("--ms", "budgets", required=True, metavar="MS[,MS...]", help="Latency budgets in ms (comma list).")
@click.option("--checkpoint", default=None, type=click.Path(dir_okay=False), metavar="CKPT",
              help="Trained supernet: rank by its accuracy (else by a FLOPs proxy, with a warning).")
@click.option("--data", default=None, metavar="SOURCE", help="Evaluation data (default: the checkpoint's).")
@click.option("--space", "space_name", default=None, metavar="NAME",
              help="Search space (default: the checkpoint's, else elasticvit).")
@click.option("--oracle", type=click.Choice(ORACLES), default="auto", show_default=True,
              help="Latency constraint: an installed predictor (auto: the best one), live measurement, or hybrid "
                   "(predict, then measure the best candidates and re-rank).")
@click.option("--verify", is_flag=True, help="Export each winner to TFLite and measure it; fall back if over budget.")
@click.option("--device", default=None, metavar="NAME",
              help="Where live/hybrid/verify measure (host, alias or serial; default: the target's own name).")
@click.option("--simulate", is_flag=True, help="Measure on the target's simulated twin (a SIMULATOR, not a phone).")
@click.option("--statistic", type=click.Choice(["auto", *builder.STATISTICS]), default="auto", show_default=True,
              help="Measured latency figure: auto is best (fastest inference) on host, median on phones.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", default="search-out", show_default=True, type=click.Path(file_okay=False),
              help="result.json, per-generation state (a rerun resumes), accuracies, exported models.")
@click.option("--population", type=click.IntRange(2), default=512, show_default=True)
@click.option("--parents", type=click.IntRange(1), default=256, show_default=True)
@click.option("--mutations", type=click.IntRange(0), default=128, show_default=True)
@click.option("--crossovers", type=click.IntRange(0), default=128, show_default=True)
@click.option("--generations", type=click.IntRange(0), default=40, show_default=True)
@click.option("--mutation-prob", type=click.FloatRange(0, 1), default=0.2, show_default=True)
@click.option("--depth-prob", type=click.FloatRange(0, 1), default=0.4, show_default=True)
@click.option("--eval-initial", type=click.IntRange(2), default=24, show_default=True,
              help="With a checkpoint: subnets of the first population evaluated for real.")
@click.option("--eval-per-generation", type=click.IntRange(0), default=2, show_default=True)
@click.option("--eval-final", type=click.IntRange(1), default=5, show_default=True)
@click.option("--calib-batches", type=click.IntRange(1), default=32, show_default=True,
              help="BN recalibration batches per evaluated subnet.")
@click.option("--eval-device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--hybrid-k", type=click.IntRange(1), default=5, show_default=True,
              help="hybrid: at most this many candidates measured per budget.")
@click.option("--verify-tries", type=click.IntRange(1), default=3, show_default=True)
@adb_option
@click.option("--json", "as_json", is_flag=True, help="Print result.json on stdout.")
def search_command(targets: str, budgets: str, checkpoint: str | None, data: str | None, space_name: str | None,
                   oracle: str, verify: bool, device: str | None, simulate: bool, statistic: str, seed: int,
                   out_dir: str, population: int, parents: int, mutations: int, crossovers: int, generations: int,
                   mutation_prob: float, depth_prob: float, eval_initial: int, eval_per_generation: int,
                   eval_final: int, calib_batches: int, eval_device: str, hybrid_k: int, verify_tries: int,
                   adb: str | None, as_json: bool) -> None:
    """Evolutionary search (spec 5.1 numbers, bugs fixed) for the best subnet of every TARGET x MS pair, and the
    accuracy-latency Pareto front per target. Deterministic for a seed; rerun with the same --out to resume."""
    target_list = _split(targets, "--target", str)
    budget_list = _split(budgets, "--ms", _budget)
    for t in target_list:
        try:
            check_device_name(t)
        except TargetError as e:
            raise UserError(f"--target: {e}") from None
    if len({f"{b:g}" for b in budget_list}) != len(budget_list):
        raise UserError(f"--ms {budgets}: budgets must differ in their first 6 significant digits")
    out = Path(out_dir)
    space = resolve_space(space_name) if space_name else None
    objective, space, weights = _objective(checkpoint, data, space, out, seed, eval_initial, eval_per_generation,
                                           eval_final, calib_batches, eval_device, as_json)
    objective = objective or FlopsProxy(space)
    if checkpoint is None:
        click.echo(f"warning: {PROXY_WARNING}", err=True)
    models: dict[str, ArchLatencyModel] = {}

    def predictor(target: str, kind: str) -> ArchLatencyModel:
        """The installed predictor (ValueError if none: `live` searches go on without predictions)."""
        if (target, kind) not in models:
            models[target, kind] = load_target(target, space, kind)  # type: ignore[arg-type]
        return models[target, kind]

    if oracle != "live":
        for t in target_list:  # every target resolvable before any work
            open_target(t, space.name, "auto" if oracle == "hybrid" else oracle)
    config = EvolutionConfig(population, parents, mutations, crossovers, generations, mutation_prob, depth_prob, seed)
    request = SearchRequest(space, target_list, budget_list, out, config, oracle, hybrid_k=hybrid_k, verify=verify,
                            verify_tries=verify_tries)
    bar = tqdm(total=len(target_list) * len(budget_list) * generations, desc="search", unit="gen", disable=as_json)
    with _devices(device, simulate, adb, statistic) as measurer:
        services = Services(predictor, measurer, weights,
                            lambda pair, g: (bar.set_postfix_str(pair, refresh=False), bar.update(1)))
        run = SearchRun(request, objective, services)
        try:
            if verify or oracle in ("live", "hybrid"):
                for t in target_list:  # every device reachable before any work
                    services.measurer_for(t)
            result = run.run()
        except BudgetError as e:
            raise UserError(f"--ms: {e}") from None
        except StateMismatchError as e:
            raise UserError(str(e)) from None
        except UncoveredArchError as e:
            raise UserError(f"--target: {e}") from None
        except (FarmError, ExportError) as e:
            raise CommandFailed(f"search stopped (progress is saved in {out}; rerun to resume): {e}") from None
        finally:
            bar.close()
    if simulate:
        for c in result["choices"]:
            if c.get("measured_on"):
                c["measured_on"]["simulated"] = c["target"] != "host" and device is None
    result["warning"] = None if checkpoint else PROXY_WARNING
    path = run.write(result)
    if as_json:
        emit_json(result)
    else:
        _print(result, path)
    if any(c.get("arch") is None for c in result["choices"]):
        sys.exit(1)
