"""The contract every registered export format keeps (as scikit-learn's check_estimator does for estimators): a new
format passes these checks by being registered, with nothing added here. Tiny modules keep it fast."""

import importlib
import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from elasticvit_deploy.export import (
    ExportRequestError,
    ModelFileError,
    export_module,
    format_names,
    get_format,
    output_name,
    quantization_names,
    register_format,
)
from elasticvit_deploy.export.describe import describe_model
from elasticvit_deploy.export.formats import QUANTIZATIONS, format_for_path
from elasticvit_deploy.export.inputs import synthetic_inputs, to_layout
from elasticvit_deploy.export.parity import FP32_ATOL

SHAPE = (1, 3, 8, 8)
FORMATS = format_names()


def _tiny_module() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(8 * 8 * 8, 64)).eval()  # outputs enough for int8 ranges


@pytest.fixture(scope="module")
def tiny():
    """The module, verification inputs (NCHW) and PyTorch's outputs on them."""
    module = _tiny_module()
    inputs = synthetic_inputs(SHAPE, 4, seed=1)
    with torch.no_grad():
        reference = [module(torch.from_numpy(x[None])).numpy() for x in inputs]
    return module, inputs, reference


@pytest.fixture(scope="module")
def converted(tiny):
    """Each format's fp32 model of the tiny module, converted once."""
    module = tiny[0]
    return {name: get_format(name).convert(module, torch.zeros(SHAPE), False) for name in FORMATS}


def _max_diff(runner, inputs, reference, channels_last=False):
    outputs = [runner.run(to_layout(x[None], channels_last)) for x in inputs]
    assert all(o.shape == r.shape and o.dtype == np.float32 for o, r in zip(outputs, reference, strict=True))
    return max(float(np.abs(o - r).max()) for o, r in zip(outputs, reference, strict=True))


def test_registry_names_formats_and_refuses_unknown_ones():
    assert FORMATS[0] == "tflite" and set(FORMATS) >= {"tflite", "onnx"}
    with pytest.raises(ExportRequestError, match="unknown format 'coreml'; choose from " + ", ".join(FORMATS)):
        get_format("coreml")
    with pytest.raises(ModelFileError, match="unknown model type .bin; expected " + " or ".join(
            get_format(n).suffix for n in FORMATS)):
        format_for_path(Path("m.bin"))
    with pytest.raises(ValueError, match="already registered"):
        register_format(get_format(FORMATS[0]))
    assert set(quantization_names()) == {q for n in FORMATS for q in get_format(n).quantizations}


@pytest.mark.parametrize("name", FORMATS)
def test_declaration(name, tmp_path):
    fmt = get_format(name)
    assert fmt.name == name and fmt.suffix.startswith(".") and fmt.suffix == fmt.suffix.lower()
    assert format_for_path(tmp_path / f"m{fmt.suffix.upper()}") is fmt
    assert fmt.quantizations[0] == "none" and set(fmt.quantizations) <= set(QUANTIZATIONS)
    for q in fmt.quantizations:
        assert output_name("m", name, q, False).endswith(fmt.suffix)
    for module_name in fmt.native_modules:
        importlib.import_module(module_name)
    assert all(metadata.version(p) for p in fmt.packages)  # installed: their versions go into every manifest


@pytest.mark.parametrize("name", FORMATS)
def test_fp32_runner_matches_pytorch_from_bytes_and_file(name, tiny, converted, tmp_path):
    fmt, (_, inputs, reference), model = get_format(name), tiny, converted[name]
    assert isinstance(model, bytes) and model
    path = tmp_path / f"m{fmt.suffix}"
    path.write_bytes(model)
    for source in (model, path):
        runner = fmt.runner(source)
        assert runner.input_shape == SHAPE and runner.input_dtype == "float32"
        assert _max_diff(runner, inputs, reference) <= FP32_ATOL
    assert fmt.read_model(path) == model


@pytest.mark.parametrize("name", FORMATS)
def test_channels_last_conversion_takes_nhwc(name, tiny):
    fmt, (module, inputs, reference) = get_format(name), tiny
    runner = fmt.runner(fmt.convert(module, torch.zeros(SHAPE), True))
    assert runner.input_shape == (1, 8, 8, 3)
    assert _max_diff(runner, inputs, reference, channels_last=True) <= FP32_ATOL


@pytest.mark.parametrize("name", FORMATS)
def test_metadata_round_trip(name, tiny, converted):
    fmt, model = get_format(name), converted[name]
    assert fmt.read_metadata(model) is None
    info = {"kind": "test", "arch": {"depth": [1, 2]}, "mflops": 1.5, "text": "ünïcode"}
    tagged = fmt.embed_metadata(model, info)
    assert fmt.read_metadata(tagged) == info
    again = fmt.embed_metadata(tagged, {"kind": "replaced"})
    assert fmt.read_metadata(again) == {"kind": "replaced"}  # replaced, not added beside the first
    assert _max_diff(fmt.runner(again), tiny[1], tiny[2]) <= FP32_ATOL  # the graph is untouched


@pytest.mark.parametrize("name", FORMATS)
def test_graph_summary_and_checks(name, converted):
    fmt, model = get_format(name), converted[name]
    graph = fmt.graph_summary(model)
    assert graph["ops"] and graph["op_count"] == sum(graph["ops"].values()) > 0
    counts = list(graph["ops"].values())
    assert counts == sorted(counts, reverse=True)  # most frequent first
    assert fmt.non_builtin_ops(model) == []
    json.dumps([graph, fmt.manifest_extras(model)])  # both go into the manifest


@pytest.mark.parametrize("name", FORMATS)
def test_every_declared_quantization_runs(name, tiny, converted, tmp_path):
    fmt, (_, inputs, reference), model = get_format(name), tiny, converted[name]
    calibration = list(synthetic_inputs(SHAPE, 8, seed=0))
    scale = max(float(np.abs(r).max()) for r in reference)
    for q in fmt.quantizations:
        path = tmp_path / output_name("m", name, q, False)
        path.write_bytes(fmt.quantize(model, q, calibration))
        diff = _max_diff(fmt.runner(path), inputs, reference)
        assert diff <= (FP32_ATOL if q == "none" else 0.5 * scale), (q, diff)


@pytest.mark.parametrize("name", FORMATS)
def test_pipeline_exports_every_declared_quantization(name, tmp_path):
    fmt = get_format(name)
    result = export_module(_tiny_module(), SHAPE, tmp_path, "m", formats=(name,), quantizations=fmt.quantizations,
                           n_samples=2)
    assert [(m.format, m.quantization) for m in result.models] == [(name, q) for q in fmt.quantizations]
    assert result.warnings == (["int8 calibrated on the synthetic input set; pass --data with real images for "
                                "accuracy"] if "int8" in fmt.quantizations else [])
    for m in result.models:
        assert m.path.suffix == fmt.suffix and m.manifest["format"] == "elasticvit-deploy.export-manifest"
        assert m.manifest["model_format"] == name
        assert m.manifest["verification"]["passed"] and m.manifest["graph"] == fmt.graph_summary(m.path.read_bytes())
        info = describe_model(m.path)
        assert info.format == name and info.metadata["quantization"] == m.quantization and info.manifest_matches


@pytest.mark.parametrize("name", FORMATS)
def test_unreadable_files_are_refused_by_name(name, tmp_path):
    fmt = get_format(name)
    garbage = tmp_path / f"g{fmt.suffix}"
    garbage.write_bytes(b"\x00garbage" * 8)
    with pytest.raises(ModelFileError, match="g" + fmt.suffix.replace(".", r"\.")):
        describe_model(garbage)
    with pytest.raises(ModelFileError, match="no such model file"):
        describe_model(tmp_path / f"missing{fmt.suffix}")
