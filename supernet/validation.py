"""Check an `Arch` against a `SearchSpace`, reporting every violation with its field, value and allowed choices."""

from __future__ import annotations

from collections.abc import Sequence

from .arch import Arch, ArchError, Violation
from .space import SearchSpace


def validate(arch: Arch, space: SearchSpace) -> list[Violation]:
    """Return all violations (empty when the arch belongs to the space)."""
    errors: list[Violation] = []
    _choice(errors, "resolution", arch.resolution, space.resolutions)
    _choice(errors, "first_conv", arch.first_conv, space.first_conv_widths)
    if arch.stem.width != arch.first_conv:
        errors.append(Violation("stem.width", arch.stem.width,
                                f"must equal first_conv ({arch.first_conv}): the stem MBv2 keeps the first-conv width"))
    _choice(errors, "stem.depth", arch.stem.depth, space.stem.depths)
    _choice(errors, "stem.kernel", arch.stem.kernel, space.stem.kernels)
    if len(arch.stages) != len(space.stages):
        errors.append(Violation("stages", len(arch.stages),
                                f"stages given; space {space.name!r} has {len(space.stages)} "
                                f"({', '.join(space.stage_names)})"))
        return errors
    prev_width, prev_label = arch.stem.width, "stem"
    for i, (cfg, sp) in enumerate(zip(arch.stages, space.stages, strict=True)):
        label = f"stages[{i}] ({sp.name})"
        if cfg.is_transformer != sp.is_transformer:
            want = "a transformer stage (width, depth, mlp_ratio, v_scale)" if sp.is_transformer else \
                "a CNN stage (width, depth, kernel, expansion)"
            errors.append(Violation(label, cfg.__class__.__name__, f"must be {want}"))
            continue
        _choice(errors, f"{label}.width", cfg.width, sp.widths)
        _choice(errors, f"{label}.depth", cfg.depth, sp.depths)
        names = ("mlp_ratio", "v_scale") if sp.is_transformer else ("kernel", "expansion")
        for name, value, choices in zip(names, cfg.micro, sp.micro_choices(), strict=True):
            _choice(errors, f"{label}.{name}", value, choices)
        if cfg.width < prev_width:
            errors.append(Violation(f"{label}.width", cfg.width,
                                    f"is smaller than {prev_label}'s width {prev_width} (widths must not decrease)"))
        prev_width, prev_label = cfg.width, sp.name
    return errors


def check_arch(arch: Arch, space: SearchSpace) -> Arch:
    """Return the arch unchanged, or raise `ArchError` listing every violation."""
    errors = validate(arch, space)
    if errors:
        raise ArchError(errors)
    return arch


def _choice(errors: list[Violation], field: str, value: int, choices: Sequence[int]) -> None:
    if value not in choices:
        errors.append(Violation(field, value, f"is not one of {list(choices)}"))
