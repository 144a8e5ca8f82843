"""The demo end to end with small settings (slow: trains, builds a host predictor, exports and measures)."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main


@pytest.mark.slow
def test_demo_runs_the_whole_loop(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["demo", "--out", "d", "--train-steps", "5", "--predictor-blocks", "8", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["format"], out["version"]) == ("elasticvit-deploy.demo", 1)
    assert [s["step"] for s in out["steps"]] == ["1-train", "2-predictor", "3-search", "4-measure-host",
                                                 "5-measure-simulated", "6-report"]
    choice = out["choice"]
    assert choice["measured_ms"] <= out["budget_ms"] and choice["accuracy_source"] == "supernet"
    assert Path(out["model"]).is_file()
    summary = json.loads((Path(out["report"]) / "summary.json").read_text())
    assert {p["name"] for p in summary["phones"]} == {"host", "sim-pixel1-1", "sim-pixel4-1", "sim-pixel6-1",
                                                      "sim-xiaomi11-1"}
    assert (Path(out["report"]) / "host.html").stat().st_size > 10_000
