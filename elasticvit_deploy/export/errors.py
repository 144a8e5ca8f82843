"""The export's errors: a bad request or model file is the user's input (`BadInput`, exit 2); a conversion or a
verification that fails is the work failing (`OperationFailed`, exit 1)."""

from __future__ import annotations

from supernet.errors import BadInput, OperationFailed

__all__ = ["ExportError", "ExportRequestError", "ModelFileError"]


class ExportError(OperationFailed):
    """The conversion failed or an exported model did not pass verification; nothing was written."""


class ExportRequestError(BadInput):
    """A request that cannot be exported (a bad name, input shape, format or quantization), refused before any
    work is done."""


class ModelFileError(BadInput):
    """Not a readable model file of a known format."""
