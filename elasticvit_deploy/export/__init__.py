"""Export to TFLite and ONNX, verified against PyTorch (see `pipeline` for the guarantees).

`export_module` takes any module plus an input shape (single blocks for the latency-predictor builder);
`export_subnet` wraps it for ElasticViT subnets. `stage_module` / `stage_subnet` stop short of publishing, for a
caller that publishes at its own commit point (the CLI).
"""

from .inputs import InputDataError, SampleSet, load_image_samples, synthetic_sample_set
from .parity import FP32_ATOL
from .pipeline import FORMATS, ExportedModel, ExportError, StagedExport, export_module, output_name, stage_module
from .subnet import build_subnet, default_name, export_subnet, load_weights, stage_subnet
from .tflite_format import QUANTIZATIONS

__all__ = ["FORMATS", "FP32_ATOL", "QUANTIZATIONS", "ExportError", "ExportedModel", "InputDataError", "SampleSet",
           "StagedExport", "build_subnet", "default_name", "export_module", "export_subnet", "load_image_samples",
           "load_weights", "output_name", "stage_module", "stage_subnet", "synthetic_sample_set"]
