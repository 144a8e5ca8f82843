"""Export: TFLite/ONNX conversion, verification, manifests, metadata, atomic publishing, bad input."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from elasticvit_deploy.cli import main
from elasticvit_deploy.export import (
    ExportError,
    ExportRequestError,
    ModelFileError,
    build_subnet,
    export_module,
    export_subnet,
    load_image_samples,
    onnx_format,
    pipeline,
    tflite_format,
)
from elasticvit_deploy.export.describe import describe_model
from elasticvit_deploy.export.inputs import InputDataError, synthetic_inputs
from elasticvit_deploy.export.manifest import sha256_bytes
from elasticvit_deploy.export.subnet import INITIAL_WEIGHTS_WARNING
from elasticvit_deploy.export.tflite_graph import inspect_graph
from supernet.checkpoint import save_checkpoint, sha256_file
from supernet.flops import arch_mflops
from supernet.model import ElasticViTSupernet, count_parameters
from supernet.sampling import min_arch
from supernet.space import ELASTICVIT, TINY

from .conftest import MICRO, randomize_

ALL_QUANT = ("none", "fp16", "dynamic-int8", "int8")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _tflite_outputs(path, inputs):
    """Independent check: run the file with a fresh interpreter (not the pipeline's runner)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    results = []
    for x in inputs:
        it.set_tensor(inp["index"], x.astype(np.float32))
        it.invoke()
        results.append(it.get_tensor(out["index"]).copy())
    return results


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    arch = min_arch(TINY)
    result = export_subnet(arch, TINY, out, formats=("tflite", "onnx"), quantizations=ALL_QUANT)
    assert result.warnings == [INITIAL_WEIGHTS_WARNING, pipeline.SYNTHETIC_INT8_WARNING]
    return arch, out, result.models


def test_every_format_and_quantization_is_published_with_manifest(tiny_export):
    arch, out, models = tiny_export
    assert [(m.format, m.quantization) for m in models] == [(f, q) for f in ("tflite", "onnx") for q in ALL_QUANT]
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 16 and not [n for n in names if n.startswith(".")]  # 8 models + 8 manifests, no temp
    subnet = build_subnet(arch, TINY)
    for m in models:
        manifest = json.loads(m.manifest_path.read_text())
        assert manifest == json.loads(json.dumps(m.manifest))
        assert list(manifest)[:2] == ["format", "version"]
        assert manifest["format"] == "elasticvit-deploy.export-manifest" and manifest["version"] == 1
        assert manifest["model_format"] == m.format and manifest["quantization"] == m.quantization
        assert manifest["sha256"] == sha256_file(m.path) and manifest["size_bytes"] == m.path.stat().st_size
        assert manifest["arch"] == arch.to_dict() and manifest["space"] == "tiny"
        assert manifest["mflops"] == pytest.approx(arch_mflops(arch, TINY))
        assert manifest["params"] == count_parameters(subnet)
        assert manifest["checkpoint"] is None and manifest["init_seed"] == 0
        assert manifest["input"]["layout"] == "NCHW" and manifest["input"]["shape"] == [1, 3, 32, 32]
        assert manifest["verification"]["passed"] and manifest["verification"]["fp32_graph_parity"][
            "max_abs_diff"] <= 1e-4
        assert manifest["tools"]["torch"].startswith("2.13.0") and manifest["graph"]["op_count"] > 50
        parity = manifest["verification"]["parity"]
        assert parity["finite"] and parity["samples"] == 8 and parity["top1_agreement"] is not None
        if m.quantization == "none":
            assert parity["max_abs_diff"] <= 1e-4 and manifest["verification"]["atol"] == 1e-4
        else:
            assert 0 < parity["max_abs_diff"] < 0.5 * parity["reference_max_abs"]  # quantized: close, not equal
        if m.format == "tflite":
            assert manifest["graph"]["builtin_only"] and manifest["graph"]["tensor_count"] > 0
            assert manifest["xnnpack"]["applied"]
    sizes = {(m.format, m.quantization): m.manifest["size_bytes"] for m in models}
    for fmt in ("tflite", "onnx"):
        assert sizes[(fmt, "dynamic-int8")] < sizes[(fmt, "fp16")] < sizes[(fmt, "none")]
    int8 = next(m for m in models if m.format == "tflite" and m.quantization == "int8")
    assert int8.manifest["input"]["dtype"] == "int8"


def test_fp32_files_match_pytorch_on_fresh_inputs(tiny_export):
    arch, _, models = tiny_export
    subnet = build_subnet(arch, TINY)
    x = torch.randn(3, 1, 3, 32, 32, generator=torch.Generator().manual_seed(42))
    with torch.no_grad():
        ref = [subnet(xi).numpy() for xi in x]
    tfl = next(m for m in models if m.format == "tflite" and m.quantization == "none")
    got = _tflite_outputs(tfl.path, x.numpy())
    assert max(np.abs(a - b).max() for a, b in zip(ref, got, strict=True)) <= 1e-4
    onnx_model = next(m for m in models if m.format == "onnx" and m.quantization == "none")
    sess = onnx_format.OnnxRunner(onnx_model.path)
    assert max(np.abs(sess.run(xi.numpy()) - r).max() for xi, r in zip(x, ref, strict=True)) <= 1e-4


def test_no_checkpoint_graph_is_a_trained_subnets_graph(tiny_export):
    """Initial weights would let the converter fold zero-scale BN branches and unit LayerNorm affines away."""
    arch, _, models = tiny_export
    net = ElasticViTSupernet(TINY)
    randomize_(net, seed=8)  # stands in for trained weights: nothing is 0 or 1
    trained = net.extract(arch)
    ops = inspect_graph(tflite_format.convert_module(trained, torch.zeros(1, 3, 32, 32), False)).ops
    exported = next(m for m in models if m.format == "tflite" and m.quantization == "none").manifest["graph"]["ops"]
    assert exported == ops
    assert exported["CONV_2D"] + exported["DEPTHWISE_CONV_2D"] == sum(
        isinstance(m, torch.nn.Conv2d) for m in trained.modules())


def test_model_files_describe_themselves(tiny_export):
    arch, _, models = tiny_export
    for m in models:
        info = describe_model(m.path)
        meta = info.metadata
        assert meta["arch"] == arch.to_dict() and meta["space_fingerprint"] == TINY.fingerprint
        assert meta["format"] == m.format and meta["quantization"] == m.quantization
        assert info.manifest_matches is True and info.format == m.format
    r = run("inspect", models[0].path, "--json")
    doc = json.loads(r.output)
    assert r.exit_code == 0 and doc["metadata"]["mflops"] == pytest.approx(arch_mflops(arch, TINY))
    assert doc["format"] == "elasticvit-deploy.model-info" and doc["version"] == 1 and doc["manifest"]["matches"]
    assert doc["model_format"] == models[0].format
    text = run("inspect", models[0].path).output
    assert "elasticvit-subnet" in text and "manifest      matches" in text
    manifest = json.loads(models[0].manifest_path.read_text())
    # a manifest of the headerless layout (the export cache may hold them) is still read
    legacy = {"schema": "elasticvit-deploy/export-manifest@1", **{k: v for k, v in manifest.items()
                                                                  if k not in ("format", "version")}}
    models[0].manifest_path.write_text(json.dumps(legacy))
    assert describe_model(models[0].path).manifest_matches is True
    for foreign in ({**manifest, "format": "elasticvit-deploy.measurement"}, {**manifest, "version": 99},
                    {"sha256": manifest["sha256"]}, {"sha256": "0" * 64}):
        models[0].manifest_path.write_text(json.dumps(foreign))
        assert describe_model(models[0].path).manifest_matches is False
    models[0].manifest_path.write_text(json.dumps(manifest))


def test_cli_nhwc_with_checkpoint_uses_ema_weights(tmp_path):
    net = ElasticViTSupernet(TINY)
    randomize_(net, seed=3)
    model_state = net.state_dict()
    randomize_(net, seed=4)
    ema_state = net.state_dict()
    ckpt = tmp_path / "supernet.pt"
    save_checkpoint(ckpt, TINY, model_state, ema_state)
    arch = min_arch(TINY)
    (tmp_path / "arch.json").write_text(arch.to_json())
    r = run("export", tmp_path / "arch.json", "--space", "tiny", "--checkpoint", ckpt, "--nhwc", "--out",
            tmp_path / "out", "--name", "m", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["format"] == "elasticvit-deploy.export-result" and report["version"] == 1
    (model,) = report["models"]
    manifest = model["manifest"]
    assert model["path"].endswith("m-fp32-nhwc.tflite") and manifest["input"]["shape"] == [1, 32, 32, 3]
    assert manifest["checkpoint"] == {"sha256": sha256_file(ckpt), "weights": "ema"}
    assert report["warnings"] == []
    net.load_state_dict(ema_state)
    subnet = net.extract(arch)
    x = torch.from_numpy(synthetic_inputs((1, 3, 32, 32), 2, seed=9))
    with torch.no_grad():
        ref = [subnet(xi[None]).numpy() for xi in x]
    got = _tflite_outputs(model["path"], x.permute(0, 2, 3, 1)[:, None].numpy())
    assert max(np.abs(a - b).max() for a, b in zip(ref, got, strict=True)) <= 1e-4
    assert ref[0].std() > 1e-3  # the checkpoint's weights give a real signal, so a wrong weight set would show


def _blocks():
    net = ElasticViTSupernet(TINY)
    randomize_(net, seed=5)
    subnet = net.extract(min_arch(TINY))
    return subnet, subnet.transformer[0], subnet.transformer[1]


@pytest.mark.parametrize("kind", ["mobile_block", "attention_with_downsampler", "ffn"])
def test_single_blocks_export_through_the_same_path(tmp_path, kind):
    subnet, attention, ffn = _blocks()
    block, shape = {
        "mobile_block": (subnet.cnn[1], (1, 8, 16, 16)),
        "attention_with_downsampler": (attention, (1, 64, 16)),
        "ffn": (ffn, (1, 16, 32)),
    }[kind]
    with torch.no_grad():
        block(torch.zeros(shape))  # the shape fits the block
    (m,) = export_module(block, shape, tmp_path, kind, metadata={"kind": "block", "block": kind}).models
    assert m.manifest["verification"]["parity"]["max_abs_diff"] <= 1e-4
    assert m.manifest["input"]["shape"] == list(shape) and m.manifest["block"] == kind
    assert describe_model(m.path).metadata["block"] == kind


def test_same_module_same_bytes(tmp_path):
    subnet, *_ = _blocks()
    a = export_module(subnet.cnn[1], (1, 8, 16, 16), tmp_path / "a", "b").models[0]
    b = export_module(subnet.cnn[1], (1, 8, 16, 16), tmp_path / "b", "b").models[0]
    assert a.manifest["sha256"] == b.manifest["sha256"]
    assert sha256_bytes(a.path.read_bytes()) == a.manifest["sha256"]


def test_failed_verification_leaves_nothing(tmp_path, monkeypatch):
    subnet, *_ = _blocks()
    real_run = tflite_format.TFLiteRunner.run
    monkeypatch.setattr(tflite_format.TFLiteRunner, "run", lambda self, x: real_run(self, x) + 1e-3)
    out = tmp_path / "new" / "dir"
    with pytest.raises(ExportError, match=r"max abs diff to PyTorch 0.001.* > 0.0001"):
        export_module(subnet.cnn[1], (1, 8, 16, 16), out, "b", quantizations=("none", "dynamic-int8"))
    assert not out.exists()  # created for the export, removed again: no file, no temp, no empty dir
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    with pytest.raises(ExportError):
        export_module(subnet.cnn[1], (1, 8, 16, 16), existing, "b")
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_flex_and_custom_ops_are_detected_and_refused(tmp_path, monkeypatch):
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    subnet, *_ = _blocks()
    clean = tflite_format.convert_module(subnet.cnn[1], torch.zeros(1, 8, 16, 16), False)
    assert inspect_graph(clean).builtin_only
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(clean))
    code = model.operatorCodes[0]
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = "FlexErf"
    flex = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    graph = inspect_graph(flex)
    assert graph.flex_ops == ["FlexErf"] and not graph.builtin_only and graph.ops["FlexErf"] >= 1
    monkeypatch.setattr(tflite_format, "convert_module", lambda *a: flex)
    with pytest.raises(ExportError, match="non-builtin ops FlexErf.*--allow-flex"):
        export_module(subnet.cnn[1], (1, 8, 16, 16), tmp_path / "o", "b")
    # allowed, it must still run on the host to be verified, and this interpreter has no Flex delegate
    with pytest.raises(ExportError, match="host runtime cannot run the model"):
        export_module(subnet.cnn[1], (1, 8, 16, 16), tmp_path / "o", "b", allow_flex=True)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # about 35 s on 2 cores: a full-size ElasticViT subnet through the converter
def test_elasticvit_min_subnet_exports_at_its_resolution(tmp_path):
    arch = min_arch(ELASTICVIT)
    (m,) = export_subnet(arch, ELASTICVIT, tmp_path).models
    assert m.manifest["input"]["shape"] == [1, 3, arch.resolution, arch.resolution]
    assert m.manifest["verification"]["parity"]["max_abs_diff"] <= 1e-4
    assert "RESIZE_BILINEAR" not in m.manifest["graph"]["ops"] and m.manifest["graph"]["builtin_only"]
    assert m.manifest["mflops"] == pytest.approx(37.365024)


def test_synthetic_and_file_inputs(tmp_path):
    a = synthetic_inputs((1, 3, 16, 16), 4, seed=0)
    assert np.array_equal(a, synthetic_inputs((1, 3, 16, 16), 4, seed=0))
    assert np.allclose(a.mean(axis=(2, 3)), 0, atol=1e-5) and np.allclose(a.std(axis=(2, 3)), 1, atol=0.05)
    nhwc = np.random.default_rng(0).normal(size=(10, 20, 20, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", nhwc)
    s = load_image_samples(tmp_path / "x.npy", (1, 3, 16, 16), n=3)
    assert s.calibration.shape == (3, 3, 16, 16) and s.verification.shape == (3, 3, 16, 16)
    assert s.source == "file:x.npy"
    for bad, msg in [(np.zeros((4, 3, 8)), "expected images"), (np.zeros((4, 1, 8, 8)), "1 channels"),
                     (np.zeros((4, 3, 8, 8), dtype=np.uint8), "uint8"), (np.zeros((1, 3, 8, 8)), "at least 2")]:
        np.save(tmp_path / "bad.npy", bad)
        with pytest.raises(InputDataError, match=msg):
            load_image_samples(tmp_path / "bad.npy", (1, 3, 16, 16), n=3)


@pytest.mark.parametrize("case", ["arch", "checkpoint_corrupt", "checkpoint_foreign", "out_is_file", "quantize",
                                  "data", "format", "name"])
def test_cli_bad_input_one_line_exit_2_nothing_written(tmp_path, case):
    arch = tmp_path / "arch.json"
    arch.write_text(min_arch(TINY).to_json())
    out = tmp_path / "out"
    args = ["export", arch, "--space", "tiny", "--out", out]
    if case == "arch":
        arch.write_text('{"resolution": 31}')
        needle = "arch.json:"
    elif case == "checkpoint_corrupt":
        (tmp_path / "c.pt").write_bytes(b"not a checkpoint")
        args += ["--checkpoint", tmp_path / "c.pt"]
        needle = "not a readable PyTorch checkpoint"
    elif case == "checkpoint_foreign":
        save_checkpoint(tmp_path / "c.pt", MICRO, ElasticViTSupernet(MICRO).state_dict())
        args += ["--checkpoint", tmp_path / "c.pt"]
        needle = "checkpoint is for space 'micro-test'"
    elif case == "out_is_file":
        (tmp_path / "afile").write_text("a file")
        args[-1] = tmp_path / "afile" / "out"
        needle = "output directory is not writable"
    elif case == "quantize":
        args += ["--quantize", "int4"]
        needle = "--quantize: int4 is not one of"
    elif case == "data":
        np.save(tmp_path / "d.npy", np.zeros((4, 5, 8, 8), dtype=np.float32))
        args += ["--data", tmp_path / "d.npy"]
        needle = "5 channels"
    elif case == "name":
        args += ["--name", "a/b"]
        needle = "name 'a/b'"
    else:
        args += ["--format", "coreml"]
        needle = "--format"
    before = sorted(tmp_path.rglob("*"))
    r = run(*args)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.output
    assert sorted(tmp_path.rglob("*")) == before  # nothing written anywhere


def test_inspect_rejects_unknown_and_corrupt_files(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"1")
    (tmp_path / "x.tflite").write_bytes(b"garbage")
    for path, needle in [(tmp_path / "x.bin", "expected .tflite or .onnx"), (tmp_path / "x.tflite", "not a readable"),
                         (tmp_path / "missing.onnx", "no such model file")]:
        r = run("inspect", path)
        assert r.exit_code == 2 and needle in r.stderr, r.stderr
    with pytest.raises(ModelFileError):
        describe_model(tmp_path / "x.tflite")


def test_request_validation():
    for kwargs, msg in [({"input_shape": (2, 3, 8, 8)}, "batch 1"), ({"channels_last": True, "input_shape": (1, 8)},
                                                                     "4-D"),
                        ({"formats": ("tf",)}, "unknown format"), ({"quantizations": ("int4",)}, "unknown quant"),
                        ({"name": "../evil"}, "file name"), ({"name": ""}, "file name")]:
        args = dict(name="m", input_shape=(1, 3, 8, 8), formats=("tflite",), quantizations=("none",),
                    channels_last=False)
        args.update(kwargs)
        with pytest.raises(ExportRequestError, match=msg):
            pipeline.check_request(**args)


def test_weights_warnings_name_what_the_export_carries():
    from elasticvit_deploy.export.subnet import NO_EMA_WARNING, weights_warnings
    from supernet.checkpoint import SupernetWeights

    raw = SupernetWeights({}, "c.pt", "0" * 64, "model", "tiny")
    ema = SupernetWeights({}, "c.pt", "0" * 64, "ema", "tiny")
    assert weights_warnings(None, prefer_ema=True) == [INITIAL_WEIGHTS_WARNING]
    assert weights_warnings(raw, prefer_ema=True) == [NO_EMA_WARNING]
    assert weights_warnings(raw, prefer_ema=False) == [] and weights_warnings(ema, prefer_ema=True) == []
