"""`elasticvit-deploy measure`, `farm list/add/setup/simulate` and `results export`."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from supernet.documents import header

from ..cli_common import adb_option, emit_json, say
from ..errors import CommandFailed, UserError, shorten
from ..farm.adb import AdbServer, FarmError, Phone, check_serial
from ..farm.batch import BatchReport, LeasePolicy, measure_batch
from ..farm.devices import resolve_devices
from ..farm.identity import read_identity
from ..farm.install import check_benchmark_binary, install_on
from ..farm.labels import check_label, default_label
from ..farm.lease import PhoneLease
from ..farm.measure import LocalModel, MeasurementResult, MeasureOptions
from ..farm.registry import DeviceEntry, Registry, check_adb_address, check_alias
from ..farm.runner_protocol import DELEGATES, RunnerSettings
from ..farm.store import ResultsStore, export_document
from ..simulator.quirks import QUIRKS

SETTINGS = RunnerSettings()  # the measurement defaults the options show
OPTIONS = MeasureOptions()
LISTING_KIND = "farm-listing"
LISTING_VERSION = 1


def _table(report: BatchReport) -> str:
    lines = [f"{'device':<16} {'model':<40} {'median ms':>10} {'p90':>8} {'cv':>6} {'rounds':>7} {'init ms':>8} "
             f"{'temp C':>11}  notes"]
    for r in report.results:
        s = r.summary
        temp = s.temperature_c
        temp_text = "-" if temp["first"] is None else f"{temp['first']:.0f}->{temp['last']:.0f}"
        notes = [k for k, v in s.throttling.items() if v and k != "any"] + (["cached"] if r.cached else [])
        notes += [f"round {x['round']}: {x['count']}/{r.flags['runs']} runs" for x in s.short_rounds]
        init = "None" if s.init_ms is None else str(round(s.init_ms, 1))
        lines.append(f"{r.device_name:<16} {Path(r.model).name[:40]:<40} {s.median_ms:>10.3f} {s.p90_ms:>8.3f} "
                     f"{s.cv:>6.1%} {s.rounds:>3}x{r.flags['runs']:<3} {init:>8} {temp_text:>11}  "
                     f"{', '.join(notes) or '-'}")
    return "\n".join(lines)


def _profile_line(result: MeasurementResult) -> str | None:
    """One line on a profiled result: its three slowest op types with their shares of the time, and the peak
    memory the profiling run reported; None for a result without a profile."""
    if result.profile is None:
        return None
    where = f"profile {result.device_name} {Path(result.model).name}:"
    ops = result.profile.ops
    types = ops.top_types(3) if ops is not None else []
    text = ", ".join(f"{t.type} {t.share:.1%}" for t in types) or "no op tables printed"
    peak = result.profile.peak_mb
    return f"{where} {text}" + (f"; peak memory {peak:.1f} MB" if peak is not None else "")


class _Notices:
    """Says each distinct notice once on stderr (thread-safe; the progress bar stays intact)."""

    def __init__(self) -> None:
        self._said: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self._lock:
            if message in self._said:
                return
            self._said.add(message)
        tqdm.write(message, file=sys.stderr)


@click.command("measure")
@click.argument("models", nargs=-1, required=True, metavar="MODEL.tflite...")
@click.option("--serial", "serials", multiple=True, metavar="SERIAL", help="Phone by adb serial (repeatable).")
@click.option("--device", "devices", multiple=True, metavar="ALIAS",
              help="Phone by registry alias (see `farm list`), or `host` for this machine's CPU (repeatable).")
@click.option("--all", "use_all", is_flag=True,
              help="Every ready phone on every adb server of the farm (--adb or the default, and each `adb` in "
                   "devices.toml), in parallel; phones offline, unauthorized or not connected are reported skipped.")
@click.option("--warmup", type=click.IntRange(0, 10_000), default=SETTINGS.warmup, show_default=True,
              help="Warm-up runs/round.")
@click.option("--runs", type=click.IntRange(1, 100_000), default=SETTINGS.runs, show_default=True,
              help="Timed runs/round.")
@click.option("--rounds", type=click.IntRange(1, 1000), default=OPTIONS.rounds, show_default=True,
              help="benchmark_model invocations; each round's mean is one sample of the statistics.")
@click.option("--threads", type=click.IntRange(1, 64), default=SETTINGS.threads,
              help="CPU threads [devices.toml, else 1].")
@click.option("--cores", default=SETTINGS.cores, metavar="MASK",
              help="taskset hex core mask, e.g. 70 [devices.toml, else the phone's big cluster].")
@click.option("--delegate", type=click.Choice(DELEGATES), default=SETTINGS.delegate, show_default=True,
              help="Mapped to the phone's tool: the classic benchmark_model does cpu (no XNNPACK), xnnpack, gpu and "
                   "nnapi; LiteRT 2's CompiledModel tool its own CPU, GPU and NPU accelerators. A delegate the "
                   "phone's tool cannot do is refused, never run on the CPU instead.")
@click.option("--until-stable", "until_stable", type=click.FloatRange(0.01, 100), default=None, metavar="EPS",
              help="Add rounds until the median's 95%% CI is within +-EPS%% (up to --max-rounds).")
@click.option("--max-rounds", type=click.IntRange(1, 1000), default=OPTIONS.max_rounds, show_default=True)
@click.option("--cool-below", type=click.FloatRange(10, 100), default=(SETTINGS.cool_below_mc or 0) / 1000,
              show_default=True, metavar="C", help="Before each round, wait until the phone is cooler than this "
                                                   "(degrees C).")
@click.option("--cool-timeout", type=click.IntRange(0, 3600), default=SETTINGS.cool_timeout_s, show_default=True,
              metavar="S")
@click.option("--fresh", is_flag=True, help="Measure again even if the store holds a matching result.")
@click.option("--label", default=None, metavar="LABEL",
              help="Tag every measurement of the batch (reused ones too) with LABEL, 1-100 printable characters "
                   "[`git describe --always --dirty` inside a git work tree, else the UTC time, e.g. "
                   "20261201T224000Z].")
@click.option("--profile", "profile", is_flag=True,
              help="After the timed rounds, one more run with the tool's op profiling on (never part of the "
                   "numbers): per-op and per-op-type times and peak memory, stored with the measurement; a reused "
                   "measurement without a stored profile gets one.")
@click.option("--no-wait", "no_wait", is_flag=True,
              help="Skip a phone another process is measuring (reported as busy) instead of waiting for it.")
@click.option("--wait-timeout", "wait_timeout", type=click.IntRange(0, 7 * 86400), default=None, metavar="S",
              help="Wait at most S seconds for a phone another process is measuring, then skip it [no limit].")
@adb_option
@click.option("--store", "store_path", type=click.Path(dir_okay=False), default=None,
              help="Results database (default: results.sqlite in the user-data dir).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def measure_command(models: tuple[str, ...], serials: tuple[str, ...], devices: tuple[str, ...], use_all: bool,
                    warmup: int, runs: int, rounds: int, threads: int | None, cores: str | None, delegate: str,
                    until_stable: float | None, max_rounds: int, cool_below: float, cool_timeout: int, fresh: bool,
                    label: str | None, profile: bool, no_wait: bool, wait_timeout: int | None, adb: str | None,
                    store_path: str | None, as_json: bool) -> None:
    """Measure .tflite MODELs on phones (--serial/--device/--all) or on this host (--device host, the default).

    Reports per model and device: median, p90, mean, std, CV, min of the round means, init time, temperatures
    and throttling flags, with the device fingerprint and runtime version. Results are stored (SQLite) and
    reused unless --fresh; an interrupted batch resumes where it stopped. A phone is measured by one process at a
    time on this host: a phone in use by another `measure` (or `farm setup`) is waited for, saying so on stderr.
    Every measurement is tagged with the batch's --label as soon as it is complete.
    """
    label = check_label(label) if label is not None else default_label()
    local = [LocalModel.load(m) for m in models]
    settings = RunnerSettings(warmup=warmup, runs=runs, threads=threads, cores=cores, delegate=delegate,
                              cool_below_mc=int(cool_below * 1000), cool_timeout_s=cool_timeout)
    settings.validate()
    options = MeasureOptions(rounds=rounds, until_stable_pct=until_stable, max_rounds=max(max_rounds, rounds),
                             fresh=fresh, profile=profile)
    selection = resolve_devices(serials, devices, use_all, adb, settings, options)
    if not (serials or devices or use_all) and not as_json:
        click.echo("measuring on this host (no --serial/--device/--all given)", err=True)
    store = ResultsStore(store_path)
    if not as_json:
        click.echo(f"label: {label}", err=True)
    bar = tqdm(total=len(selection.devices) * len(local), desc="measuring", unit="model", disable=as_json,
               leave=False)
    lock = threading.Lock()

    def tick(_name: str) -> None:
        with lock:
            bar.update(1)

    try:
        leases = LeasePolicy(wait=not no_wait, timeout_s=wait_timeout, command="elasticvit-deploy measure",
                             on_wait=lambda message: tqdm.write(message, file=sys.stderr))
        report = measure_batch(selection.devices, local, store, options, progress=tick, leases=leases, label=label,
                               notify=_Notices())
    finally:
        bar.close()
    report.skipped[:0] = selection.skipped
    if as_json:
        emit_json(report.to_dict())
    else:
        if report.results:
            click.echo(_table(report))
        for line in filter(None, map(_profile_line, report.results)):
            click.echo(line)
        for s in report.skipped:
            click.echo(f"skipped {s['device']}: {s['reason']}", err=True)
        for f in report.failures:
            click.echo(f"failed {f['device']} {Path(f['model']).name}: {f['error']}", err=True)
    if report.failures or report.skipped:
        problem = (report.skipped or report.failures)[0]
        raise CommandFailed(problem.get("reason") or problem.get("error", "some measurements failed"))


@click.group("farm")
def farm_group() -> None:
    """Phones on an adb server: list, name, set up, or simulate them."""


@farm_group.command("list")
@adb_option
@click.option("--json", "as_json", is_flag=True)
def farm_list(adb: str | None, as_json: bool) -> None:
    """Every phone on every adb server of the farm (--adb or the default, and each `adb` in devices.toml): serial,
    alias, model, state, server; registered aliases not connected; a server that does not answer is one line
    (exit status 1, after listing the others)."""
    default = AdbServer.resolve(adb)
    farm = Registry().farm(default)
    rows: list[dict[str, Any]] = []
    servers: list[dict[str, str | None]] = []
    for server, registered in farm:
        try:
            states = server.states()
        except FarmError as e:
            servers.append({"adb": str(server), "error": str(e)})
            rows += [{"serial": r.serial, "alias": r.alias, "model": "?", "state": "server not answering",
                      "adb": str(server)} for r in registered]
            continue
        servers.append({"adb": str(server), "error": None})
        by_serial = {e.serial: e for e in registered}
        for serial, state in sorted(states.items()):
            model = "?"
            if state == "device":
                try:
                    model = read_identity(Phone(server, serial)).model
                except FarmError:
                    pass
            entry = by_serial.get(serial)
            rows.append({"serial": serial, "alias": entry.alias if entry else None, "model": model, "state": state,
                         "adb": str(server)})
        rows += [{"serial": e.serial, "alias": e.alias, "model": "?", "state": "not connected", "adb": str(server)}
                 for e in registered if e.serial not in states]
    if as_json:
        emit_json({**header(LISTING_KIND, LISTING_VERSION), "adb_server": str(default), "servers": servers,
                   "devices": rows})
    else:
        for s in servers:
            if s["error"]:
                click.echo(f"adb server {s['adb']}: not answering ({s['error']})")
                continue
            click.echo(f"adb server {s['adb']}")
            mine = [r for r in rows if r["adb"] == s["adb"]]
            for r in mine:
                click.echo(f"  {r['serial']:<24} {r['alias'] or '-':<12} {r['model']:<20} {r['state']}")
            if not mine:
                click.echo("  no phones (connect one, or try `elasticvit-deploy farm simulate`)")
    down = [s for s in servers if s["error"]]
    if down:
        raise CommandFailed(f"{len(down)} of {len(servers)} adb servers not answering: {down[0]['error']}")


@farm_group.command("add")
@click.argument("alias")
@click.option("--serial", required=True, help="The phone's adb serial.")
@click.option("--threads", type=click.IntRange(1, 64), default=None, help="Default threads for this phone.")
@click.option("--cores", default=None, metavar="MASK", help="Default taskset hex core mask for this phone.")
@click.option("--adb", "adb", default=None, metavar="HOST:PORT",
              help="The adb server the phone is on, when not the default one (e.g. another host's `adb -a` server).")
def farm_add(alias: str, serial: str, threads: int | None, cores: str | None, adb: str | None) -> None:
    """Name a phone: `farm add pixel4 --serial 98KAY17CJ1 --cores 70 [--adb lab-2:5037]` (written to devices.toml)."""
    RunnerSettings(cores=cores).validate()
    if adb is not None:
        check_adb_address(adb, "--adb")
    registry = Registry()
    registry.add(DeviceEntry(check_alias(alias), check_serial(serial), threads, cores, adb))
    click.echo(f"{alias} -> {serial}{f' on {adb}' if adb else ''} ({registry.path})")


@farm_group.command("setup")
@click.option("--benchmark-binary", "binary", required=True, type=click.Path(dir_okay=False),
              help="LiteRT benchmark_model built for the phones' ABI (android_aarch64).")
@click.option("--serial", "serials", multiple=True, help="Only these phones (default: every ready phone).")
@adb_option
def farm_setup(binary: str, serials: tuple[str, ...], adb: str | None) -> None:
    """Push benchmark_model and the runner to phones, skipping phones that already hold the same sha256."""
    path, sha = check_benchmark_binary(binary)
    for s in serials:
        check_serial(s)
    server = AdbServer.resolve(adb)
    chosen = list(serials) or [s for s, st in sorted(server.states().items()) if st == "device"]
    if not chosen:
        raise CommandFailed(f"no phone in state 'device' on the adb server at {server}")
    failed = []
    for serial in chosen:
        try:
            with PhoneLease(server, serial, command="elasticvit-deploy farm setup", on_wait=say):
                pushed = install_on(Phone(server, serial), path, sha)
            tool = pushed.pop("tool")
            done = ", ".join(f"{k} {'pushed' if v else 'up to date'}" for k, v in pushed.items())
            kind = f"{tool['family']}{' ' + tool['version'] if tool['version'] else ''}"
            click.echo(f"{serial}: {done}; tool {kind} (sha256 {tool['sha256'][:16]}), delegates "
                       f"{', '.join(tool['delegates'])}")
        except FarmError as e:
            click.echo(f"{serial}: FAILED {e}", err=True)
            failed.append(str(e))
    if failed:
        raise CommandFailed(failed[0])


@farm_group.command("simulate")
@click.option("--devices", default="pixel1,pixel4,pixel6,xiaomi11", show_default=True,
              help="Comma list of simulated phone profiles.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--time-scale", type=click.FloatRange(0.001, 100), default=1.0, show_default=True,
              help="Multiplies simulated durations (sleeps, cooling).")
@click.option("--quirk", "quirks", multiple=True, type=click.Choice(list(QUIRKS)), metavar="NAME",
              help="Give every phone a quirk of real phones (repeatable): "
                   + "; ".join(f"{name}: {text}" for name, text in QUIRKS.items()) + ".")
@click.option("--benchmark-binary", "benchmark_binary", default=None, metavar="PATH",
              help="A host executable the phones run as their benchmark_model (with the runner's flags, --graph "
                   "naming the pushed model) instead of the simulated one, e.g. LiteRT's linux_x86-64 build.")
@click.option("--tables", "tables", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Directory of the nn-Meter tables the phones are twins of (default: the installed tables, "
                   "see 'predictor import-tables'); a twin without its table falls back to host-scaled timing.")
def farm_simulate(devices: str, port: int, time_scale: float, quirks: tuple[str, ...],
                  benchmark_binary: str | None, tables: str | None) -> None:
    """Run simulated phones behind an adb server on 127.0.0.1 until Ctrl-C.

    A SIMULATOR for trying the workflow and for CI, nothing more. Each phone is the twin of the real phone whose
    nn-Meter table has its name: a model exported by this toolkit (an ElasticViT subnet or block) takes what that
    table says, with noise and throttling. Other models, or a twin whose table is not installed, run on this host
    through ai-edge-litert with the timings scaled by a per-phone factor. Results say which (simulated: ...).
    --quirk makes the phones show a quirk of real phones or of another benchmark_model build (LiteRT 2's
    CompiledModel tool, TF Lite 1.12's), --benchmark-binary runs a real tool built for this host instead.
    """
    from ..simulator import PROFILES, SimulatedFarm

    names = [d.strip() for d in devices.split(",") if d.strip()]
    unknown = [n for n in names if n not in PROFILES]
    if unknown or not names:
        raise UserError(f"--devices: unknown profile {', '.join(unknown) or '(none)'}; choose from "
                        f"{', '.join(PROFILES)}")
    if benchmark_binary is not None:
        binary = Path(benchmark_binary)
        if not binary.is_file():
            raise UserError(f"--benchmark-binary: no such file {shorten(benchmark_binary)}")
        if not os.access(binary, os.X_OK):
            raise UserError(f"--benchmark-binary: {shorten(benchmark_binary)} is not executable (chmod +x it)")
    if tables is not None and not Path(tables).is_dir():
        raise UserError(f"--tables: no such directory {shorten(tables)}")
    farm = SimulatedFarm(names, port=port, time_scale=time_scale, quirks=quirks, benchmark_binary=benchmark_binary,
                         tables=tables)
    try:
        farm.start()
    except OSError as e:
        raise CommandFailed(f"cannot listen on 127.0.0.1:{port} ({e.strerror or e})") from None
    click.echo(f"simulated adb server on 127.0.0.1:{farm.port} (simulator, not real phones)")
    for serial in farm.serials:
        phone = farm.phone(serial)
        notes = [f"quirks: {', '.join(sorted(phone.quirks))}"] if phone.quirks else []
        notes += [f"benchmark_model: {benchmark_binary}"] if benchmark_binary else \
            [f"twin of the {phone.profile.tables} table" if phone.table else "host-scaled timing (no table)"]
        click.echo(f"  {serial:<20} {phone.profile.model}" + (f"  ({'; '.join(notes)})" if notes else ""))
    click.echo(f"use it: export ANDROID_ADB_SERVER_PORT={farm.port}   (or --adb 127.0.0.1:{farm.port}); Ctrl-C stops")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        farm.stop()


@click.group("results")
def results_group() -> None:
    """The results store (SQLite): every raw sample and summary measured so far."""


@results_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True)
@click.option("--store", "store_path", type=click.Path(dir_okay=False), default=None)
@click.option("--incomplete", is_flag=True, help="Include unfinished (interrupted) measurements.")
def results_export(fmt: str, store_path: str | None, incomplete: bool) -> None:
    """Print every stored measurement (a results-export JSON document with every round, its labels and its op
    profile, or one CSV row per measurement)."""
    if store_path and not Path(store_path).is_file():
        raise UserError(f"{store_path}: no such results store")
    measurements = ResultsStore(store_path).all(complete_only=not incomplete)
    if fmt == "json":
        emit_json(export_document(measurements))
        return
    out = io.StringIO()
    cols = ["model_name", "model_sha256", "device_serial", "device_alias", "device_fingerprint", "runtime",
            "median_ms", "p90_ms", "mean_ms", "std_ms", "cv", "min_ms", "rounds", "complete", "flags", "labels"]
    writer = csv.DictWriter(out, fieldnames=cols)
    writer.writeheader()
    for r in (m.to_dict() for m in measurements):
        s = r["summary"] or {}
        writer.writerow({**{c: r.get(c) for c in cols if c in r}, **{c: s.get(c) for c in cols if c in s},
                         "flags": json.dumps(r["flags"], sort_keys=True), "labels": json.dumps(r["labels"])})
    click.echo(out.getvalue(), nl=False)
