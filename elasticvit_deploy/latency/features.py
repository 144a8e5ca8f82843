"""Shape features of a block for the learned regressors: its configuration plus FLOPs, parameters and bytes moved.

FLOPs here are the block's own multiply-accumulates at its true shapes (not the official counter's bookkeeping,
which serves training levels and search constraints); bytes moved are fp32 activations read and written by the
block's main ops plus its weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .blocks import Block

HEAD_DIM = 16
BYTES = 4

# per family: the configuration fields that vary in it (the rest are constant or 0)
CONFIG_FIELDS: dict[str, tuple[str, ...]] = {
    "firstconv": ("hw", "cout"),
    "conv": ("hw", "out_hw", "cin", "cout", "stride", "expansion", "kernel", "se"),
    "transds": ("hw", "out_hw", "cin", "cout", "stride"),
    "transattn": ("hw", "cout", "v_scale"),
    "transffn": ("hw", "cout", "mlp_ratio"),
    "mbpool": ("hw", "cin"),
}
DERIVED = ("mflops", "kparams", "kbytes")


def _mobile(b: Block) -> tuple[int, int, int]:
    """MACs, parameters and activation elements of a MobileNet-style block (pw, dw, SE, pwl, shortcut)."""
    inner = b.cin * b.expansion
    n_in, n_out = b.hw * b.hw, b.out_hw * b.out_hw
    macs = params = 0
    acts = b.cin * n_in + b.cout * n_out
    if b.expansion > 1:
        macs += b.cin * inner * n_in
        params += b.cin * inner
        acts += inner * n_in
    macs += inner * b.kernel * b.kernel * n_out
    params += inner * b.kernel * b.kernel
    acts += inner * n_out
    if b.se:
        macs += 2 * inner * (inner // 4)
        params += 2 * inner * (inner // 4)
    macs += inner * b.cout * n_out
    params += inner * b.cout
    if b.cin != b.cout:
        macs += b.cin * b.cout * n_out
        params += b.cin * b.cout
    return macs, params, acts


def block_cost(b: Block) -> tuple[int, int, int]:
    """(MACs, parameters, bytes moved) of one block."""
    n = b.hw * b.hw
    c = b.cout
    if b.family == "firstconv":
        n_out = b.out_hw * b.out_hw
        macs = params = b.cin * c * b.kernel * b.kernel
        macs *= n_out
        acts = b.cin * n + c * n_out
    elif b.family in ("conv", "transds"):
        macs, params, acts = _mobile(b)
    elif b.family == "transattn":
        v = b.v_scale * c
        macs = n * c * (2 * c + v) + n * n * (c + v) + 9 * v * n + n * v * c
        params = c * (2 * c + v) + 9 * v + v * c + c
        acts = 2 * n * c + n * (2 * c + v) + (c // HEAD_DIM) * n * n + n * v
    elif b.family == "transffn":
        inner = b.mlp_ratio * c
        macs = 2 * n * c * inner
        params = 2 * c * inner + inner + c
        acts = 2 * n * c + n * inner
    elif b.family == "mbpool":
        e = b.cin * b.expansion
        macs = n * b.cin * e + e * b.head_width + b.head_width * b.classes
        params = b.cin * e + e * b.head_width + b.head_width * b.classes
        acts = n * b.cin + n * e
    else:
        raise ValueError(f"unknown block family {b.family!r}")
    return macs, params, (acts + params) * BYTES


def feature_names(family: str) -> tuple[str, ...]:
    return CONFIG_FIELDS[family] + DERIVED


def feature_matrix(blocks: Sequence[Block], family: str) -> np.ndarray:
    """(len(blocks), n_features) float matrix of blocks of one family, columns as `feature_names(family)`."""
    fields = CONFIG_FIELDS[family]
    rows = []
    for b in blocks:
        if b.family != family:
            raise ValueError(f"block of family {b.family!r} in a {family!r} feature matrix")
        macs, params, nbytes = block_cost(b)
        rows.append([float(getattr(b, f)) for f in fields] + [macs / 1e6, params / 1e3, nbytes / 1e3])
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(fields) + len(DERIVED))
