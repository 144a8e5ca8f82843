"""Hostile files: tampered learned predictors (skops payloads) and malicious teacher pickles are refused with one line
through the real CLI and run nothing; the one audited unsafe load is the only one in the sources."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
import torch
from click.testing import CliRunner
from sklearn.base import clone

from elasticvit_deploy.cli import main
from elasticvit_deploy.latency.blocks import FAMILIES
from elasticvit_deploy.latency.features import block_cost
from elasticvit_deploy.latency.learned import (
    CANDIDATES,
    TRUSTED_TYPES,
    FamilyModel,
    LearnedPredictor,
    PredictorFileError,
)
from elasticvit_deploy.latency.model import universe
from elasticvit_deploy.latency.predictors import learned_dir
from supernet.sampling import archs, sample_uniform
from supernet.space import TINY
from supernet.training.train_config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "elasticvit_deploy"]
#: The rule the loader used before: every type under these prefixes was trusted.
OLD_PREFIXES = ("sklearn.", "numpy.", "builtins.", "collections.", "elasticvit_deploy.latency.learned.")


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + args, capture_output=True, text=True, cwd=cwd, env=dict(os.environ), timeout=600)


def _one_line_refusal(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == "" and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    return r.stderr


# ---------------------------------------------------------------- learned predictors (skops)

def test_allowlist_is_exactly_what_every_regressor_kind_needs(tmp_path):
    """Recompute skops' untrusted types for a freshly saved predictor of every kind the project fits."""
    rng = np.random.default_rng(0)
    X, y = rng.random((24, 6)), rng.random(24)
    needed: set[str] = set()
    for kind, estimator in CANDIDATES.items():
        model = FamilyModel(clone(estimator).fit(X, y), kind, (0.1, 0.2, 0.3), 0.1, 0.5, len(y))
        LearnedPredictor(kind, "graph", {"conv": model}).save(tmp_path / kind)
        untrusted = set(sio.get_untrusted_types(file=tmp_path / kind / "regressors.skops"))
        assert untrusted <= TRUSTED_TYPES, f"{kind} needs {sorted(untrusted - TRUSTED_TYPES)}"
        needed |= untrusted
        assert LearnedPredictor.load(tmp_path / kind).families["conv"].choice == kind
    assert needed == TRUSTED_TYPES  # no entry is there for nothing
    assert not any(t.split(".")[0] in ("builtins", "os", "subprocess", "importlib", "operator", "functools")
                   for t in TRUSTED_TYPES)


@pytest.fixture(scope="module")
def predictor_dir(tmp_path_factory) -> Path:
    """A learned predictor of the tiny space (every family, synthetic latencies), as `predictor fit` saves it."""
    blocks = [b for family in FAMILIES for b in [u for u in universe(TINY, "graph") if u.family == family][:10]]
    ms = [0.05 + 1e-6 * block_cost(b)[0] + 1e-5 * block_cost(b)[2] for b in blocks]
    return LearnedPredictor.fit("dev", "graph", blocks, ms, info={"space": TINY.name}).save(
        tmp_path_factory.mktemp("predictor") / "dev")


def _node(loader: str, module: str, name: str, **rest: Any) -> dict[str, Any]:
    return {"__class__": name, "__module__": module, "__loader__": loader, **rest}


def _text(s: str) -> dict[str, Any]:
    return _node("JsonNode", "builtins", "str", content=json.dumps(s), is_json=True)


def _seq(*items: dict[str, Any], kind: str = "tuple") -> dict[str, Any]:
    return _node("TupleNode" if kind == "tuple" else "ListNode", "builtins", kind, content=list(items))


def _call(module: str, name: str, *args: dict[str, Any]) -> dict[str, Any]:
    """A node that skops builds by calling module.name(*args) (its reduce-like ConstructorFromReduceNode)."""
    return _node("ConstructorFromReduceNode", module, name, content=_seq(*args))


def _apply_each(func: dict[str, Any], *args: dict[str, Any]) -> dict[str, Any]:
    """list(map(func, args)): calls func on each argument while the file is loaded."""
    return _call("builtins", "list", _call("builtins", "map", func, _seq(*args, kind="list")))


def _eval_via_function_node(cmd: str) -> dict[str, Any]:
    return _apply_each(_node("FunctionNode", "builtins", "eval"), _text(f"__import__('os').system({cmd!r})"))


def _os_system_via_reduce(cmd: str) -> dict[str, Any]:
    return _call("os", "system", _text(cmd))


def _attrgetter_chain(cmd: str) -> dict[str, Any]:
    getter = _node("OperatorFuncNode", "operator", "attrgetter", attrs=_seq(_text("path.os.system")))
    system = _call("builtins", "next", _call("builtins", "map", getter,
                                             _seq(_call("builtins", "__import__", _text("os")), kind="list")))
    return _apply_each(system, _text(cmd))


def _builtins_getattr_import(cmd: str) -> dict[str, Any]:
    system = _call("builtins", "getattr", _call("builtins", "__import__", _text("os")), _text("system"))
    return _apply_each(system, _text(cmd))


# name: (payload for a shell command, whether the old prefix rule let it through, the type the refusal names)
PAYLOADS: dict[str, tuple[Callable[[str], dict[str, Any]], bool, str]] = {
    "eval_via_function_node": (_eval_via_function_node, True, "builtins.eval"),
    "os_system_via_reduce": (_os_system_via_reduce, False, "os.system"),
    "attrgetter_chain": (_attrgetter_chain, False, "builtins.__import__"),
    "builtins_getattr_import": (_builtins_getattr_import, True, "builtins.__import__"),
}


def _tamper(src: Path, dst: Path, payload: dict[str, Any]) -> None:
    """Copy a regressors.skops file, replacing its first family's regressor in schema.json by `payload`."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "schema.json":
                schema = json.loads(data)
                schema["content"][next(iter(schema["content"]))] = payload
                data = json.dumps(schema).encode()
            zout.writestr(item, data)


LATENCY = ["latency", "--target", "dev", "--space", "tiny", "arch.json"]


def _install(predictor_dir: Path, tmp: Path) -> Path:
    """Install the predictor for device "dev" where the CLI finds it, and write tmp/arch.json (a tiny-space arch)."""
    (tmp / "arch.json").write_text(archs(sample_uniform(TINY, 1, seed=2), TINY)[0].to_json())
    return Path(shutil.copytree(predictor_dir, learned_dir("dev", TINY)))


def test_untampered_predictor_answers_through_the_cli(predictor_dir, tmp_path):
    _install(predictor_dir, tmp_path)
    r = _cli(LATENCY, tmp_path)
    assert r.returncode == 0 and "learned predictor" in r.stdout, r.stderr


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_tampered_predictor_is_refused_and_runs_nothing(name, predictor_dir, tmp_path):
    build, old_rule_ran, named = PAYLOADS[name]
    proof = tmp_path / "proof"
    proof.mkdir()
    _tamper(predictor_dir / "regressors.skops", proof / "regressors.skops",
            build(f"touch {shlex.quote(str(proof / 'MARKER'))}"))
    untrusted = sio.get_untrusted_types(file=proof / "regressors.skops")
    assert named in untrusted and all(t.startswith(OLD_PREFIXES) for t in untrusted) == old_rule_ran
    with contextlib.suppress(Exception):  # trusting what the file asks for (the old rule did, for builtins)
        sio.load(proof / "regressors.skops", trusted=untrusted)
    assert (proof / "MARKER").exists(), "the payload does not run, so this test would prove nothing"

    installed = _install(predictor_dir, tmp_path)
    marker = tmp_path / "MARKER"
    _tamper(predictor_dir / "regressors.skops", installed / "regressors.skops",
            build(f"touch {shlex.quote(str(marker))}"))
    err = _one_line_refusal(_cli(LATENCY, tmp_path))
    assert f"refuses to load type {min(set(untrusted) - TRUSTED_TYPES)!r}" in err and "rebuild the predictor" in err
    with pytest.raises(PredictorFileError, match="refuses to load type"):
        LearnedPredictor.load(installed)
    assert not marker.exists()


def test_refusal_quotes_a_hostile_type_name_on_one_short_line(predictor_dir, tmp_path):
    _tamper(predictor_dir / "regressors.skops", tmp_path / "regressors.skops",
            _node("FunctionNode", "builtins", "x" * 500 + "\nsecond line"))
    shutil.copy(predictor_dir / "predictor.json", tmp_path / "predictor.json")
    with pytest.raises(PredictorFileError) as e:
        LearnedPredictor.load(tmp_path)
    message = str(e.value)
    quoted = message.split("refuses to load type ")[1].split(", which")[0]
    assert "\n" not in message and quoted == repr(("builtins." + "x" * 500)[:77] + "...")


# ---------------------------------------------------------------- teachers (pickles)

class _Payload:
    """Unpickling it runs a shell command."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (self.cmd,)


def _train(tmp: Path, teacher: str) -> subprocess.CompletedProcess[str]:
    config = tmp / f"run{len(list(tmp.glob('run*.toml')))}.toml"
    config.write_text(
        'data = "digits"\nspace = "tiny"\nval_fraction = 0.9\nbatch_size = 8\nepochs = 2\nwarmup_epochs = 0\n'
        f'steps = 2\nlog_every = 1\nsave_every = 0\noutput_dir = "{tmp / config.stem}"\nteachers = [{teacher}]\n'
        '[sampler_options]\nbank_size = 4\n')
    return _cli(["train", "--config", str(config), "--json"], tmp)


def test_malicious_teacher_pickle_is_refused_unless_trusted(tmp_path):
    marker = tmp_path / "MARKER"
    torch.save(_Payload(f"touch {shlex.quote(str(marker))}"), tmp_path / "evil.pt")
    for teacher in (f'"{tmp_path / "evil.pt"}"', f'{{path = "{tmp_path / "evil.pt"}", trust_pickle = false}}'):
        err = _one_line_refusal(_train(tmp_path, teacher))
        assert "is not an elasticvit-deploy checkpoint" in err and "set trust_pickle = true" in err
        assert not marker.exists()
    err = _one_line_refusal(_train(tmp_path, f'{{path = "{tmp_path / "evil.pt"}", arch = "max"}}'))
    assert "a teacher with arch must be" in err and not marker.exists()
    assert not list(tmp_path.glob("run*/*"))  # nothing trained, nothing written

    err = _one_line_refusal(_train(tmp_path, f'{{path = "{tmp_path / "evil.pt"}", trust_pickle = true}}'))
    assert marker.exists() and "not a torch module" in err  # the opt-in really unpickles (and so ran the payload)


def test_trusted_pickled_module_teacher_trains(tmp_path):
    torch.save(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)), tmp_path / "t.pt")
    r = _train(tmp_path, f'{{path = "{tmp_path / "t.pt"}", trust_pickle = true}}')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["steps"] == 2 and (tmp_path / "run0" / "checkpoint.pt").is_file()


@pytest.mark.parametrize("teacher, needle", [
    ({"path": "t.pt", "trust_pickle": "yes"}, "trust_pickle must be true or false"),
    ({"path": "t.pt", "trust_pickle": 1}, "trust_pickle must be true or false"),
    ({"path": "t.pt", "trusted": True}, "unknown key 'trusted'"),
    ({"path": "t.pt", "arch": 3}, "arch must be"),
    ({"path": "t.pt", "arch": "max", "trust_pickle": True}, "drop one of them"),
    ({"arch": "max"}, "a teacher is a path"),
])
def test_teacher_entries_are_type_checked(teacher, needle, tmp_path):
    with pytest.raises(ConfigError, match=needle):
        load_config(None, [], base={"data": "digits", "teachers": [teacher]})
    (tmp_path / "c.yaml").write_text(json.dumps({"data": "digits", "teachers": [teacher]}))
    r = CliRunner().invoke(main, ["train", "--config", str(tmp_path / "c.yaml")])
    assert r.exit_code == 2 and needle in r.output and r.output.count("\n") == 1


# ---------------------------------------------------------------- audit of the sources

HELPER = ROOT / "supernet" / "trusted_load.py"
UNSAFE = re.compile(r"weights_only\s*=\s*False|pickle\.loads?\(|joblib\.load|allow_pickle\s*=\s*True|yaml\.load\("
                    r"|yaml\.unsafe_load|shell\s*=\s*True|skops.*trusted\s*=\s*True|(?<![.\w])eval\(|(?<![.\w])exec\(")
AUDITED = "# trusted-load: "


def _sources() -> list[Path]:
    files = [p for d in ("elasticvit_deploy", "supernet", "benchmarks", "scripts") for p in (ROOT / d).rglob("*.py")]
    assert HELPER in files and len(files) > 50
    return sorted(files)


def test_every_unsafe_load_is_the_audited_helper():
    hits, audited = [], []
    for path in _sources():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if AUDITED in line:
                audited.append((path, line))
            if UNSAFE.search(line) and not (path == HELPER and AUDITED in line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, "unsafe loads outside supernet/trusted_load.py:\n" + "\n".join(hits)
    assert audited and all(path == HELPER and UNSAFE.search(line) and line.split(AUDITED)[1].strip()
                           for path, line in audited)


def _keyword(call: ast.Call, name: str) -> Any:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else kw.value
    return None


def test_np_load_and_torch_load_are_explicitly_safe():
    found = {"np": 0, "torch": 0}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name)):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if node.func.value.id in ("np", "numpy"):
                found["np"] += 1
                assert _keyword(node, "allow_pickle") is False, f"{where}: np.load without allow_pickle=False"
            elif node.func.value.id == "torch":
                found["torch"] += 1
                assert _keyword(node, "weights_only") is True or path == HELPER, \
                    f"{where}: torch.load without weights_only=True"
    assert found["np"] and found["torch"]
