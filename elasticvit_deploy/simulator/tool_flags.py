"""The command lines of the three benchmark_model tools the simulator imitates (benchmark_model.py): each tool's
flags with their C++ types, defaults and usage texts, the labels its parameter log prints, how it reads argv, and
its flag listing (``--help``).

``classic``
    TF Lite 2.x ``tensorflow/lite/tools/benchmark`` as released with TF 2.18: the flags and log labels of
    ``BenchmarkModel``, ``BenchmarkTfLiteModel`` and its delegate providers (default, external, gpu, hexagon,
    nnapi, xnnpack; LiteRT tag v1.1.0, ``tflite/tools``).
``litert2``
    LiteRT 2.x ``litert/tools/benchmark_litert_model`` (tag v2.2.0): the shared loop flags and
    ``BenchmarkLiteRtModel``'s own, ``--use_cpu/--use_gpu/--use_npu`` among them; no ``--use_xnnpack`` or
    ``--use_nnapi``. Arguments named with a vendor's prefix (``LITERT_VENDOR_PREFIXES``) belong to the vendor
    flags, which this build does not have; the tool leaves them out of its parse.
``tf1``
    TF Lite 1.12 ``tensorflow/contrib/lite/tools/benchmark``: only ``--num_runs``, ``--run_delay``,
    ``--num_threads``, ``--benchmark_name``, ``--output_prefix``, ``--warmup_runs``, ``--graph``,
    ``--input_layer``, ``--input_layer_shape``, ``--use_nnapi``.

The 2.x tools give each flag the first unused ``--name=`` argument and report a value that does not parse
(``Failed to parse flag ...``); TF Lite 1.12 gives each argument to the first flag it names and fails silently.
All three parse values as the C++ tools do (``std::istream``: ``--num_runs=5x`` is 5, ``--num_runs=`` is 0,
booleans ``true/false/1/0``) and log them as C++ streams print them (bools as 1/0, floats with 6 significant
digits).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

FlagValue = bool | int | float | str
"""A flag's value as the tools hold it: their C++ types bool, int32, float and string."""


@dataclass(frozen=True)
class Flag:
    """One command-line flag of a tool: name, C++ type, default and the usage text its listing shows."""

    name: str
    kind: str        # int32 | float | bool | string
    default: FlagValue
    usage: str


def _flags(*rows: tuple[str, str, FlagValue, str]) -> tuple[Flag, ...]:
    return tuple(Flag(*row) for row in rows)


LOOP_FLAGS = _flags(  # tflite/tools/benchmark/benchmark_model.cc, BenchmarkModel::GetFlags (LiteRT v1.1.0/v2.2.0)
    ("num_runs", "int32", 50, "expected number of runs, see also min_secs, max_secs"),
    ("min_secs", "float", 1.0, "minimum number of seconds to rerun for, potentially making the actual number of "
                               "runs to be greater than num_runs"),
    ("max_secs", "float", 150.0, "maximum number of seconds to rerun for, potentially making the actual number of "
                                 "runs to be less than num_runs. Note if --max-secs is exceeded in the middle of a "
                                 "run, the benchmark will continue to the end of the run but will not start the "
                                 "next run."),
    ("run_delay", "float", -1.0, "delay between runs in seconds"),
    ("run_frequency", "float", -1.0, "Execute at a fixed frequency, instead of a fixed delay.Note if the targeted "
                                     "rate per second cannot be reached, the benchmark would start the next run "
                                     "immediately, trying its best to catch up. If set, this will override "
                                     "run_delay."),
    ("num_threads", "int32", -1, "number of threads"),
    ("use_caching", "bool", False, "Enable caching of prepacked weights matrices in matrix multiplication "
                                   "routines. Currently implies the use of the Ruy library."),
    ("benchmark_name", "string", "", "benchmark name"),
    ("output_prefix", "string", "", "benchmark output prefix"),
    ("warmup_runs", "int32", 1, "minimum number of runs performed on initialization, to allow performance "
                                "characteristics to settle, see also warmup_min_secs"),
    ("warmup_min_secs", "float", 0.5, "minimum number of seconds to rerun for, potentially making the actual "
                                      "number of warm-up runs to be greater than warmup_runs"),
    ("verbose", "bool", False, "Whether to log parameters whose values are not set. By default, only log those "
                               "parameters that are set by parsing their values from the commandline flags."),
    ("dry_run", "bool", False, "Whether to run the tool just with simply loading the model, allocating tensors "
                               "etc. but without actually invoking any op kernels."),
    ("report_peak_memory_footprint", "bool", False, "Report the peak memory footprint by periodically checking the "
                                                    "memory footprint. Internally, a separate thread will be "
                                                    "spawned for this periodic check. Therefore, the performance "
                                                    "benchmark result could be affected."),
    ("memory_footprint_check_interval_ms", "int32", 50, "The interval in millisecond between two consecutive "
                                                        "memory footprint checks. This is only used when "
                                                        "--report_peak_memory_footprint is set to true."),
    ("gpu_invoke_loop_times", "int32", 1, "Number of GPU delegate invoke loop iterations. If > 0 then reported "
                                          "latency is divided by this number. Used only when "
                                          "TFLITE_GPU_ENABLE_INVOKE_LOOP is defined."),
)
LOOP_LABELS = (("num_runs", "Min num runs"), ("min_secs", "Min runs duration (seconds)"),
                ("max_secs", "Max runs duration (seconds)"), ("run_delay", "Inter-run delay (seconds)"),
                ("run_frequency", "Number of prorated runs per second"), ("num_threads", "Num threads"),
                ("use_caching", "Use caching"), ("benchmark_name", "Benchmark name"),
                ("output_prefix", "Output prefix"), ("warmup_runs", "Min warmup runs"),
                ("warmup_min_secs", "Min warmup runs duration (seconds)"), ("dry_run", "Run w/o invoking kernels"),
                ("report_peak_memory_footprint", "Report the peak memory footprint"),
                ("memory_footprint_check_interval_ms", "Memory footprint check interval (ms)"))

CLASSIC_OWN = _flags(  # tflite/tools/benchmark/benchmark_tflite_model.cc, BenchmarkTfLiteModel::GetFlags
    ("graph", "string", "", "graph file name"),
    ("input_layer", "string", "", "input layer names"),
    ("input_layer_shape", "string", "", "input layer shape"),
    ("input_layer_value_range", "string", "", "A map-like string representing value range for *integer* input "
                                              "layers. Each item is separated by ':', and the item value consists "
                                              "of input layer name and integer-only range values (both low and "
                                              "high are inclusive) separated by ',', e.g. input1,1,2:input2,0,254"),
    ("input_layer_value_files", "string", "", "A map-like string representing value file. Each item is separated "
                                              "by ',', and the item value consists of input layer name and value "
                                              "file path separated by ':', e.g. input1:file_path1,input2:file_path2."
                                              " In case the input layer name contains ':' e.g. \"input:0\", escape "
                                              "it with \"\\:\". If the input_name appears both in "
                                              "input_layer_value_range and input_layer_value_files, "
                                              "input_layer_value_range of the input_name will be ignored. The file "
                                              "format is binary and it should be array format or null separated "
                                              "strings format."),
    ("allow_fp16", "bool", False, "allow fp16"),
    ("require_full_delegation", "bool", False, "require delegate to run the entire graph"),
    ("enable_op_profiling", "bool", False, "enable op profiling"),
    ("op_profiling_output_mode", "string", "stdout", "Output mode for op profiling results. Supported values are: "
                                                     "'stdout', 'csv' and 'proto'."),
    ("op_profiling_output_file", "string", "", "Output file for op profiling results."),
    ("max_profiling_buffer_entries", "int32", 1024, "max initial profiling buffer entries"),
    ("allow_dynamic_profiling_buffer_increase", "bool", False, "allow dynamic increase on profiling buffer entries"),
    ("profiling_output_csv_file", "string", "", "[DEPRECATED: Use op_profiling_output_file and "
                                                "op_profiling_output_mode instead] File path to export profile "
                                                "data as CSV, if not set prints to stdout."),
    ("export_model_runtime_info", "bool", False, "Enable Model Runtime Info Export"),
    ("model_runtime_info_output_file", "string", "", "Proto File to export model runtime info to"),
    ("print_preinvoke_state", "bool", False, "print out the interpreter internals just before calling Invoke. The "
                                             "internals will include allocated memory size of each tensor etc."),
    ("print_postinvoke_state", "bool", False, "print out the interpreter internals just before benchmark completes "
                                              "(i.e. after all repeated Invoke calls complete). The internals will "
                                              "include allocated memory size of each tensor etc."),
    ("release_dynamic_tensors", "bool", False, "Ensure dynamic tensor's memory is released when they are not used."),
    ("optimize_memory_for_large_tensors", "int32", 0, "Optimize memory usage for large tensors with sacrificing "
                                                      "latency."),
    ("disable_delegate_clustering", "bool", False, "Disable delegate clustering."),
    ("enable_builtin_cast_constant_cache", "bool", False, "Cache the output of the builtin cast operation when its "
                                                          "input is a constant tensor."),
    ("output_filepath", "string", "", "File path to export outputs layer as binary data."),
    ("output_proto_filepath", "string", "", "File path to export outputs layer as tf example proto."),
    ("tensor_name_display_length", "int32", 25, "The number of characters to show for the tensor's name when "
                                                "printing the interpeter's state, defaults to 25."),
    ("tensor_type_display_length", "int32", 15, "The number of characters to show for the tensor's type when "
                                                "printing the interpeter's state, defaults to 15."),
    ("alloc_type_display_length", "int32", 18, "The number of characters to show for the tensor's allocation type "
                                               "when printing the interpeter's state, defaults to 18."),
    ("signature_to_run_for", "string", "", "If the model contains multiple signatures, use this flag to specify "
                                           "the signature to benchmark. If multiple signatures are present and this "
                                           "flag is not specified, the benchmark will throw an error. If only one "
                                           "signature is present and this flag is not specified, the default "
                                           "signature will be used."),
    ("list_signatures", "bool", False, "Displays all signatures present in the model and then terminates the "
                                       "program."),
)
CLASSIC_LABELS = (("graph", "Graph"), ("signature_to_run_for", "Signature to run"),
                   ("list_signatures", "List signatures from the provided model"), ("input_layer", "Input layers"),
                   ("input_layer_shape", "Input shapes"), ("input_layer_value_range", "Input value ranges"),
                   ("input_layer_value_files", "Input value files"), ("allow_fp16", "Allow fp16"),
                   ("require_full_delegation", "Require full delegation"),
                   ("enable_op_profiling", "Enable op profiling"),
                   ("op_profiling_output_mode", "Op profiling output mode."),
                   ("op_profiling_output_file", "Op profiling output file."),
                   ("max_profiling_buffer_entries", "Max initial profiling buffer entries"),
                   ("allow_dynamic_profiling_buffer_increase", "Allow dynamic increase on profiling buffer entries"),
                   ("profiling_output_csv_file", "CSV File to export profiling data to"),
                   ("export_model_runtime_info", "Enable Model Runtime Info Export"),
                   ("model_runtime_info_output_file", "Proto File to export model runtime info to"),
                   ("print_preinvoke_state", "Print pre-invoke interpreter state"),
                   ("print_postinvoke_state", "Print post-invoke interpreter state"),
                   ("release_dynamic_tensors", "Release dynamic tensor memory"),
                   ("optimize_memory_for_large_tensors", "Optimize memory usage for large tensors"),
                   ("disable_delegate_clustering", "Disable delegate clustering"),
                   ("enable_builtin_cast_constant_cache", "Constant CAST output cache"),
                   ("output_filepath", "File path to export outputs layer to"),
                   ("output_proto_filepath", "File path to export outputs layer as tf example to"),
                   ("tensor_name_display_length", "Tensor name display length"),
                   ("tensor_type_display_length", "Tensor type display length"),
                   ("alloc_type_display_length", "Tensor allocation type display length"))
ALWAYS_LOGGED = frozenset({"graph", "signature_to_run_for"})

PROVIDERS = _flags(  # tflite/tools/delegates/*_provider.cc, in registration order
    ("help", "bool", False, "Print out all supported flags if true."),
    ("num_threads", "int32", -1, "number of threads used for inference on CPU."),
    ("max_delegated_partitions", "int32", 0, "Max number of partitions to be delegated."),
    ("min_nodes_per_partition", "int32", 0, "The minimal number of TFLite graph nodes of a partition that has to be "
                                            "reached for it to be delegated.A negative value or 0 means to use the "
                                            "default choice of each delegate."),
    ("first_delegate_node_index", "int32", 0, "The index of the first node that could be delegated. Used only when "
                                              "TFLITE_DEBUG_DELEGATE is defined. Default is 0."),
    ("last_delegate_node_index", "int32", 2147483647, "The index of the last node that could be delegated. Used "
                                                      "only when TFLITE_DEBUG_DELEGATE is defined. Default is "
                                                      "INT_MAX."),
    ("gpu_invoke_loop_times", "int32", -1, "Number of GPU delegate invoke loop iterations. Used only when "
                                           "TFLITE_GPU_ENABLE_INVOKE_LOOP is defined. Default is 1."),
    ("delegate_serialize_dir", "string", "", "Directory to be used by delegates for serializing any model data. "
                                             "This allows the delegate to save data into this directory to reduce "
                                             "init time after the first run. Currently supported by NNAPI delegate "
                                             "with specific backends on Android. Note that delegate_serialize_token "
                                             "is also required to enable this feature."),
    ("delegate_serialize_token", "string", "", "Model-specific token acting as a namespace for delegate "
                                               "serialization. Unique tokens ensure that the delegate doesn't read "
                                               "inapplicable/invalid data. Note that delegate_serialize_dir is also "
                                               "required to enable this feature."),
    ("external_delegate_path", "string", "", "The library path for the underlying external."),
    ("external_delegate_options", "string", "", "A list of comma-separated options to be passed to the external "
                                                "delegate. Each option is a colon-separated key-value pair, e.g. "
                                                "option_name:option_value."),
    ("use_gpu", "bool", False, "use gpu"),
    ("gpu_precision_loss_allowed", "bool", True, "Allow to process computation in lower precision than FP32 in "
                                                 "GPU. By default, it's enabled."),
    ("gpu_experimental_enable_quant", "bool", True, "Whether to enable the GPU delegate to run quantized models or "
                                                    "not. By default, it's enabled."),
    ("gpu_inference_for_sustained_speed", "bool", False, "Whether to prefer maximizing the throughput. This mode "
                                                         "will help when the same delegate will be used repeatedly "
                                                         "on multiple inputs. This is supported on non-iOS "
                                                         "platforms. By default, it's disabled."),
    ("gpu_backend", "string", "", "Force the GPU delegate to use a particular backend for execution, and fail if "
                                  "unsuccessful. Should be one of: cl, gl"),
    ("use_hexagon", "bool", False, "Use Hexagon delegate"),
    ("hexagon_lib_path", "string", "/data/local/tmp", "The library path for the underlying Hexagon libraries. The "
                                                      "library path ONLY for the libhexagon_nn_skel*.so files. For "
                                                      "libhexagon_interface.so, it needs to be on a system library "
                                                      "search path such as LD_LIBRARY_PATH."),
    ("hexagon_profiling", "bool", False, "Enables Hexagon profiling"),
    ("use_nnapi", "bool", False, "use nnapi delegate api"),
    ("nnapi_execution_preference", "string", "", "execution preference for nnapi delegate. Should be one of the "
                                                 "following: fast_single_answer, sustained_speed, low_power, "
                                                 "undefined"),
    ("nnapi_execution_priority", "string", "", "The model execution priority in nnapi, and it should be one of the "
                                               "following: default, low, medium and high. This requires Android "
                                               "11+."),
    ("nnapi_accelerator_name", "string", "", "the name of the nnapi accelerator to use (requires Android Q+)"),
    ("disable_nnapi_cpu", "bool", True, "Disable the NNAPI CPU device"),
    ("nnapi_allow_fp16", "bool", False, "Allow fp32 computation to be run in fp16"),
    ("nnapi_allow_dynamic_dimensions", "bool", False, "Whether to allow dynamic dimension sizes without "
                                                      "re-compilation. This requires Android 9+."),
    ("nnapi_use_burst_mode", "bool", False, "use NNAPI Burst mode if supported. Burst mode allows accelerators to "
                                            "efficiently manage resources, which would significantly reduce "
                                            "overhead especially if the same delegate instance is to be used for "
                                            "multiple inferences."),
    ("nnapi_support_library_path", "string", "", "Path from which NNAPI support library will be loaded to construct "
                                                 "the delegate. In order to use NNAPI delegate with support library, "
                                                 "--nnapi_accelerator_name must be specified and must be equal to "
                                                 "one of the devices provided by the support library."),
    ("use_xnnpack", "bool", False, "explicitly apply the XNNPACK delegate. Note the XNNPACK delegate could be "
                                   "implicitly applied by the TF Lite runtime regardless the value of this "
                                   "parameter. To disable this implicit application, set the value to false "
                                   "explicitly."),
    ("xnnpack_force_fp16", "bool", False, "enforce float16 inference."),
    ("xnnpack_weight_cache_file_path", "string", "", "enable file-backed weight caching."),
    ("xnnpack_slinky", "bool", False, "enable the Slinky optimizer. (Ignored if --use_xnnpack is false, or if "
                                      "XNNPACK is built without Slinky.)"),
)
PROVIDER_LABELS = (("help", "print out all supported flags"), ("num_threads", "#threads used for CPU inference"),
                    ("max_delegated_partitions", "Max number of delegated partitions"),
                    ("min_nodes_per_partition", "Min nodes per partition"),
                    ("first_delegate_node_index", "Index of the first node that could be delegated"),
                    ("last_delegate_node_index", "Index of the last node that could be delegated"),
                    ("gpu_invoke_loop_times", "Number of GPU delegate invoke loop iterations"),
                    ("delegate_serialize_dir", "Directory for delegate serialization"),
                    ("delegate_serialize_token", "Model-specific token/key for delegate serialization."),
                    ("external_delegate_path", "External delegate path"),
                    ("external_delegate_options", "External delegate options"), ("use_gpu", "Use gpu"),
                    ("gpu_precision_loss_allowed", "Allow lower precision in gpu"),
                    ("gpu_experimental_enable_quant", "Enable running quant models in gpu"),
                    ("gpu_inference_for_sustained_speed", "Prefer maximizing the throughput in gpu"),
                    ("gpu_backend", "GPU backend"), ("use_hexagon", "Use Hexagon"),
                    ("hexagon_lib_path", "Hexagon lib path"), ("hexagon_profiling", "Hexagon profiling"),
                    ("use_nnapi", "Use NNAPI"), ("nnapi_execution_preference", "NNAPI execution preference"),
                    ("nnapi_execution_priority", "Model execution priority in nnapi"),
                    ("nnapi_accelerator_name", "NNAPI accelerator name"), ("disable_nnapi_cpu", "Disable NNAPI cpu"),
                    ("nnapi_allow_fp16", "Allow fp16 in NNAPI"),
                    ("nnapi_allow_dynamic_dimensions", "Allow dynamic dimensions in NNAPI"),
                    ("nnapi_use_burst_mode", "Use burst mode in NNAPI"), ("use_xnnpack", "Use xnnpack"),
                    ("xnnpack_force_fp16", "xnnpack_force_fp16"),
                    ("xnnpack_weight_cache_file_path", "xnnpack_weight_cache_file_path"),
                    ("xnnpack_slinky", "Use Slinky"))
NNAPI_DETAILS = frozenset(name for name, _ in PROVIDER_LABELS if name.startswith(("nnapi_", "disable_nnapi")))

LITERT2_OWN = _flags(  # litert/tools/benchmark_litert_model.h (v2.2.0), BenchmarkLiteRtModel::GetFlags
    ("graph", "string", "", "The path to the model file."),
    ("signature_to_run_for", "string", "", "The signature to run for."),
    ("use_cpu", "bool", True, "Whether to use CPU accelerator."),
    ("use_gpu", "bool", False, "Whether to use GPU accelerator."),
    ("use_npu", "bool", False, "Whether to use NPU accelerator."),
    ("dispatch_library_path", "string", "", "Dispatch library path."),
    ("compiler_plugin_library_path", "string", "", "Compiler plugin library path. Only for JIT compilation."),
    ("compiler_cache_path", "string", "", "Compiler plugin cache path, used to store JIT-compiled models."),
    ("require_full_delegation", "bool", False, "Whether to require full delegation."),
    ("use_profiler", "bool", False, "Whether to use profiler."),
    ("enable_perfetto", "bool", False, "Whether to enable perfetto tracing."),
    ("gpu_backend", "string", "", "GPU backend to use when using GPU accelerator."),
    ("gpu-precision", "string", "auto", "GPU precision option [auto|fp16|fp32]."),
    ("gpu_low_priority", "bool", False, "Whether to use low priority for GPU accelerator."),
    ("result_file_path", "string", "", "Path to save the benchmark result in binary proto format."),
    ("model_runtime_info_output_file", "string", "", "Path to save the model runtime info in binary proto format."),
    ("mediatek_nerun_pilot_version", "string", "version8", "Which version of the MediaTek NPU SDK to use."),
    ("input_layer_value_range", "string", "", "A map-like string representing value range for *integer* and "
                                              "*float* input layers. Each item is separated by ':', and the item "
                                              "value consists of input layer name and range values (both low and "
                                              "high are inclusive) separated by ',', e.g. "
                                              "input1,1.0,2.0:input2,0,254"),
    ("enable_weight_sharing", "bool", False, "Whether to enable weight (constant tensor) sharing."),
    ("convert_weights_on_gpu", "bool", False, "Whether to convert weights on the GPU."),
    ("xnnpack_weight_cache_file_path", "string", "", "Path to an XNNPACK packed-weight cache file. Use ':memory' "
                                                     "for an in-memory cache on supported builds."),
)
LITERT_VENDOR_PREFIXES = ("qualcomm_", "mediatek_", "google_tensor_", "intel_openvino_", "samsung_")

TF1_FLAGS = _flags(  # tensorflow/contrib/lite/tools/benchmark (TF Lite 1.12)
    ("num_runs", "int32", 50, "number of runs"),
    ("run_delay", "float", -1.0, "delay between runs in seconds"),
    ("num_threads", "int32", 1, "number of threads"),
    ("benchmark_name", "string", "", "benchmark name"),
    ("output_prefix", "string", "", "benchmark output prefix"),
    ("warmup_runs", "int32", 1, "how many runs to initialize model"),
    ("graph", "string", "", "graph file name"),
    ("input_layer", "string", "", "input layer names"),
    ("input_layer_shape", "string", "", "input layer shape"),
    ("use_nnapi", "bool", False, "use nnapi api"),
)
TF1_LABELS = (("num_runs", "Num runs"), ("run_delay", "Inter-run delay (seconds)"), ("num_threads", "Num threads"),
               ("benchmark_name", "Benchmark name"), ("output_prefix", "Output prefix"),
               ("warmup_runs", "Warmup runs"), ("graph", "Graph"), ("input_layer", "Input layers"),
               ("input_layer_shape", "Input shapes"), ("use_nnapi", "Use nnapi "))

_INT = re.compile(r"\s*([+-]?\d+)")
_FLOAT = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")


def _read_value(kind: str, text: str) -> FlagValue | None:
    """A flag value as `stream >> value` reads it (the tools' ParseFlag): the longest numeric prefix; an empty
    text reads as 0 (the stream hits its end); None when the value does not parse."""
    if kind == "string":
        return text
    if kind == "bool":
        return {"true": True, "1": True, "false": False, "0": False}.get(text)
    if not text.strip():
        return 0 if kind == "int32" else 0.0
    m = (_INT if kind == "int32" else _FLOAT).match(text)
    if m is None:
        return None
    if kind == "int32":
        return min(max(int(m.group(1)), -2**31), 2**31 - 1)
    return float(np.float32(m.group(1)))


@dataclass
class Parsed:
    """The outcome of parsing argv against a flag list."""

    values: dict[str, FlagValue]
    given: set[str] = field(default_factory=set)
    unknown: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)   # "Failed to parse flag ..." lines (modern tools)
    ok: bool = True

    def __getitem__(self, name: str) -> FlagValue:
        return self.values[name]

    @property
    def help(self) -> bool:
        return bool(self.unknown and self.unknown[0] == "--help") or bool(self.values.get("help"))


def parse_modern(flags: Sequence[Flag], argv: Sequence[str]) -> Parsed:
    """tflite/tools/command_line_flags.cc: each flag takes the first unused argument starting `--name=`."""
    parsed = Parsed({f.name: f.default for f in flags})
    used = [False] * len(argv)
    seen: set[str] = set()
    for flag in flags:
        if flag.name in seen:  # a flag listed twice (num_threads) reads the same argument again
            continue
        seen.add(flag.name)
        prefix = f"--{flag.name}="
        for i, arg in enumerate(argv):
            if used[i] or not arg.startswith(prefix):
                continue
            value = _read_value(flag.kind, arg[len(prefix):])
            if value is None:
                parsed.errors.append(f"Failed to parse flag '{flag.name}' against argv '{arg}'")
                parsed.ok = False
            else:
                parsed.values[flag.name] = value
                parsed.given.add(flag.name)
            used[i] = True
            break
    parsed.unknown = [arg for i, arg in enumerate(argv) if not used[i]]
    return parsed


def parse_tf1(flags: Sequence[Flag], argv: Sequence[str]) -> Parsed:
    """TF Lite 1.12's Flags::Parse: each argument goes to the first flag it names; bad values fail silently."""
    parsed = Parsed({f.name: f.default for f in flags})
    for i, arg in enumerate(argv):
        if arg == "--":
            parsed.unknown.extend(argv[i:])
            break
        flag = next((f for f in flags if arg.startswith(f"--{f.name}=")), None)
        if flag is None:
            parsed.unknown.append(arg)
            continue
        value = _read_value(flag.kind, arg[len(flag.name) + 3:])
        if value is None:
            parsed.ok = False
        else:
            parsed.values[flag.name] = value
            parsed.given.add(flag.name)
    return parsed


def graph_argument(args: Sequence[str]) -> int | None:
    """Index of the argument the tools read --graph from (the first `--graph=...`), or None."""
    return next((i for i, arg in enumerate(args) if arg.startswith("--graph=")), None)


def shown(value: FlagValue) -> str:
    """A parameter value as the tools log it (C++ ostream: bools as 1/0, floats with 6 significant digits)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return cpp_double(value)
    return str(value)


def _default_shown(flag: Flag) -> str:
    if isinstance(flag.default, bool):
        return "true" if flag.default else "false"
    return shown(flag.default)


def usage_modern(argv0: str, flags: Sequence[Flag]) -> str:
    """Flags::Usage of the 2.x tools: names padded to the widest, then type, 'optional' and the usage text."""
    names = [f"--{f.name}={_default_shown(f)}" for f in flags]
    width = max(map(len, names))
    rows = "".join(f"\t{name.ljust(width)}\t{f.kind}\toptional\t{f.usage}\n"
                   for name, f in zip(names, flags, strict=True))
    return f"usage: {argv0} <flags>\nFlags:\n{rows}"


def usage_tf1(argv0: str, flags: Sequence[Flag]) -> str:
    rows = "".join(f"\t--{f.name}={_default_shown(f)}\t{f.kind}\t{f.usage}\n" for f in flags)
    return f"usage: {argv0}\nFlags:\n{rows}"


def cpp_double(x: float) -> str:
    """A double as C++ streams print it by default."""
    return f"{x:g}"
