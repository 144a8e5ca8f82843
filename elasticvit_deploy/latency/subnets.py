"""Whole subnets measured for model-level fits (transfer and calibration): which to measure (`covering_subnets`),
a predictor's per-family block sums over them (`family_sums`, the features of those fits), and the append-only
log of the measured ones (`SubnetLog`, a build's resume point)."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from supernet import encoding as enc
from supernet.arch import Arch, ArchError, parse_arch
from supernet.sampling import max_arch, min_arch, sample_uniform
from supernet.space import SearchSpace
from supernet.validation import check_arch

from ..errors import BadInput
from ..jsontext import JSONTextError, load_json_text
from .blocks import FAMILIES, decompose
from .measurements import MeasurementsError
from .measurer import SubnetMeasurement
from .model import ArchLatencyModel, BlockPredictor

__all__ = ["POOL_SIZE", "SubnetLog", "covering_subnets", "family_sums"]

POOL_SIZE = 4000
_POOL_STREAM = 0xC0E5  # the pool's random stream is (this, seed): apart from every integer-seeded sample


def covering_subnets(space: SearchSpace, bases: Sequence[ArchLatencyModel], n: int, seed: int = 0, *,
                     exclude: Collection[Arch] = ()) -> list[Arch]:
    """`n` distinct subnets covering the latency range: from a seeded uniform pool (`POOL_SIZE` subnets plus the
    smallest and largest, less `exclude`), those nearest to evenly spaced quantiles of the log of the bases'
    geometric-mean latency (so the fastest and the slowest of the pool are among them)."""
    if not bases:
        raise BadInput("covering subnets need at least one base predictor")
    rows = np.concatenate([enc.encode_many([min_arch(space), max_arch(space)]),
                           sample_uniform(space, POOL_SIZE, seed=np.random.default_rng((_POOL_STREAM, seed)))])
    _, first = np.unique(rows, axis=0, return_index=True)
    rows = rows[np.sort(first)]
    if exclude:
        banned = {tuple(enc.encode(a)) for a in exclude}
        rows = rows[[tuple(r) not in banned for r in rows]]
    if not 1 <= n <= len(rows):
        raise BadInput(f"{n} covering subnets: choose between 1 and {len(rows)}")
    log_mean = np.mean([np.log(b.predict_batch(rows)) for b in bases], axis=0)
    targets = np.quantile(log_mean, [0.5] if n == 1 else np.linspace(0, 1, n))
    taken: list[int] = []
    for t in targets:
        order = np.argsort(np.abs(log_mean - t), kind="stable")
        taken.append(int(next(i for i in order if i not in taken)))
    return enc.decode_many(rows[taken], space)


def family_sums(predictor: BlockPredictor, space: SearchSpace, archs: Sequence[Arch]) -> np.ndarray:
    """(subnets x families) ms: the sum of `predictor`'s blocks of each family (order of `FAMILIES`) in each
    subnet, in the predictor's convention; NaN where it has no latency for some block of that family."""
    parts = [[b for _, b in decompose(a, space, predictor.convention)] for a in archs]
    unique = list(dict.fromkeys(b for blocks in parts for b in blocks))
    ms = dict(zip(unique, predictor.predict_blocks(unique), strict=True)) if unique else {}
    column = {f: i for i, f in enumerate(FAMILIES)}
    out = np.zeros((len(archs), len(FAMILIES)))
    for row, blocks in enumerate(parts):
        for b in blocks:
            out[row, column[b.family]] += ms[b]
    return out


class SubnetLog:
    """``models.jsonl``: whole subnets measured by a build, one ``{"arch", "ms", "cv"}`` a line (what
    `predictor eval --models` reads), appended and flushed as each completes, so a rerun measures only the rest.
    A torn last line (a kill while writing) is dropped; any other bad line is refused."""

    def __init__(self, path: Path, space: SearchSpace):
        self.path = path
        self.space = space
        self.rows: dict[Arch, SubnetMeasurement] = {}
        if path.is_file():
            self._read()

    def _read(self) -> None:
        lines = self.path.read_text(encoding="utf-8").split("\n")
        torn = lines.pop()  # "" when the file ends with a newline, else a last line written in part, at most
        for n, line in enumerate(lines, 1):
            if line.strip():
                row = self._parse(line, n)
                self.rows[row.arch] = row
        if torn.strip():
            try:
                row = self._parse(torn, len(lines) + 1)
            except MeasurementsError:
                return
            self.rows[row.arch] = row

    def _repair(self) -> None:
        """End the file on a newline before appending: drop a torn last line, or end a whole one."""
        data = self.path.read_bytes() if self.path.is_file() else b""
        if not data or data.endswith(b"\n"):
            return
        head, _, last = data.rpartition(b"\n")
        try:
            self._parse(last.decode("utf-8", "replace"), data.count(b"\n") + 1)
        except MeasurementsError:
            self.path.write_bytes(head + b"\n" if head else b"")
            return
        with open(self.path, "ab") as f:
            f.write(b"\n")

    def _parse(self, line: str, n: int) -> SubnetMeasurement:
        where = f"{self.path}:{n}"
        try:
            obj = load_json_text(line, where)
        except JSONTextError as e:
            raise MeasurementsError(str(e)) from None
        ms = obj.get("ms") if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or not isinstance(ms, (int, float)) or isinstance(ms, bool) \
                or not (math.isfinite(ms) and ms > 0):
            raise MeasurementsError(f"{where}: expected {{\"arch\": ..., \"ms\": ..., \"cv\": ...}}")
        try:
            arch = check_arch(parse_arch(obj.get("arch"), self.space), self.space)
        except ArchError as e:
            raise MeasurementsError(f"{where}: not a subnet of space {self.space.name} ({e})") from None
        cv = obj.get("cv")
        return SubnetMeasurement(arch, float(ms), float(cv) if isinstance(cv, (int, float)) else None)

    def __contains__(self, arch: Arch) -> bool:
        return arch in self.rows

    def add(self, row: SubnetMeasurement) -> SubnetMeasurement:
        """Append `row` (its ms rounded as written, so a resumed build fits on exactly the same numbers)."""
        row = SubnetMeasurement(row.arch, round(float(row.ms), 6), row.cv)
        self._repair()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row.to_dict(), separators=(",", ":")) + "\n")
            f.flush()
        self.rows[row.arch] = row
        return row
