"""`elasticvit-deploy search`: the best subnet per (device, latency budget), verified on the device on request."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

import click
from tqdm import tqdm

from supernet.training.distributed import DistContext
from supernet.training.evaluate import CALIB_AUGMENTS, SubnetEvaluator
from supernet.training.sharding import ShardedEvaluator

from ..cli_common import adb_option, emit_json, resolve_space
from ..errors import CommandFailed, UserError, shorten
from ..export.pipeline import ExportError
from ..farm.adb import FarmError
from ..latency.measurer import STATISTICS
from ..latency.predictors import BadDeviceName, check_device_name
from ..search.evolution import EvolutionConfig
from ..search.measuring import MeasurerPool, MeasuringPlan
from ..search.objectives import FlopsProxy, supernet_accuracy
from ..search.oracles import ORACLES, InstalledPredictors
from ..search.protocols import Objective
from ..search.result import SearchResult
from ..search.run import SearchRequest, SearchRun, Services

T = TypeVar("T")


def _split(value: str, what: str, cast: Callable[[str], T], kind: str = "values") -> tuple[T, ...]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UserError(f"{what}: give at least one value")
    try:
        out = tuple(cast(v) for v in items)
    except ValueError:
        raise UserError(f"{what}: {shorten(value)} is not a comma list of {kind}") from None
    if len(set(out)) != len(out):
        raise UserError(f"{what}: {shorten(value)} repeats a value")
    return out


def _budget(v: str) -> float:
    ms = float(v)
    if not math.isfinite(ms) or ms <= 0:
        raise ValueError(v)
    return ms


def _say(message: str) -> None:
    click.echo(message, err=True)


def _print(result: SearchResult, path: Path) -> None:
    for c in result.choices:
        head = f"{c.device} <= {c.budget_ms:g} ms:"
        if c.arch is None or c.mflops is None:
            click.echo(f"{head} no subnet ({'; '.join(c.notes)})")
            continue
        s = c.score
        score = (f"top-1 {s['accuracy']:.2%} ({s['accuracy_source']})" if "accuracy" in s
                 else f"proxy {s['proxy']['name']} {s['proxy']['value']:.1f}")
        pred = "n/a" if c.predicted_ms is None else f"{c.predicted_ms:.2f} ms"
        meas = "not measured" if c.measured_ms is None else f"measured {c.measured_ms:.2f} ms"
        where = ""
        if c.measured_on:
            sim = " SIMULATED" if c.measured_on.get("simulated") else ""
            where = f" on {c.measured_on.get('alias') or c.measured_on.get('serial')}{sim}"
        click.echo(f"{head} {c.mflops:.1f} MFLOPs, predicted {pred}, {meas}{where}, {score}")
        for note in c.notes:
            click.echo(f"    note: {note}")
        if c.model:
            click.echo(f"    model: {c.model}")
    for device, front in result.pareto.items():
        click.echo(f"Pareto front for {device}: {len(front)} subnets, "
                   f"{front[0].latency_ms:.2f}..{front[-1].latency_ms:.2f} ms")
    t = result.timing
    click.echo(f"searched {sum(p['candidates'] for p in t['pairs'])} candidates in {t['total_s']:.1f} s; "
               f"wrote {path}")


@click.command("search")
@click.option("--target", "targets", required=True, metavar="T[,T...]",
              help="Devices to search for: pixel1, pixel4, pixel6, xiaomi11 (tables), host, or a device with a built "
                   "predictor; a comma list searches each.")
@click.option("--ms", "budgets", required=True, metavar="MS[,MS...]", help="Latency budgets in ms (comma list).")
@click.option("--checkpoint", default=None, type=click.Path(dir_okay=False), metavar="CKPT",
              help="Trained supernet: rank by its accuracy (else by a FLOPs proxy, with a warning).")
@click.option("--data", default=None, metavar="SOURCE", help="Evaluation data (default: the checkpoint's).")
@click.option("--space", "space_name", default=None, metavar="NAME",
              help="Search space (default: the checkpoint's, else elasticvit).")
@click.option("--oracle", type=click.Choice(list(ORACLES)), default="auto", show_default=True,
              help="Latency constraint: an installed predictor (auto: the best one), live measurement, or hybrid "
                   "(predict, then measure the best candidates and re-rank).")
@click.option("--verify", is_flag=True, help="Export each winner to TFLite and measure it; fall back if over budget.")
@click.option("--device", default=None, metavar="NAME",
              help="Where live/hybrid/verify measure (host, alias or serial; default: the target's own name).")
@click.option("--simulate", is_flag=True, help="Measure on the target's simulated twin (a SIMULATOR, not a phone).")
@click.option("--statistic", type=click.Choice(["auto", *STATISTICS]), default="auto", show_default=True,
              help="Measured latency figure: auto is best (fastest inference) on host, median on phones.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", default="search-out", show_default=True, type=click.Path(file_okay=False),
              help="result.json, per-generation state (a rerun resumes), accuracies, exported models.")
@click.option("--fresh", is_flag=True, help="Start over: discard the saved state of every searched pair in --out.")
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
@click.option("--calib-augment", type=click.Choice(CALIB_AUGMENTS), default="run", show_default=True,
              help="Augmentation of the BN calibration batches: the checkpoint's training augmentation (run; fixed "
                   "crops for an official file), the paper's recipe (official, as the official bn_cal) or none.")
@click.option("--eval-device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Under torchrun each process evaluates on its own GPU (cuda:LOCAL_RANK).")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Data-loading processes for the evaluations (image folders and tar shards).")
@click.option("--hybrid-k", type=click.IntRange(1), default=5, show_default=True,
              help="hybrid: at most this many candidates measured per budget.")
@click.option("--verify-tries", type=click.IntRange(1), default=3, show_default=True)
@adb_option
@click.option("--json", "as_json", is_flag=True, help="Print result.json on stdout.")
def search_command(targets: str, budgets: str, checkpoint: str | None, data: str | None, space_name: str | None,
                   oracle: str, verify: bool, device: str | None, simulate: bool, statistic: str, seed: int,
                   out_dir: str, fresh: bool, population: int, parents: int, mutations: int, crossovers: int,
                   generations: int, mutation_prob: float, depth_prob: float, eval_initial: int,
                   eval_per_generation: int, eval_final: int, calib_batches: int, calib_augment: str,
                   eval_device: str, workers: int,
                   hybrid_k: int, verify_tries: int, adb: str | None, as_json: bool) -> None:
    """Evolutionary search (the numbers of the official `search_subnet_via_flops.py`, its bugs fixed) for the best
    subnet of every TARGET x MS pair, and the accuracy-latency Pareto front per target. Deterministic for a seed;
    rerun with the same --out to resume (--fresh to start over).

    With --checkpoint under torchrun, rank 0 searches and the subnets it evaluates are shared out over the processes
    (the same result as one process)."""
    devices = _split(targets, "--target", str)
    budget_list = _split(budgets, "--ms", _budget, "budgets in ms (positive numbers)")
    for name in devices:
        try:
            check_device_name(name)
        except BadDeviceName as e:
            raise UserError(f"--target: {e}") from None
    if len({f"{b:g}" for b in budget_list}) != len(budget_list):
        raise UserError(f"--ms {budgets}: budgets must differ in their first 6 significant digits")
    out = Path(out_dir)
    space = resolve_space(space_name) if space_name else None
    objective: Objective
    bars = []
    with ExitStack() as stack:
        dist = DistContext.from_env(eval_device if checkpoint else "cpu")
        stack.callback(dist.shutdown)
        if checkpoint is None:
            if not dist.is_main:  # under torchrun without a checkpoint there is nothing to share out
                return
            space = space or resolve_space("elasticvit")
            objective, weights = FlopsProxy(space), None
        else:
            local = SubnetEvaluator.from_checkpoint(checkpoint, data=data, split="val", space=space,
                                                    calib_batches=calib_batches, calib_augment=calib_augment,
                                                    workers=workers, device=dist.device)
            evaluator = ShardedEvaluator(local, dist)
            if not dist.is_main:  # under torchrun: rank 0 searches, the others evaluate the subnets it sends
                evaluator.serve()
                return
            stack.callback(evaluator.close)
            accuracy = supernet_accuracy(evaluator, out / "accuracy.jsonl", initial=eval_initial,
                                         per_generation=eval_per_generation, final=eval_final, seed=seed)
            evaluated = tqdm(desc="evaluated subnets", unit="subnet", disable=as_json, position=1, leave=False)
            accuracy.on_evaluate, bars = lambda _t: evaluated.update(1), [evaluated]
            objective, space, weights = accuracy, accuracy.space, local.weights
        if objective.warning:
            click.echo(f"warning: {objective.warning}", err=True)
        config = EvolutionConfig(population, parents, mutations, crossovers, generations, mutation_prob, depth_prob,
                                 seed)
        request = SearchRequest(space, devices, budget_list, out, config, oracle, hybrid_k=hybrid_k, verify=verify,
                                verify_tries=verify_tries, fresh=fresh)

        def progress(pair: str, _generation: int) -> None:
            bar.set_postfix_str(pair, refresh=False)
            bar.update(1)

        try:
            with MeasurerPool(MeasuringPlan(device, simulate, statistic, adb), on_wait=_say) as pool:
                run = SearchRun(request, objective, Services(InstalledPredictors(space), pool, weights, progress))
                run.prepare()  # every predictor installed and every device usable before any work
                bar = tqdm(total=len(devices) * len(budget_list) * generations, desc="search", unit="gen",
                           disable=as_json)
                bars.append(bar)
                try:
                    result = run.run()
                except (FarmError, ExportError) as e:
                    raise CommandFailed(f"search stopped (progress is saved in {out}; rerun to resume): {e}") from None
        finally:
            for each in bars:
                each.close()
    path = run.write(result)
    if as_json:
        emit_json(result.to_dict())
    else:
        _print(result, path)
    if not result.complete:
        sys.exit(1)
