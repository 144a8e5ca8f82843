import json

import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.paths import user_data_dir
from supernet.arch import Arch
from supernet.space import ELASTICVIT

from .test_arch import MIN_OFFICIAL


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input)


def test_space_json_contract():
    r = run("space", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["table1_count"] == 108_974_561_034_240_000
    assert d["legal_count"] == 21_672_453_419_827_200
    assert d["min"]["mflops"] == pytest.approx(37.365, abs=1e-3) and d["max"]["mflops"] == pytest.approx(3191.459,
                                                                                                           abs=1e-3)
    assert d["min"]["params"] > 1_000_000 and d["max"]["params"] > d["min"]["params"]
    assert Arch.from_dict(d["max"]["arch"]).resolution == 256
    assert "resolutions" in d["space"]
    text = run("space", "--space", "tiny").output
    assert "legal_count" in text and "tiny" in text


def test_flops_file_stdin_and_official(tmp_path):
    p = tmp_path / "min.json"
    p.write_text(json.dumps(MIN_OFFICIAL))
    r = run("flops", str(p), "--json")
    assert r.exit_code == 0 and json.loads(r.output)["mflops"] == pytest.approx(37.365, abs=1e-3)
    canonical = Arch.from_official(MIN_OFFICIAL, ELASTICVIT).to_json()
    r = run("flops", "-", input=canonical)
    assert r.exit_code == 0 and r.output.startswith("37.365 MFLOPs") and "T1" in r.output


def test_sample_lines_are_valid_and_deterministic():
    a = run("sample", "--n", "4", "--seed", "3").output.splitlines()
    assert a == run("sample", "--n", "4", "--seed", "3").output.splitlines() and len(a) == 4
    for line in run("sample", "--n", "5", "--level", "300", "--seed", "1").output.splitlines():
        r = run("flops", "-", "--json", input=line)
        assert 300 <= json.loads(r.output)["mflops"] <= 320
    off = run("sample", "--n", "1", "--official", "--space", "tiny", "--seed", "2").output
    assert run("flops", "-", "--space", "tiny", input=off).exit_code == 0


@pytest.mark.parametrize("args, stdin, needle", [
    (["flops", "-"], "{not json", "malformed JSON"),
    (["flops", "-"], '{"resolution": 224, "first_conv": 16, "stem": {"width": 16, "depth": 1, "kernel": 3}, '
                     '"stages": [], "extra": 1}', "extra: 1 is an unknown field"),
    (["flops", "-"], json.dumps(dict(Arch.from_official(MIN_OFFICIAL, ELASTICVIT).to_dict(), resolution=100)),
     "resolution: 100 is not one of [128, 160, 176, 192, 224, 256]"),
    (["flops", "/no/such/arch.json"], None, "/no/such/arch.json: no such file"),
    (["sample", "--n", "0"], None, "--n"),
    (["sample", "--level", "9000"], None, "spans 37.365-3191.459"),
    (["space", "--space", "nope"], None, "unknown search space"),
    (["flops"], None, "Missing argument"),
    (["frobnicate"], None, "No such command"),
])
def test_bad_input_is_one_line_exit_2(args, stdin, needle):
    r = run(*args, input=stdin)
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.output
    assert "Traceback" not in r.output


def test_info_honours_the_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ELASTICVIT_DEPLOY_HOME", str(tmp_path / "x"))
    assert user_data_dir() == tmp_path / "x"
    assert json.loads(run("info", "--json").output)["data_dir"] == str(tmp_path / "x")
    assert user_data_dir(create=True).is_dir()
    monkeypatch.delenv("ELASTICVIT_DEPLOY_HOME")
    assert "elasticvit-deploy" in str(user_data_dir())


def test_help_and_version():
    assert run("--help").exit_code == 0
    assert "0.1.0" in run("--version").output
    assert "official" in run("flops", "--help").output
