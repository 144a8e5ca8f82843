"""An arch as a sequence of latency blocks, with their shape features and nn-Meter table keys.

Blocks (one family each): the first conv, every MobileNet block (stem MBv2, C0 MBv2, C1 MBv3 + SE), every
transformer stage's downsampling MBv3 block, every attention and every FFN, and the MBPool head. A model's latency
is predicted as the sum of its blocks' latencies.

Two conventions give the blocks' spatial sides and widths:
- ``nnmeter``: how the nn-Meter hybrid tables were built (their README): floor division of sides
  (``res // 2`` after the first conv, ``side // stride`` per stage) and the stem's input width written as 16;
- ``graph``: the true graph of our exported models: convolutions with padding k//2 give ``ceil(side / stride)``,
  and the stem's input width is the first conv's width.
In both, a stage's first layer runs at the stage's input side with its input width and stride; later layers run
at the output side with the stage width and stride 1; attention and FFN run at the stage's output side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from supernet.arch import Arch
from supernet.geometry import feature_sides
from supernet.space import SearchSpace

Convention = Literal["nnmeter", "graph"]
CONVENTIONS: tuple[Convention, ...] = ("nnmeter", "graph")
FAMILIES = ("firstconv", "conv", "transds", "transattn", "transffn", "mbpool")
NNMETER_STEM_INPUT_WIDTH = 16
NNMETER_NUM_CLASSES = 1000  # the tables' heads are ImageNet heads; the class count is not in their keys


@dataclass(frozen=True)
class Block:
    """One block at fixed shapes. `hw`/`out_hw` are input/output sides (token-grid sides for attention and FFN).

    Unused fields are 0: `expansion`/`kernel`/`se` belong to conv-like blocks, `mlp_ratio` to FFNs and `v_scale`
    to attention; `classes`/`head_width` to the head."""

    family: str
    hw: int
    out_hw: int
    cin: int
    cout: int
    stride: int = 1
    expansion: int = 0
    kernel: int = 0
    se: bool = False
    mlp_ratio: int = 0
    v_scale: int = 0
    head_width: int = 0
    classes: int = 0

    def to_dict(self) -> dict[str, int | bool | str]:
        return asdict(self)

    @property
    def table_key(self) -> str:
        """The block's key in an nn-Meter hybrid table (meaningful for blocks of the ``nnmeter`` convention)."""
        f = self.family
        if f == "firstconv":
            return f"firstconv_{self.hw}_{self.cin}_{self.cout}_{self.stride}_{self.kernel}"
        if f == "conv":
            return (f"conv_{self.hw}_{self.cin}_{self.cout}_{self.expansion}_{self.stride}_hard_swish_{self.kernel}_"
                    f"{'se' if self.se else 'nose'}")
        if f == "transds":
            return f"transds_{self.hw}_{self.cin}_{self.cout}_{self.stride}_{self.expansion}"
        if f == "transattn":
            return f"transattn_{self.hw}_{self.cout}_hard_swish_{self.v_scale}_ln"
        if f == "transffn":
            return f"transffn_{self.hw}_{self.cout}_{self.mlp_ratio}_hard_swish_ln"
        return f"mbpool_{self.hw}_{self.cin}_{self.head_width}_{self.expansion}_hard_swish"


def _down(side: int, stride: int, convention: Convention) -> int:
    return side // stride if convention == "nnmeter" else -(-side // stride)


def first_conv_block(space: SearchSpace, res: int, width: int, convention: Convention) -> Block:
    return Block("firstconv", res, _down(res, space.first_conv_stride, convention), space.in_channels, width,
                 space.first_conv_stride, kernel=3)


def stem_blocks(space: SearchSpace, res: int, width: int, depth: int, kernel: int,
                convention: Convention) -> list[Block]:
    """The stride-1, expansion-1 MBv2 stem layers."""
    side = _down(res, space.first_conv_stride, convention)
    cin = NNMETER_STEM_INPUT_WIDTH if convention == "nnmeter" else width
    return [Block("conv", side, side, cin if i == 0 else width, width, 1, 1, kernel) for i in range(depth)]


def cnn_stage_blocks(space: SearchSpace, index: int, side_in: int, cin: int, width: int, depth: int, kernel: int,
                     expansion: int, convention: Convention) -> list[Block]:
    sp = space.stages[index]
    out = _down(side_in, sp.stride, convention)
    se = not sp.is_transformer and sp.se  # type: ignore[union-attr]
    first = Block("conv", side_in, out, cin, width, sp.stride, expansion, kernel, se)
    rest = Block("conv", out, out, width, width, 1, expansion, kernel, se)
    return [first] + [rest] * (depth - 1)


def transformer_stage_blocks(space: SearchSpace, index: int, side_in: int, cin: int, width: int, depth: int,
                             mlp_ratio: int, v_scale: int, convention: Convention) -> list[Block]:
    sp = space.stages[index]
    out = _down(side_in, sp.stride, convention)
    ds = Block("transds", side_in, out, cin, width, sp.stride, space.downsampler_expansion, 3, True)
    attn = Block("transattn", out, out, width, width, v_scale=v_scale)
    ffn = Block("transffn", out, out, width, width, mlp_ratio=mlp_ratio)
    return [ds] + [attn, ffn] * depth


def head_block(space: SearchSpace, side: int, width: int, convention: Convention) -> Block:
    classes = NNMETER_NUM_CLASSES if convention == "nnmeter" else space.num_classes
    return Block("mbpool", side, 1, width, classes, expansion=space.head_expansion, head_width=space.head_width,
                 classes=classes)


def stage_input_sides(space: SearchSpace, res: int, convention: Convention) -> list[int]:
    """The input side of every stage (the first conv's output side for the first stage), then the last output."""
    return feature_sides(space, res, convention)


def decompose(arch: Arch, space: SearchSpace, convention: Convention = "nnmeter") -> list[tuple[str, Block]]:
    """The blocks of `arch` in execution order, each with the part it belongs to (first_conv, stem, C0, ..., head)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown block convention {convention!r} (known: {', '.join(CONVENTIONS)})")
    res = arch.resolution
    out: list[tuple[str, Block]] = [("first_conv", first_conv_block(space, res, arch.first_conv, convention))]
    out += [("stem", b) for b in stem_blocks(space, res, arch.first_conv, arch.stem.depth, arch.stem.kernel,
                                             convention)]
    sides = stage_input_sides(space, res, convention)
    cin = arch.first_conv
    for i, (sp, cfg) in enumerate(zip(space.stages, arch.stages, strict=True)):
        a, b = cfg.micro
        if sp.is_transformer:
            blocks = transformer_stage_blocks(space, i, sides[i], cin, cfg.width, cfg.depth, a, b, convention)
        else:
            blocks = cnn_stage_blocks(space, i, sides[i], cin, cfg.width, cfg.depth, a, b, convention)
        out += [(sp.name, blk) for blk in blocks]
        cin = cfg.width
    out.append(("head", head_block(space, sides[-1], cin, convention)))
    return out
