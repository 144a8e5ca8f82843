"""Hostile input on the real CLI: each case prints exactly one short line ``error: ...`` naming the problem, exits
with its status, never a traceback, and writes nothing (an existing results store stays intact)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.errors import MAX_LINE, shorten

from .hostile_env import CLI, needs_namespaces, run_with_mounts

LUTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "nnmeter-hybrid-luts"
MEASURE = ["--device", "host", "--warmup", "0", "--runs", "2", "--rounds", "2", "--json"]


def cli_process(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as its own process (`python -m elasticvit_deploy`)."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ELASTICVIT_DEPLOY_HOME": str(home)})


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in this process (click's runner: same group, same one-line errors, same exit status), faster."""
    r = CliRunner().invoke(main, list(args), env={"ELASTICVIT_DEPLOY_HOME": str(home)})
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)


def one_error_line(r: subprocess.CompletedProcess[str], status: int, *needles: str) -> str:
    """Assert the exit status and that stderr is one short `error: ` line holding every needle; return it."""
    lines = r.stderr.splitlines()
    assert r.returncode == status and len(lines) == 1, r.stderr[-2000:]
    line = lines[0]
    assert line.startswith("error: ") and len(line) <= len("error: ") + MAX_LINE, line[:500]
    for needle in needles:
        assert needle in line, line
    return line


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def seed_store(home: Path, model: Path) -> list[dict]:
    """A results store in `home` holding one complete measurement; its export."""
    assert cli(home, "measure", str(model), *MEASURE).returncode == 0
    return json.loads(cli(home, "results", "export").stdout)["measurements"]


# ----- 1. quoted values capped, deep nesting ---------------------------------------------------------------------

def test_shorten_caps_values_and_keeps_their_size():
    assert shorten("abc") == "'abc'"
    long = shorten("A" * 10_000_000)
    assert len(long) < 120 and "10,000,000 chars" in long
    deep: list = []
    for _ in range(500):
        deep = [deep]
    assert len(shorten(deep)) <= 83 and len(shorten(list(range(10**6)))) <= 83


@pytest.mark.parametrize("body", ['{"resolution": "%s"}', '{"resolution": 224, "%s": 1}'],
                         ids=["huge-value", "huge-unknown-key"])
def test_flops_on_100mb_arch_prints_one_short_line(tmp_path, body):
    arch = tmp_path / "arch.json"
    arch.write_text(body % ("A" * 100_000_000))
    line = one_error_line(cli_process(tmp_path / "home", "flops", str(arch)), 2, str(arch), "100,000,000 chars")
    assert len(line) < 400
    assert not (tmp_path / "home").exists()


@pytest.mark.skipif(not LUTS.is_dir(), reason="needs the nn-Meter tables in /work/shared/data")
def test_latency_on_100mb_arch_prints_one_short_line(tmp_path):
    home = tmp_path / "home"
    (home / "luts").mkdir(parents=True)
    shutil.copy(LUTS / "pixel1_lut_ln_v3.json", home / "luts")
    arch = tmp_path / "arch.json"
    arch.write_text('{"resolution": "%s"}' % ("A" * 100_000_000))
    one_error_line(cli_process(home, "latency", "--target", "pixel1", str(arch)), 2, "resolution", "must be an integer",
                   "100,000,000 chars")
    assert files_under(home) == ["luts", "luts/pixel1_lut_ln_v3.json"]


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, '{"resolution": ' + "[" * 100_000 + "]" * 100_000
                                  + "}", '{"resolution": ' + "9" * 5000 + "}"],
                         ids=["deep-list", "deep-value", "huge-integer"])
def test_flops_on_unparsable_json_prints_one_line(tmp_path, text):
    arch = tmp_path / "arch.json"
    arch.write_text(text)
    one_error_line(cli_process(tmp_path / "home", "flops", str(arch)), 2, str(arch), "JSON")


def test_report_on_deeply_nested_results_prints_one_line(tmp_path):
    results = tmp_path / "results.json"
    results.write_text("[" * 100_000 + "]" * 100_000)
    one_error_line(cli_process(tmp_path / "home", "report", str(results), "--out", str(tmp_path / "report")), 2,
                   str(results), "not a JSON results file (JSON nested too deeply)")
    assert not (tmp_path / "report").exists()


def test_many_violations_are_counted_not_listed(tmp_path):
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"resolution": 224, "stages": [{"a": 1}] * 100_000}))
    one_error_line(cli(tmp_path / "home", "flops", str(arch)), 2, "more")


# ----- 2. .tflite files that are not models ------------------------------------------------------------------------

def _bad_models(tmp_path: Path, tiny_tflite: Path) -> dict[str, tuple[Path, str]]:
    data = tiny_tflite.read_bytes()
    cases = {"wrong-identifier": (data[:4] + b"XXXX" + data[8:], "file identifier b'XXXX'"),
             "truncated": (data[:100], "LiteRT"), "empty": (b"", "empty file"),
             "random": (bytes(range(256)) * 16, "file identifier")}
    out = {}
    for name, (blob, needle) in cases.items():
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(blob)
        out[name] = (path, needle)
    return out


@pytest.mark.parametrize("case", ["wrong-identifier", "truncated", "empty", "random"])
def test_measure_and_inspect_reject_a_bad_tflite(tmp_path, tiny_tflite, case):
    model, needle = _bad_models(tmp_path, tiny_tflite)[case]
    home = tmp_path / "home"
    for args in (["measure", str(model), *MEASURE], ["inspect", str(model)]):
        one_error_line(cli(home, *args), 2, str(model), "not a readable .tflite model", needle)
    assert files_under(home) == []


# ----- 3. the data directory is a file, or read-only ----------------------------------------------------------------

DATA_DIR_COMMANDS = [["predictor", "list"], ["results", "export"], ["measure", "{model}", *MEASURE],
                     ["farm", "add", "p4", "--serial", "X1"]] + \
                    ([["predictor", "import-luts", str(LUTS)]] if LUTS.is_dir() else [])


@pytest.mark.parametrize("args", DATA_DIR_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_data_dir_that_is_a_file(tmp_path, tiny_tflite, args):
    home = tmp_path / "home"
    home.write_text("not a directory\n")
    r = cli(home, *[a.replace("{model}", str(tiny_tflite)) for a in args])
    one_error_line(r, 2, str(home), "is a file, not a directory")
    assert home.read_text() == "not a directory\n"


@needs_namespaces
@pytest.mark.parametrize("args", [a for a in DATA_DIR_COMMANDS if a[:2] != ["predictor", "list"]],
                         ids=lambda a: " ".join(a[:2]))
def test_read_only_data_dir(tmp_path, tiny_tflite, args):
    home = tmp_path / "home"
    home.mkdir()
    r = run_with_mounts([*CLI, *[a.replace("{model}", str(tiny_tflite)) for a in args]], read_only=[home],
                        env={"ELASTICVIT_DEPLOY_HOME": str(home)})
    one_error_line(r, 2, str(home), "Read-only file system" if args[1] == "import-luts" else "read-only file system")
    assert files_under(home) == []


@needs_namespaces
def test_read_only_data_dir_still_lists_predictors(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    r = run_with_mounts([*CLI, "predictor", "list"], read_only=[home], env={"ELASTICVIT_DEPLOY_HOME": str(home)})
    assert r.returncode == 0 and "Traceback" not in r.stderr and files_under(home) == []


# ----- 4. a corrupt or foreign results.sqlite -----------------------------------------------------------------------

def _foreign_sqlite(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")
    db.commit()
    db.close()


@pytest.mark.parametrize("case", ["random", "truncated", "other-schema"])
def test_corrupt_results_store_is_reported_and_kept(tmp_path, tiny_tflite, case):
    home = tmp_path / "home"
    store = home / "results.sqlite"
    if case == "other-schema":
        home.mkdir()
        _foreign_sqlite(store)
    else:
        seed_store(home, tiny_tflite)
        blob = store.read_bytes()
        store.write_bytes(bytes(range(256)) * 64 if case == "random" else blob[:8192])
    before = store.read_bytes()
    for args in (["results", "export"], ["measure", str(tiny_tflite), *MEASURE, "--fresh"]):
        one_error_line(cli(home, *args), 2, str(store), "move it aside")
        assert store.read_bytes() == before
    assert files_under(home) == ["results.sqlite"]


# ----- 5. devices.toml with wrong types ---------------------------------------------------------------------------

@pytest.mark.parametrize("toml, needles", [
    ("devices = 5\n", ["devices must be a table", "an integer 5"]),
    ("[devices]\npixel4 = 5\n", ["[devices.pixel4] must be a table", "an integer 5"]),
    ('[devices.pixel4]\nserial = ["a", "b"]\n', ["[devices.pixel4] needs serial", "an array"]),
    ('[devices.pixel4]\nserial = "X1"\ncolour = "red"\n', ["[devices.pixel4] has unknown keys 'colour'"]),
    ('[devices.pixel4]\nserial = "X1"\n[other]\nx = 1\n', ["unknown key 'other'"]),
    ('[devices.pixel4]\nserial = "X1"\nthreads = true\n', ["[devices.pixel4] threads must be a positive integer"]),
    ('[devices.pixel4]\nserial = "a;b"\n', ["[devices.pixel4]", "invalid serial 'a;b'"]),
    ("[devices.pixel4\nserial = 1\n", ["not valid TOML"]),
    ("x = " + "[" * 100_000 + "]" * 100_000 + "\n", ["not valid TOML (nested too deeply)"]),
], ids=["devices-int", "alias-int", "serial-list", "unknown-key", "unknown-table", "threads-bool", "bad-serial",
        "malformed", "deep"])
def test_malformed_devices_toml(tmp_path, tiny_tflite, toml, needles):
    home = tmp_path / "home"
    home.mkdir()
    registry = home / "devices.toml"
    registry.write_text(toml)
    for args in (["farm", "add", "p5", "--serial", "X2"], ["measure", str(tiny_tflite), "--device", "pixel4"]):
        one_error_line(cli(home, *args), 2, str(registry), *needles)
    assert registry.read_text() == toml and files_under(home) == ["devices.toml"]


# ----- 6. the disk fills up during measure -----------------------------------------------------------------------

@needs_namespaces
def test_disk_full_during_measure_keeps_earlier_results(tmp_path, tiny_tflite):
    home = tmp_path / "home"
    earlier = seed_store(home, tiny_tflite)
    store = home / "results.sqlite"
    seed_kb = store.stat().st_size // 1024
    py, q = shlex.quote(sys.executable), shlex.quote(str(tiny_tflite))
    # room for SQLite's shared memory and a few rounds: the disk fills up in the middle of the measurement
    script = (f"{py} -m elasticvit_deploy measure {q} {shlex.join(MEASURE)} --rounds 200 --fresh; echo $? >&2; "
              f"ls -a {shlex.quote(str(home))} >&2; {py} -m elasticvit_deploy results export --incomplete")
    r = run_with_mounts(["sh", "-c", script], full=home, full_kb=seed_kb + 64,
                        env={"ELASTICVIT_DEPLOY_HOME": str(home)})
    err = r.stderr.splitlines()
    error, status, listing = err[0], err[1], err[2:]
    one_error_line(subprocess.CompletedProcess([], int(status), "", error + "\n"), 1, str(store),
                   "no space left on the device")
    assert set(listing) <= {".", "..", "results.sqlite", "results.sqlite-wal", "results.sqlite-shm"}, listing
    after = json.loads(r.stdout)["measurements"]
    assert after[0] == earlier[0]
    assert all(not m["complete"] for m in after[1:])  # rounds committed before the disk filled, kept to resume
