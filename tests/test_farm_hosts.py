"""One farm across several adb servers (devices.toml `adb = "HOST:PORT"`), and phones that cannot be measured
(offline, unauthorized, not connected, on a server that does not answer) reported with the reason."""

from __future__ import annotations

import json
import os
import socket
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.errors import MAX_LINE
from elasticvit_deploy.farm.adb import AdbServer
from elasticvit_deploy.farm.lease import PhoneLease
from elasticvit_deploy.farm.store import ResultsStore
from elasticvit_deploy.simulator import PROFILES, SimulatedFarm
from supernet.documents import check_header

FAST = ["--warmup", "1", "--runs", "2", "--rounds", "1", "--cool-timeout", "1"]
SERIAL = "sim-pixel4-1"


@pytest.fixture(autouse=True)
def _no_real_adb(monkeypatch):
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")  # adbutils must never start a real adb server
    for var in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_PORT"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def two_farms():
    """Two hosts' adb servers that both have a phone called sim-pixel4-1: a Pixel 4 on the first, a Pixel 6 on the
    second (serials are only unique per server), plus a Pixel 1 on the second."""
    with SimulatedFarm(["pixel4"], time_scale=0.02) as a, \
            SimulatedFarm([replace(PROFILES["pixel6"], name="pixel4"), "pixel1"], time_scale=0.02) as b:
        yield a, b


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def registry() -> Path:
    """devices.toml in this test's data dir (made if missing)."""
    home = Path(os.environ["ELASTICVIT_DEPLOY_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return home / "devices.toml"


def one_error_line(r, status: int, *needles: str) -> str:
    lines = r.stderr.splitlines()
    assert r.exit_code == status and len(lines) == 1 and "Traceback" not in r.output, r.output
    assert lines[0].startswith("error: ") and len(lines[0]) <= len("error: ") + MAX_LINE
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_one_farm_across_two_adb_servers(two_farms, tiny_tflite, tmp_path):
    a, b = two_farms
    adb_a, adb_b = f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"
    r = run("farm", "add", "p1", "--serial", "sim-pixel1-1", "--adb", adb_b)
    assert r.exit_code == 0 and f"on {adb_b}" in r.stdout, r.output
    assert tomllib.loads(registry().read_text())["devices"]["p1"] == {"serial": "sim-pixel1-1", "adb": adb_b}

    r = run("farm", "list", "--adb", adb_a, "--json")
    assert r.exit_code == 0, r.output
    listing = json.loads(r.stdout)
    assert check_header(listing, "farm-listing", 1) == 1
    assert listing["servers"] == [{"adb": adb_a, "error": None}, {"adb": adb_b, "error": None}]
    rows = {(d["adb"], d["serial"]): (d["alias"], d["model"], d["state"]) for d in listing["devices"]}
    assert rows == {(adb_a, SERIAL): (None, "Pixel 4", "device"), (adb_b, SERIAL): (None, "Pixel 6", "device"),
                    (adb_b, "sim-pixel1-1"): ("p1", "Pixel", "device")}
    text = run("farm", "list", "--adb", adb_a).stdout
    assert f"adb server {adb_a}\n" in text and f"adb server {adb_b}\n" in text

    store = tmp_path / "r.sqlite"
    r = run("measure", tiny_tflite, "--all", "--adb", adb_a, "--store", store, "--json", *FAST)
    assert r.exit_code == 0, r.output
    measured = sorted((x["device"]["serial"], x["device"]["model"]) for x in json.loads(r.stdout)["results"])
    assert measured == [("sim-pixel1-1", "Pixel"), (SERIAL, "Pixel 4"), (SERIAL, "Pixel 6")]
    assert len(ResultsStore(store).all()) == 3

    # --device ALIAS measures on the alias's own server (no --adb needed: the default server is not running)
    r = run("measure", tiny_tflite, "--device", "p1", "--store", store, "--json", *FAST)
    assert r.exit_code == 0 and json.loads(r.stdout)["results"][0]["cached"], r.output

    # the lease is per server and serial: the first farm's sim-pixel4-1 is busy, the second's is not
    with PhoneLease(AdbServer("127.0.0.1", a.port, explicit=True), SERIAL, command="other job"):
        r = run("measure", tiny_tflite, "--all", "--adb", adb_a, "--store", store, "--json", "--no-wait",
                "--fresh", *FAST)
    assert r.exit_code == 1, r.output
    report = json.loads(r.stdout)
    (skipped,) = report["skipped"]
    assert skipped["device"] == f"{SERIAL}@{adb_a}" and skipped["reason"].startswith("busy: in use by pid ")
    assert sorted(x["device"]["model"] for x in report["results"]) == ["Pixel", "Pixel 6"]



def test_servers_not_answering_and_phones_not_ready_are_reported(tiny_tflite, tmp_path):
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{closed.getsockname()[1]}"
    with SimulatedFarm(["pixel4", "pixel6", "pixel1"], time_scale=0.02) as farm:
        adb = f"127.0.0.1:{farm.port}"
        farm.phone("sim-pixel6-1").set_fault("offline")
        farm.phone("sim-pixel1-1").set_fault("unauthorized")
        registry().write_text(f'[devices.lab]\nserial = "LAB0001"\nadb = "{dead}"\n'
                              f'[devices.spare]\nserial = "SPARE01"\n')
        r = run("farm", "list", "--adb", adb)
        lines = r.stdout.splitlines()
        assert r.exit_code == 1 and lines[0] == f"adb server {adb}", r.output
        assert any(ln.startswith(f"adb server {dead}: not answering (no adb server at {dead}") for ln in lines)
        assert "1 of 2 adb servers not answering" in r.stderr
        rows = {d["serial"]: d["state"] for d in json.loads(run("farm", "list", "--adb", adb, "--json").stdout)
                ["devices"]}
        assert rows == {SERIAL: "device", "sim-pixel6-1": "offline", "sim-pixel1-1": "unauthorized",
                        "SPARE01": "not connected", "LAB0001": "server not answering"}

        r = run("measure", tiny_tflite, "--all", "--adb", adb, "--store", tmp_path / "r.sqlite", *FAST)
        assert r.exit_code == 1 and SERIAL in r.stdout, r.output
        skipped = [ln for ln in r.stderr.splitlines() if ln.startswith("skipped ")]
        (down,) = [ln for ln in skipped if ln.startswith(f"skipped adb server {dead}: no adb server at {dead}")]
        assert down.endswith("(registered there: lab)")
        assert set(skipped) - {down} == {
            "skipped sim-pixel1-1: sim-pixel1-1: unauthorized (accept the USB debugging prompt on the phone)",
            "skipped sim-pixel6-1: sim-pixel6-1: offline (reconnect the cable or run `adb reconnect`)",
            f"skipped spare: SPARE01: not connected to the adb server at {adb}"}
        r = run("measure", tiny_tflite, "--all", "--adb", adb, "--store", tmp_path / "r.sqlite", "--json", *FAST)
        report = json.loads(r.stdout)
        assert [x["device"]["serial"] for x in report["results"]] == [SERIAL] and len(report["skipped"]) == 4


@pytest.mark.parametrize("value, needle", [
    ('"lab-2"', 'expected HOST:PORT (such as "lab-2:5037"), got \'lab-2\''),
    ('"lab-2:0"', "got 'lab-2:0'"),
    ('"lab-2:99999"', "got 'lab-2:99999'"),
    ('"lab 2:5037"', "got 'lab 2:5037'"),
    ('"-lab:5037"', "got '-lab:5037'"),
    ('"lab-2:+5037"', "got 'lab-2:+5037'"),
    ('"[zz]:5037"', "got '[zz]:5037'"),
    ("5037", 'adb must be a string "HOST:PORT", got an integer 5037'),
    ('"' + "h" * 300 + ':5037"', "(305 chars)"),
])
def test_bad_adb_values_are_one_line_naming_file_and_key(tiny_tflite, value, needle):
    text = f'[devices.p4]\nserial = "X1"\nadb = {value}\n'
    registry().write_text(text)
    for args in (["farm", "list"], ["measure", tiny_tflite, "--all"], ["measure", tiny_tflite, "--device", "p4"]):
        one_error_line(run(*args), 2, str(registry()), "[devices.p4] adb", needle)
    assert registry().read_text() == text


def test_farm_add_refuses_a_bad_adb_address():
    one_error_line(run("farm", "add", "p4", "--serial", "X1", "--adb", "lab-2:port"), 2,
                   "--adb: expected HOST:PORT", "'lab-2:port'")
    assert not registry().exists()
    assert run("farm", "add", "p6", "--serial", "X2", "--adb", "[fd00::2]:5037").exit_code == 0
    assert tomllib.loads(registry().read_text())["devices"]["p6"]["adb"] == "[fd00::2]:5037"


def test_identical_phones_with_one_serial_on_two_servers_are_measured_apart(tiny_tflite, tmp_path):
    with SimulatedFarm(["pixel4"], time_scale=0.02) as a, SimulatedFarm(["pixel4"], time_scale=0.02) as b:
        registry().write_text(f'[devices.other]\nserial = "{SERIAL}"\nadb = "127.0.0.1:{b.port}"\n')
        store = tmp_path / "r.sqlite"
        r = run("measure", tiny_tflite, "--all", "--adb", f"127.0.0.1:{a.port}", "--store", store, "--json",
                *FAST)
        results = json.loads(r.stdout)["results"]
        assert r.exit_code == 0 and len(results) == 2 and not any(x["cached"] for x in results)
        assert len({x["device"]["fingerprint"] for x in results}) == 2 and len(ResultsStore(store).all()) == 2
