"""Hostile output: user strings that are markup (mathtext, Markdown, HTML) in reports, a read-only or full output
directory for `report` and `export`, and Ctrl-C around an export's publishing. Every case runs the real CLI in a
subprocess and checks the one-line error, the exit status, and that nothing partial is left and nothing earlier
is lost."""

import hashlib
import html
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from elasticvit_deploy.reports.render import md_text
from supernet.documents import header
from supernet.sampling import min_arch
from supernet.space import TINY

from .hostile_env import CLI, needs_namespaces, run_with_mounts

HOSTILE_MODELS = ["$\\undefinedcommand$.tflite", "$x^$.tflite", "a$\\frac{1}{0}$b.tflite",
                  "a|b`c<script>alert(1)<\\script>\nnext.tflite", "<img src=x onerror=alert(1)>.tflite",
                  "# *bold* _it_ [l](x) @someone.tflite"]  # file names: no "/"
HOSTILE_PHONE = "$\\bad$ <script>alert(2)</script>|pipe"

# Runs the real CLI with the model conversion (the same every run, ~10 s) taken from a cache file after the first
# run: everything after it (verification, staging, publishing, output) is the real code.
CACHED_CONVERT = """
import sys
from pathlib import Path

from elasticvit_deploy.export import pipeline

cache, real = Path(sys.argv.pop(1)), pipeline._convert


def convert(*args):
    if not cache.exists():
        cache.write_bytes(real(*args))
    return cache.read_bytes()


pipeline._convert = convert
from elasticvit_deploy.cli import main

main(prog_name="elasticvit-deploy")  # the arguments from sys.argv, as the installed command does
"""


def _env(tmp_path):
    return {**os.environ, "ELASTICVIT_DEPLOY_HOME": str(tmp_path / "home")}


def _cli(tmp_path, *args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, env=_env(tmp_path), timeout=300)


def _one_error(stderr, needle):
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and needle in errors[0] and "Traceback" not in stderr, stderr
    return errors[0]


def _digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(directory).iterdir())}


def _measure_doc(models, phone="phone-fpA"):
    return {**header("measurements", 1),
            "results": [{**header("measurement", 1), "model": f"/models/{m}", "model_sha256": "0" * 64,
                         "runtime": "rt|<b>1</b>",
                         "device": {"fingerprint": "fpA", "alias": phone, "model": "Pixel `4`"},
                         "flags": {}, "cached": False, "median_ms": 10.0 + i, "ci95_ms": [9.5 + i, 10.5 + i],
                         "cv": 0.02, "rounds_ms": [9.5 + i, 10.0 + i, 10.5 + i]} for i, m in enumerate(models)],
            "failures": [], "skipped": []}


def _hostile_inputs(tmp_path):
    now = tmp_path / "now.json"
    now.write_text(json.dumps(_measure_doc(HOSTILE_MODELS, HOSTILE_PHONE)))
    search = {**header("search-result", 1),
              "choices": [{"device": HOSTILE_PHONE, "budget_ms": 30, "arch": {"resolution": 32}, "mflops": 2.0,
                           "predicted_ms": 11.0, "measured_ms": 10.0, "model": f"/x/{HOSTILE_MODELS[0]}",
                           "measured_on": {"fingerprint": "fpA", "alias": HOSTILE_PHONE, "runtime": "rt"}}],
              "pareto": {HOSTILE_PHONE: [{"latency_ms": 9.0, "score": 1.0}, {"latency_ms": 12.0, "score": 2.0}]}}
    (tmp_path / "search.json").write_text(json.dumps(search))
    return now, tmp_path / "search.json"


def _cells(line):
    return re.sub(r"\\.", "", line).count("|")  # unescaped pipes


def test_report_shows_user_strings_literally(tmp_path):
    now, search = _hostile_inputs(tmp_path)
    out = tmp_path / "rep"
    r = _cli(tmp_path, "report", now, search, "--out", out)
    assert r.returncode == 0, r.stderr
    md = (out / "summary.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    phones, table = table[:3], table[3:]  # the line per phone, then the phone's verdicts (folded in <details>)
    assert {_cells(line) for line in phones} == {8}
    assert len(table) == 2 + len(HOSTILE_MODELS) and {_cells(line) for line in table} == {9}
    page = next(out.glob("*.html")).read_text()
    for model in HOSTILE_MODELS:
        flat = " ".join(model.split())
        assert md_text(flat) in md and html.escape(model) in page
    assert "<script" not in md and "<img" not in md and "<b>" not in md
    assert md_text(HOSTILE_PHONE) in md and html.escape(HOSTILE_PHONE) in page
    # only the page's own markup: its one script and its latency, predicted and Pareto plots, all drawn
    assert page.count("<script") == 1 and page.count("<img") == page.count("<img class='plot'") == 3
    assert "<b>1</b>" not in page
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_report_refuses_to_replace_a_directory_of_other_files(tmp_path):
    now, _ = _hostile_inputs(tmp_path)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    r = _cli(tmp_path, "report", now, "--out", out)
    assert r.returncode == 2 and (out / "notes.txt").read_text() == "keep me"
    _one_error(r.stderr, "not a report directory")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@needs_namespaces
def test_read_only_out_is_one_line_and_nothing_changes(tmp_path):
    now, _ = _hostile_inputs(tmp_path)
    old = tmp_path / "ro" / "report"
    assert _cli(tmp_path, "report", now, "--out", old).returncode == 0
    before = _digest(old)
    cases = [(["report", now, "--out", old], old), (["report", now, "--out", tmp_path / "ro" / "new"], tmp_path / "ro"),
             (["export", "-", "--space", "tiny", "--format", "onnx", "--out", old], old)]
    for args, read_only in cases:
        r = run_with_mounts(["sh", "-c", f"echo '{min_arch(TINY).to_json()}' | " + shlex.join([*CLI, *map(str, args)])],
                            read_only=[read_only], env={"ELASTICVIT_DEPLOY_HOME": str(tmp_path / "home")})
        assert r.returncode == 2, (args, r.stderr)
        _one_error(r.stderr, str(read_only))
        assert "Read-only file system" in r.stderr
        assert _digest(old) == before and sorted(p.name for p in (tmp_path / "ro").iterdir()) == ["report"]


def _in_full_disk(tmp_path, disk, full_kb, command, check):
    """Run `command` (a shell line) with `disk` a tmpfs of `full_kb` KiB; return its output, the exit status and
    `check`'s output (run inside, as the tmpfs vanishes with the namespace)."""
    line = f"{command}; echo rc=$?; echo ---; {check}"
    r = run_with_mounts(["sh", "-c", line], full=disk, full_kb=full_kb,
                        env={"ELASTICVIT_DEPLOY_HOME": str(tmp_path / "home")})
    stderr, rc = r.stderr, int(re.search(r"^rc=(\d+)$", r.stdout, re.M).group(1))
    return stderr, rc, r.stdout.split("---\n", 1)[1]


@needs_namespaces
def test_report_on_a_full_disk_keeps_the_earlier_report(tmp_path):
    now, search = _hostile_inputs(tmp_path)
    disk = tmp_path / "disk"
    old = disk / "report"
    assert _cli(tmp_path, "report", now, search, "--out", old).returncode == 0
    before = _digest(old)
    # room for the earlier report and a little more: the new one fails at its HTML page, after its other files
    used_kb = sum(-(-p.stat().st_size // 4096) * 4 for p in old.iterdir())
    command = shlex.join([*CLI, "report", str(now), str(search), "--out", str(old)])
    stderr, rc, listing = _in_full_disk(tmp_path, disk, used_kb + 8, command,
                                        f"ls -A {disk}; cd {old} && sha256sum *")
    assert rc == 2, stderr
    _one_error(stderr, f"'{old}': cannot write the report (No space left on device)")
    files, sums = listing.split("\n", 1)[0], listing.split("\n", 1)[1]
    assert files == "report"  # no staging directory left beside it
    assert {line.split()[1]: line.split()[0] for line in sums.splitlines()} == before


@pytest.fixture(scope="module")
def cached_export(tmp_path_factory):
    """The wrapper script, a filled conversion cache and the files of one complete, uninterrupted export."""
    root = tmp_path_factory.mktemp("cached")
    (root / "arch.json").write_text(min_arch(TINY).to_json())
    (root / "wrap.py").write_text(CACHED_CONVERT)
    out = root / "first"
    r = subprocess.run(_export_args(root, out), capture_output=True, text=True, timeout=300,
                       env={**os.environ, "ELASTICVIT_DEPLOY_HOME": str(root / "home")})
    assert r.returncode == 0, r.stderr
    assert "warning: no --checkpoint: the subnet has the supernet's initial weights" in r.stderr  # from the result
    return root, _digest(out)


def _export_args(root, out):
    return [sys.executable, str(root / "wrap.py"), str(root / "cache.onnx"), "export", str(root / "arch.json"),
            "--space", "tiny", "--format", "onnx", "--samples", "1", "--quiet", "--out", str(out)]


def _assert_complete(out, expected):
    files = _digest(out)
    assert set(files) == set(expected)  # the model and its manifest (whose created_utc differs), nothing else
    manifest_path = next(p for p in out.iterdir() if p.suffix == ".json")
    manifest = json.loads(manifest_path.read_text())
    model = out / manifest["file"]
    assert manifest["verification"]["passed"] and hashlib.sha256(model.read_bytes()).hexdigest() == manifest["sha256"]


@needs_namespaces
def test_export_on_a_full_disk_keeps_the_earlier_export(tmp_path, cached_export):
    root, _ = cached_export
    disk = tmp_path / "disk"
    disk.mkdir()
    (disk / "old-fp32.onnx").write_bytes(os.urandom(100_000))
    (disk / "old-fp32.onnx.json").write_text('{"file": "old-fp32.onnx"}')
    before = _digest(disk)
    # room for the earlier export but not the new 2.4 MB model
    command = shlex.join(_export_args(root, disk))
    stderr, rc, listing = _in_full_disk(tmp_path, disk, 600, command, f"cd {disk} && sha256sum * .[!.]* 2>&1")
    assert rc == 2, stderr
    _one_error(stderr, f"'{disk}': cannot write the export (No space left on device)")
    sums = {line.split()[1]: line.split()[0] for line in listing.splitlines() if len(line.split()) == 2}
    assert sums == before  # nothing else (no temporary file) beside the earlier export


@pytest.mark.slow  # about 90 s on 2 cores: an interrupt at every point of publishing
def test_ctrl_c_around_publishing_never_half_publishes(tmp_path, cached_export):
    """SIGINT at delays spread over staging, publishing and exit: either exit 130 with one error line and nothing
    in the output directory, or exit 0 with the complete, verified export."""
    root, expected = cached_export
    outcomes = []
    for i, delay in enumerate([0.0, 0.02, 0.05, 0.08, 0.1, 0.12, 0.14, 0.17, 0.25, 0.6]):
        out = tmp_path / f"out{i}"
        proc = subprocess.Popen(_export_args(root, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "ELASTICVIT_DEPLOY_HOME": str(root / "home")})
        while proc.poll() is None and not (out.is_dir() and any(out.iterdir())):
            time.sleep(0.001)  # until the first staged file appears: the model is verified next, then published
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        if proc.returncode == 130:
            _one_error(stderr, "aborted")
            assert not out.exists() or not list(out.iterdir()), list(out.iterdir())
        else:
            assert proc.returncode == 0, (delay, proc.returncode, stderr)
            _assert_complete(out, expected)
            assert "max abs diff" in stdout
        outcomes.append(proc.returncode)
    assert 130 in outcomes and 0 in outcomes, outcomes  # the sweep straddles the commit point
