"""The demo end to end with small settings (slow: trains, builds a host predictor, exports and measures)."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from elasticvit_deploy.cli import main

TABLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "nnmeter-hybrid-luts"


@pytest.mark.slow
@pytest.mark.skipif(not TABLES.is_dir(), reason="../shared/data/nnmeter-hybrid-luts is not beside the repo")
def test_demo_runs_the_whole_loop(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["demo", "--out", "d", "--train-steps", "5", "--predictor-blocks", "8",
                                  "--tables", str(TABLES), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["format"], out["version"]) == ("elasticvit-deploy.demo", 1)
    assert [s["step"] for s in out["steps"]] == ["0-tables", "1-train", "2-predictor", "3-search", "4-measure-host",
                                                 "5-measure-simulated", "6-search-twin", "6-measure-twins",
                                                 "7-report"]
    twin = out["twin_choice"]  # verified on the pixel1 twin: the table's latency, within the budget
    assert twin["measured_ms"] <= 30 and abs(twin["measured_ms"] / twin["predicted_ms"] - 1) < 0.05
    choice = out["choice"]
    assert choice["measured_ms"] <= out["budget_ms"] and choice["accuracy_source"] == "supernet"
    assert Path(out["model"]).is_file()
    summary = json.loads((Path(out["report"]) / "summary.json").read_text())
    assert {p["name"] for p in summary["phones"]} == {"host", "sim-pixel1-1", "sim-pixel4-1", "sim-pixel6-1",
                                                      "sim-xiaomi11-1", "simulated-pixel1"}
    assert (Path(out["report"]) / "host.html").stat().st_size > 10_000
