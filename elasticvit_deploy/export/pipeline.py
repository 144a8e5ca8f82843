"""Export any PyTorch module at a fixed input shape to every requested format (TFLite, ONNX: see `formats`), verify
it, and only then publish it.

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from supernet.arch import shorten
from supernet.atomic import OutputDirError, StagedFile, deferred_signals, prepare_out_dir, redeliver

from .errors import ExportError, ExportRequestError
from .formats import QUANTIZATIONS, ExportFormat, HostRunner, format_names, get_format, quantization_tag
from .inputs import SampleSet, synthetic_sample_set, to_layout
from .manifest import manifest_header, sha256_bytes, tool_versions
from .parity import FP32_ATOL, Parity, compare

__all__ = ["DEFAULT_SAMPLES", "SYNTHETIC_INT8_WARNING", "ExportError", "ExportRequestError", "ExportResult",
           "ExportedModel", "OutputDirError", "Progress", "StagedExport", "check_request", "export_module",
           "output_name", "stage_module"]

DEFAULT_SAMPLES = 8
SYNTHETIC_INT8_WARNING = "int8 calibrated on the synthetic input set; pass --data with real images for accuracy"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,150}")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExportedModel:
    """One published model file and its manifest."""

    format: str
    quantization: str
    path: Path
    manifest_path: Path
    manifest: dict[str, Any]


@dataclass(frozen=True)
class ExportResult:
    """What an export published, and what the caller should tell the user about it (one line each)."""

    models: list[ExportedModel]
    warnings: list[str]


@dataclass
class _Candidate:
    fmt: str
    quantization: str
    staged: StagedFile
    manifest: dict[str, Any]
    failure: str | None


def output_name(name: str, fmt: str, quantization: str, channels_last: bool) -> str:
    """``{name}-{fp32|fp16|dynint8|int8}[-nhwc]{suffix}``, e.g. ``m-fp32.tflite``."""
    return f"{name}-{quantization_tag(quantization)}{'-nhwc' if channels_last else ''}{get_format(fmt).suffix}"


def check_request(name: str, input_shape: Sequence[int], formats: Sequence[str], quantizations: Sequence[str],
                  channels_last: bool) -> None:
    """Raise `ExportRequestError` for a request that cannot be exported (before any work is done)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ExportRequestError(f"name {shorten(name)}: use letters, digits, '.', '_' and '-' only (it becomes a "
                                 f"file name)")
    if not input_shape or input_shape[0] != 1 or any(int(d) < 1 for d in input_shape):
        raise ExportRequestError(f"input shape must be batch 1 with positive sizes, got {tuple(input_shape)}")
    if channels_last and len(input_shape) != 4:
        raise ExportRequestError(f"channels-last input needs a 4-D (N, C, H, W) input shape, got "
                                 f"{tuple(input_shape)}")
    chosen = [get_format(f) for f in formats]
    for q in quantizations:
        if q not in QUANTIZATIONS:
            raise ExportRequestError(f"unknown quantization {shorten(q)}; choose from {', '.join(QUANTIZATIONS)}")
        for fmt in chosen:
            if q not in fmt.quantizations:
                raise ExportRequestError(f"{fmt.name} has no {q} quantization; it supports "
                                         f"{', '.join(fmt.quantizations)}")
    if not formats or not quantizations:
        raise ExportRequestError("nothing to export: give at least one format and one quantization")


def _first_line(e: BaseException) -> str:
    """The first line of `e`'s message, whitespace collapsed (its class name if it has none)."""
    return " ".join((str(e).strip().splitlines() or [e.__class__.__name__])[0].split())


def _convert(module: torch.nn.Module, fmt: ExportFormat, example: torch.Tensor, channels_last: bool) -> bytes:
    try:
        return fmt.convert(module, example, channels_last)
    except Exception as e:  # the converters raise many types; report the first line and the captured output
        notes = "".join(f" | {n.strip().splitlines()[-1]}" for n in getattr(e, "__notes__", []) if n.strip())
        raise ExportError(f"{fmt.name} conversion failed: {_first_line(e)[:300]}{notes[:300]}") from e


def _quantize(fmt: ExportFormat, fp32: bytes, quantization: str, calibration: list[np.ndarray]) -> bytes:
    try:
        return fmt.quantize(fp32, quantization, calibration)
    except Exception as e:
        raise ExportError(f"{fmt.name} {quantization} quantization failed: {_first_line(e)[:300]}") from e


def _parity_failure(fmt: ExportFormat, quantization: str, parity: Parity, atol: float | None) -> str | None:
    if not parity.finite:
        return f"{fmt.name} {quantization}: outputs contain NaN or infinity"
    if atol is not None and parity.max_abs_diff > atol:
        return f"{fmt.name} {quantization}: max abs diff to PyTorch {parity.max_abs_diff:.3g} > {atol:g}"
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


def _run(job: _Job, fmt: ExportFormat, model: bytes | Path, what: str) -> tuple[Parity, HostRunner]:
    """Run `model` on the verification inputs and compare with PyTorch; ExportError if it cannot run at all."""
    try:
        runner = fmt.runner(model)
        outputs = [runner.run(to_layout(x[None], job.channels_last)) for x in job.samples.verification]
    except Exception as e:
        raise ExportError(f"{what}: the host runtime cannot run the model: {_first_line(e)[:300]}") from e
    return compare(job.reference, outputs), runner


def _fp32(job: _Job, fmt: ExportFormat) -> tuple[bytes, float, Parity]:
    """Convert once to fp32, refuse non-builtin ops (unless allowed), check against PyTorch in memory."""
    job.say(f"converting to {fmt.name} (fp32)")
    t0 = time.perf_counter()
    fp32 = _convert(job.module, fmt, torch.from_numpy(job.samples.verification[0][None]), job.channels_last)
    seconds = time.perf_counter() - t0
    extra_ops = [] if job.allow_flex else fmt.non_builtin_ops(fp32)
    if extra_ops:
        raise ExportError(f"{fmt.name}: non-builtin ops {', '.join(extra_ops)} (Flex/custom ops need extra runtime "
                          f"support on the phone); pass --allow-flex to accept them")
    parity, _ = _run(job, fmt, fp32, f"{fmt.name} fp32")
    return fp32, seconds, parity


def _candidate(job: _Job, fmt: ExportFormat, fp32: bytes, convert_s: float, fp32_parity: Parity, quantization: str,
               staged: StagedFile) -> _Candidate:
    """Quantize, embed metadata, write the `staged` file, run it from disk and draft its manifest."""
    if quantization != "none":
        job.say(f"quantizing {fmt.name} ({quantization})")
    t0 = time.perf_counter()
    data = _quantize(fmt, fp32, quantization, job.calibration)
    quantize_s = time.perf_counter() - t0
    data = fmt.embed_metadata(data, dict(job.info, format=fmt.name, quantization=quantization))
    final = staged.final
    candidate = _Candidate(fmt.name, quantization, staged, {}, None)
    staged.path.write_bytes(data)
    job.say(f"verifying {final.name}")
    parity, runner = _run(job, fmt, staged.path, f"{fmt.name} {quantization}")
    atol = FP32_ATOL if quantization == "none" else None
    candidate.failure = (_parity_failure(fmt, "fp32", fp32_parity, FP32_ATOL)
                         or _parity_failure(fmt, quantization, parity, atol))
    candidate.manifest = {
        **manifest_header(), "file": final.name, "sha256": sha256_bytes(data), "size_bytes": len(data),
        "model_format": fmt.name, "quantization": quantization,
        "input": {"layout": job.layout, "shape": list(runner.input_shape), "dtype": runner.input_dtype},
        "output": {"shape": list(job.reference[0].shape)},
        **job.metadata,
        "verification": {"passed": candidate.failure is None, "reference": "pytorch-fp32",
                         "inputs": job.samples.describe(), "atol": atol, "parity": parity.to_dict(),
                         "fp32_graph_parity": fp32_parity.to_dict()},
        "graph": fmt.graph_summary(data), **fmt.manifest_extras(data),
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
    warnings: list[str] = field(default_factory=list)        # for the user, passed on by `publish()`

    def new_file(self, final: Path) -> StagedFile:
        """A temporary file for `final`, recorded before a Ctrl-C can act (so `discard()` never misses one)."""
        with deferred_signals() as arrived:
            self.files.append(StagedFile(final))
        redeliver(arrived)
        return self.files[-1]

    def stage_manifests(self) -> None:
        """Write every candidate's manifest beside it (staged too) and seal all the files."""
        created = datetime.now(UTC).isoformat(timespec="seconds")
        for c in self.candidates:
            c.manifest["created_utc"] = created
            staged = self.new_file(c.staged.final.with_name(c.staged.final.name + ".json"))
            self.manifests.append(staged)
            staged.path.write_text(json.dumps(c.manifest, indent=2) + "\n", encoding="utf-8")
        for f in self.files:
            f.seal()

    def publish(self) -> ExportResult:
        """Rename every file into place: the critical section, with SIGINT/SIGTERM held until it is done (and then
        acted on: the files are published). A signal that arrived before it raises here, before any rename; a
        rename that fails raises `OutputDirError`. Either way nothing staged is left."""
        try:
            with deferred_signals() as arrived:
                if arrived:
                    raise KeyboardInterrupt
                published = [ExportedModel(c.fmt, c.quantization, c.staged.commit(), m.commit(), c.manifest)
                             for c, m in zip(self.candidates, self.manifests, strict=True)]
        except OSError as e:
            self.discard()
            raise OutputDirError(f"{shorten(str(self.out_dir))}: cannot publish the export ({e.strerror or e})") \
                from None
        except BaseException:
            self.discard()
            raise
        redeliver(arrived)
        return ExportResult(published, list(self.warnings))

    def discard(self) -> None:
        """Remove whatever is still staged (nothing once published)."""
        for f in self.files:
            f.discard()
        if self.created_dir and self.out_dir.is_dir() and not any(self.out_dir.iterdir()):
            self.out_dir.rmdir()


def _load_converters(formats: Sequence[ExportFormat]) -> None:
    """Import the formats' converters' and runtimes' native extensions with Ctrl-C held: a KeyboardInterrupt raised
    while a C++ extension initialises aborts the interpreter (no clean-up, staged files left) instead of
    unwinding."""
    with deferred_signals() as arrived:
        for name in dict.fromkeys(m for fmt in formats for m in fmt.native_modules):
            importlib.import_module(name)
    redeliver(arrived)


def stage_module(module: torch.nn.Module, input_shape: Sequence[int], out_dir: str | Path, name: str, *,
                 formats: Sequence[str] | None = None, quantizations: Sequence[str] = ("none",),
                 channels_last: bool = False, metadata: dict[str, Any] | None = None,
                 samples: SampleSet | None = None, n_samples: int = DEFAULT_SAMPLES, allow_flex: bool = False,
                 progress: Progress | None = None) -> StagedExport:
    """Everything `export_module` does but the renames: the verified files and manifests, staged in `out_dir`
    (`formats`: registered format names, default the first registered; `samples`: verification and calibration
    inputs, default the synthetic set of `n_samples`). Raises `ExportRequestError` for a bad request before any
    work, `ExportError` or `OutputDirError` (a full or read-only disk) with nothing left."""
    shape = tuple(int(d) for d in input_shape)
    formats = list(formats) if formats is not None else [format_names()[0]]
    check_request(name, shape, formats, quantizations, channels_last)
    chosen = [get_format(f) for f in dict.fromkeys(formats)]
    _load_converters(chosen)
    out_dir = Path(out_dir)
    staged = StagedExport(out_dir, not out_dir.exists())
    if samples is None and "int8" in quantizations:
        staged.warnings.append(SYNTHETIC_INT8_WARNING)
    try:
        prepare_out_dir(out_dir)
        job = _job(module, shape, samples, n_samples, channels_last, metadata, allow_flex, progress)
        for fmt in chosen:
            fp32, convert_s, fp32_parity = _fp32(job, fmt)
            for quantization in dict.fromkeys(quantizations):
                file = staged.new_file(out_dir / output_name(name, fmt.name, quantization, channels_last))
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
                  **options: Any) -> ExportResult:
    """Export `module` (one input of `input_shape`, batch 1; NCHW for images) in every requested format and
    quantization into `out_dir`, verified, with manifests (`options`: see `stage_module`; `metadata`, JSON-able, is
    embedded in every file and copied into every manifest). Raises `ExportRequestError` (a bad request),
    `ExportError` (nothing written) or `OutputDirError`."""
    return stage_module(module, input_shape, out_dir, name, **options).publish()
