"""Export to every registered format (TFLite, ONNX), verified against PyTorch (see `pipeline` for the guarantees).

`export_module` takes any module plus an input shape (single blocks for the latency-predictor builder);
`export_subnet` wraps it for ElasticViT subnets. `stage_module` / `stage_subnet` stop short of publishing, for a
caller that publishes at its own commit point (the CLI). Formats come from the registry in `formats`; the built-in
ones are registered here, one line each.
"""

from .errors import ExportError, ExportRequestError, ModelFileError
from .formats import (
    QUANTIZATIONS,
    ExportFormat,
    HostRunner,
    format_names,
    get_format,
    quantization_names,
    register_format,
)
from .inputs import InputDataError, SampleSet, load_image_samples, synthetic_sample_set
from .onnx_format import OnnxFormat
from .parity import FP32_ATOL
from .pipeline import ExportedModel, ExportResult, StagedExport, export_module, output_name, stage_module
from .subnet import build_subnet, default_name, export_subnet, load_weights, stage_subnet
from .tflite_format import TFLiteFormat

register_format(TFLiteFormat())  # the first registered is the default: what the phones run
register_format(OnnxFormat())

__all__ = ["FP32_ATOL", "QUANTIZATIONS", "ExportError", "ExportFormat", "ExportRequestError", "ExportResult",
           "ExportedModel", "HostRunner", "InputDataError", "ModelFileError", "SampleSet", "StagedExport",
           "build_subnet", "default_name", "export_module", "export_subnet", "format_names", "get_format",
           "load_image_samples", "load_weights", "output_name", "quantization_names", "register_format",
           "stage_module", "stage_subnet", "synthetic_sample_set"]
