"""Checking that a file is a TFLite model before anything parses, pushes or runs it.

A .tflite file is a flatbuffer whose file identifier (bytes 4..8) is ``TFL3``. Past that cheap check, LiteRT's
own flatbuffer verifier (run by building an interpreter, without allocating or running it) rejects truncated
or corrupt files; models with ops this host cannot run still pass, as a phone may run them.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import shorten
from .errors import ModelFileError
from .quiet import native_output_captured

TFLITE_IDENTIFIER = b"TFL3"


class ModelFileCheckError(ModelFileError):
    """Not a usable .tflite file; the message names the file and what is wrong."""


def check_tflite(path: str | Path) -> bytes:
    """The bytes of the .tflite model at `path`, or ModelFileCheckError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileCheckError(f"{path}: no such model file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFileCheckError(f"{path}: cannot read ({e.strerror or e.__class__.__name__})") from None
    if len(data) < 8:
        raise ModelFileCheckError(f"{path}: not a readable .tflite model "
                                  f"({'empty file' if not data else f'only {len(data)} bytes'})")
    if data[4:8] != TFLITE_IDENTIFIER:
        raise ModelFileCheckError(f"{path}: not a readable .tflite model (file identifier {shorten(data[4:8])} "
                                  f"at bytes 4-8, expected {TFLITE_IDENTIFIER!r})")
    _verify(path, data)
    return data


def _verify(path: Path, data: bytes) -> None:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        with native_output_captured():
            Interpreter(model_content=data,
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except (ValueError, RuntimeError) as e:
        reason = " ".join(str(e).split())[:120] or e.__class__.__name__
        raise ModelFileCheckError(f"{path}: not a readable .tflite model (LiteRT: {reason})") from None
