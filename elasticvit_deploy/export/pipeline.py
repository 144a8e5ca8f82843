"""Export any PyTorch module at a fixed input shape to TFLite and/or ONNX, verify it, and only then publish it.

This is the one export path: whole subnets (`subnet.export_subnet`) and single blocks for the latency-predictor
builder both go through `export_module`. For each format the module is converted once to fp32; the fp32 graph is
checked against PyTorch (max abs diff <= 1e-4 on the verification inputs, else the export fails); each requested
quantization is derived from that verified graph, the ``elasticvit_deploy`` metadata is embedded, and the file is
written under a temporary name and run from there, its manifest JSON too. Only when every requested file has
passed are the files renamed to their final names (`StagedExport.publish`: renames only, nothing left to write). On
any failure, a full disk or Ctrl-C before publishing nothing is left in `out_dir`; a Ctrl-C during the renames is
held until they are done, so the set is published whole or not at all.
"""

from __future__ import annotations

import importlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supernet.arch import shorten
from supernet.atomic import OutputDirError, StagedFile, deferred_signals, prepare_out_dir, redeliver

from . import onnx_format, tflite_format
from .inputs import SampleSet, synthetic_sample_set
from .manifest import MANIFEST_SCHEMA, sha256_bytes, tool_versions
from .parity import FP32_ATOL, Parity, compare
from .runtime import OnnxRunner, TFLiteRunner, open_runner
from .tflite_format import QUANTIZATIONS, to_layout
from .tflite_graph import inspect_graph, xnnpack_status

FORMATS = ("tflite", "onnx")
EXTENSIONS = {"tflite": ".tflite", "onnx": ".onnx"}
QUANT_TAGS = {"none": "fp32", "fp16": "fp16", "dynamic-int8": "dynint8", "int8": "int8"}
DEFAULT_SAMPLES = 8
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,150}")

Progress = Callable[[str], None]


class ExportError(RuntimeError):
    """The conversion failed or an exported model did not pass verification; nothing was written."""


@dataclass(frozen=True)
class ExportedModel:
    format: str
    quantization: str
    path: Path
    manifest_path: Path
    manifest: dict[str, Any]


@dataclass
class _Candidate:
    fmt: str
    quantization: str
    staged: StagedFile
    manifest: dict[str, Any]
    failure: str | None


def output_name(name: str, fmt: str, quantization: str, channels_last: bool) -> str:
    """``{name}-{fp32|fp16|dynint8|int8}[-nhwc].{tflite|onnx}``."""
    return f"{name}-{QUANT_TAGS[quantization]}{'-nhwc' if channels_last else ''}{EXTENSIONS[fmt]}"


def check_request(name: str, input_shape: Sequence[int], formats: Sequence[str], quantizations: Sequence[str],
                  channels_last: bool) -> None:
    """Raise ValueError for a request that cannot be exported (before any work is done)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"name {name!r}: use letters, digits, '.', '_' and '-' only (it becomes a file name)")
    if not input_shape or input_shape[0] != 1 or any(int(d) < 1 for d in input_shape):
        raise ValueError(f"input shape must be batch 1 with positive sizes, got {tuple(input_shape)}")
    if channels_last and len(input_shape) != 4:
        raise ValueError(f"channels-last input needs a 4-D (N, C, H, W) input shape, got {tuple(input_shape)}")
    for f in formats:
        if f not in FORMATS:
            raise ValueError(f"unknown format {f!r}; choose from {', '.join(FORMATS)}")
    for q in quantizations:
        if q not in QUANTIZATIONS:
            raise ValueError(f"unknown quantization {q!r}; choose from {', '.join(QUANTIZATIONS)}")
    if not formats or not quantizations:
        raise ValueError("nothing to export: give at least one format and one quantization")


def _convert(module: torch.nn.Module, fmt: str, example: torch.Tensor, channels_last: bool) -> bytes:
    try:
        if fmt == "tflite":
            return tflite_format.convert_module(module, example, channels_last)
        return onnx_format.export_module(module, example, channels_last)
    except Exception as e:  # the converters raise many types; report the first line and the captured output
        notes = "".join(f" | {n.strip().splitlines()[-1]}" for n in getattr(e, "__notes__", []) if n.strip())
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise ExportError(f"{fmt} conversion failed: {first[:300]}{notes[:300]}") from e


def _quantize(fmt: str, fp32: bytes, quantization: str, calibration: list[np.ndarray]) -> bytes:
    backend = tflite_format if fmt == "tflite" else onnx_format
    try:
        return backend.quantize(fp32, quantization, calibration)
    except Exception as e:
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise ExportError(f"{fmt} {quantization} quantization failed: {first[:300]}") from e


def _embed(fmt: str, model: bytes, info: dict[str, Any]) -> bytes:
    return (tflite_format if fmt == "tflite" else onnx_format).embed_metadata(model, info)


def _parity_failure(fmt: str, quantization: str, parity: Parity, atol: float | None) -> str | None:
    if not parity.finite:
        return f"{fmt} {quantization}: outputs contain NaN or infinity"
    if atol is not None and parity.max_abs_diff > atol:
        return f"{fmt} {quantization}: max abs diff to PyTorch {parity.max_abs_diff:.3g} > {atol:g}"
    return None


@dataclass(frozen=True)
class _Job:
    """Everything the per-format steps share."""

    module: torch.nn.Module
    samples: SampleSet
    reference: list[np.ndarray]
    calibration: list[np.ndarray]
    channels_last: bool
    layout: str
    info: dict[str, Any]       # embedded in every file (plus format and quantization)
    metadata: dict[str, Any]   # the caller's, copied into every manifest
    versions: dict[str, str]
    allow_flex: bool
    say: Progress


def _run(job: _Job, fmt: str, model: bytes | Path, what: str) -> tuple[Parity, TFLiteRunner | OnnxRunner]:
    """Run `model` on the verification inputs and compare with PyTorch; ExportError if it cannot run at all."""
    try:
        runner = open_runner(model, fmt)
        outputs = [runner.run(to_layout(x[None], job.channels_last)) for x in job.samples.verification]
    except Exception as e:
        first = (str(e).strip().splitlines() or [e.__class__.__name__])[0]
        raise ExportError(f"{what}: the host runtime cannot run the model: {first[:300]}") from e
    return compare(job.reference, outputs), runner


def _fp32(job: _Job, fmt: str) -> tuple[bytes, float, Parity]:
    """Convert once to fp32, refuse non-builtin TFLite ops (unless allowed), check against PyTorch in memory."""
    job.say(f"converting to {fmt} (fp32)")
    t0 = time.perf_counter()
    fp32 = _convert(job.module, fmt, torch.from_numpy(job.samples.verification[0][None]), job.channels_last)
    seconds = time.perf_counter() - t0
    if fmt == "tflite" and not job.allow_flex:
        graph = inspect_graph(fp32)
        if not graph.builtin_only:
            raise ExportError(f"tflite: non-builtin ops {', '.join(graph.flex_ops + graph.custom_ops)} (Flex/custom "
                              f"ops need extra runtime support on the phone); pass --allow-flex to accept them")
    parity, _ = _run(job, fmt, fp32, f"{fmt} fp32")
    return fp32, seconds, parity


def _candidate(job: _Job, fmt: str, fp32: bytes, convert_s: float, fp32_parity: Parity, quantization: str,
               staged: StagedFile) -> _Candidate:
    """Quantize, embed metadata, write the `staged` file, run it from disk and draft its manifest."""
    if quantization != "none":
        job.say(f"quantizing {fmt} ({quantization})")
    t0 = time.perf_counter()
    data = _quantize(fmt, fp32, quantization, job.calibration)
    quantize_s = time.perf_counter() - t0
    data = _embed(fmt, data, dict(job.info, format=fmt, quantization=quantization))
    final = staged.final
    candidate = _Candidate(fmt, quantization, staged, {}, None)
    staged.path.write_bytes(data)
    job.say(f"verifying {final.name}")
    parity, runner = _run(job, fmt, staged.path, f"{fmt} {quantization}")
    atol = FP32_ATOL if quantization == "none" else None
    candidate.failure = (_parity_failure(fmt, "fp32", fp32_parity, FP32_ATOL)
                         or _parity_failure(fmt, quantization, parity, atol))
    extra: dict[str, Any] = {}
    if fmt == "tflite":
        graph = inspect_graph(data).to_dict()
        extra["xnnpack"] = xnnpack_status(data)
    else:
        graph = onnx_format.op_histogram(data)
    candidate.manifest = {
        "schema": MANIFEST_SCHEMA, "file": final.name, "sha256": sha256_bytes(data), "size_bytes": len(data),
        "format": fmt, "quantization": quantization,
        "input": {"layout": job.layout, "shape": list(runner.input_shape), "dtype": runner.input_dtype},
        "output": {"shape": list(job.reference[0].shape)},
        **job.metadata,
        "verification": {"passed": candidate.failure is None, "reference": "pytorch-fp32",
                         "inputs": job.samples.describe(), "atol": atol, "parity": parity.to_dict(),
                         "fp32_graph_parity": fp32_parity.to_dict()},
        "graph": graph, **extra,
        "timing_s": {"convert": round(convert_s, 3), "quantize": round(quantize_s, 3)},
        "tools": job.versions,
    }
    return candidate


@dataclass
class StagedExport:
    """Verified files and their manifests under temporary names in `out_dir`, ready to publish."""

    out_dir: Path
    created_dir: bool                   # `out_dir` was created for this export (removed again if left empty)
    candidates: list[_Candidate] = field(default_factory=list)
    manifests: list[StagedFile] = field(default_factory=list)
    files: list[StagedFile] = field(default_factory=list)    # every temporary file made, for `discard()`

    def new_file(self, final: Path) -> StagedFile:
        """A temporary file for `final`, recorded before a Ctrl-C can act (so `discard()` never misses one)."""
        with deferred_signals() as arrived:
            self.files.append(StagedFile(final))
        redeliver(arrived)
        return self.files[-1]

    def stage_manifests(self) -> None:
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for c in self.candidates:
            c.manifest["created_utc"] = created
            staged = self.new_file(c.staged.final.with_name(c.staged.final.name + ".json"))
            self.manifests.append(staged)
            staged.path.write_text(json.dumps(c.manifest, indent=2) + "\n", encoding="utf-8")
        for f in self.files:
            f.seal()

    def publish(self) -> list[ExportedModel]:
        """Rename every file into place: the critical section, with SIGINT/SIGTERM held until it is done (and then
        acted on: the files are published). A signal that arrived before it raises here, before any rename."""
        try:
            with deferred_signals() as arrived:
                if arrived:
                    raise KeyboardInterrupt
                published = [ExportedModel(c.fmt, c.quantization, c.staged.commit(), m.commit(), c.manifest)
                             for c, m in zip(self.candidates, self.manifests)]
        except BaseException:
            self.discard()
            raise
        redeliver(arrived)
        return published

    def discard(self) -> None:
        """Remove whatever is still staged (nothing once published)."""
        for f in self.files:
            f.discard()
        if self.created_dir and self.out_dir.is_dir() and not any(self.out_dir.iterdir()):
            self.out_dir.rmdir()


NATIVE_MODULES = ("ai_edge_litert.interpreter", "litert_torch", "onnx", "onnxruntime", "onnxruntime.quantization")


def _load_converters() -> None:
    """Import the converters' and runtimes' native extensions with Ctrl-C held: a KeyboardInterrupt raised while
    a C++ extension initialises aborts the interpreter (no clean-up, staged files left) instead of unwinding."""
    with deferred_signals() as arrived:
        for name in NATIVE_MODULES:
            importlib.import_module(name)
    redeliver(arrived)


def stage_module(module: torch.nn.Module, input_shape: Sequence[int], out_dir: str | Path, name: str, *,
                 formats: Sequence[str] = ("tflite",), quantizations: Sequence[str] = ("none",),
                 channels_last: bool = False, metadata: dict[str, Any] | None = None,
                 samples: SampleSet | None = None, n_samples: int = DEFAULT_SAMPLES, allow_flex: bool = False,
                 progress: Progress | None = None) -> StagedExport:
    """Everything `export_module` does but the renames: the verified files and manifests, staged in `out_dir`.
    Raises `ExportError` or `OutputDirError` (a full or read-only disk) with nothing left, or ValueError for a bad
    request."""
    shape = tuple(int(d) for d in input_shape)
    check_request(name, shape, formats, quantizations, channels_last)
    _load_converters()
    out_dir = Path(out_dir)
    staged = StagedExport(out_dir, not out_dir.exists())
    try:
        prepare_out_dir(out_dir)
        job = _job(module, shape, samples, n_samples, channels_last, metadata, allow_flex, progress)
        for fmt in dict.fromkeys(formats):
            fp32, convert_s, fp32_parity = _fp32(job, fmt)
            for quantization in dict.fromkeys(quantizations):
                file = staged.new_file(out_dir / output_name(name, fmt, quantization, channels_last))
                staged.candidates.append(_candidate(job, fmt, fp32, convert_s, fp32_parity, quantization, file))
        failures = [c.failure for c in staged.candidates if c.failure]
        if failures:
            raise ExportError("verification failed, nothing written: " + "; ".join(dict.fromkeys(failures)))
        staged.stage_manifests()
    except OSError as e:
        staged.discard()
        raise OutputDirError(f"{shorten(str(out_dir))}: cannot write the export ({e.strerror or e}); nothing "
                             f"written") from None
    except BaseException:
        staged.discard()
        raise
    return staged


def _job(module: torch.nn.Module, shape: tuple[int, ...], samples: SampleSet | None, n_samples: int,
         channels_last: bool, metadata: dict[str, Any] | None, allow_flex: bool, progress: Progress | None) -> _Job:
    module = module.eval()
    samples = samples or synthetic_sample_set(shape, n_samples)
    with torch.no_grad():
        reference = [module(torch.from_numpy(x[None])).numpy() for x in samples.verification]
    layout = ("NHWC" if channels_last else "NCHW") if len(shape) == 4 else "as-is"
    versions = tool_versions()
    info = dict(metadata or {}, input_layout=layout,
                input_shape=list(to_layout(np.empty(shape, dtype=np.float32), channels_last).shape),
                tool=f"elasticvit-deploy {versions['elasticvit-deploy']}")
    return _Job(module, samples, reference, [to_layout(x[None], channels_last)[0] for x in samples.calibration],
                channels_last, layout, info, dict(metadata or {}), versions, allow_flex,
                progress or (lambda _msg: None))


def export_module(module: torch.nn.Module, input_shape: Sequence[int], out_dir: str | Path, name: str,
                  **options: Any) -> list[ExportedModel]:
    """Export `module` (one input of `input_shape`, batch 1; NCHW for images) in every requested format and
    quantization into `out_dir`, verified, with manifests (`options`: see `stage_module`; `metadata`, JSON-able, is
    embedded in every file and copied into every manifest). Raises `ExportError` (nothing written),
    `OutputDirError`, or ValueError for a bad request."""
    return stage_module(module, input_shape, out_dir, name, **options).publish()
