"""Subnet evaluation sharded over the processes of a `torchrun` job (one process per GPU, or CPU processes on gloo).

Rank 0 drives: the archs go out in rounds of `world_size`, one per rank, each rank evaluates its arch with its own
`SubnetEvaluator` (the same checkpoint, data and calibration set on every rank), and the results come back to rank 0
in the order of the archs. Each arch's evaluation is independent of the ones before it (BN recalibration resets every
BatchNorm first), so the results are exactly those of one process evaluating them all. Ranks > 0 `serve` until rank 0
`close`s.

Messages are plain data: canonical arch dicts (`Arch.to_dict`) out, `EvalResult` fields back. They travel by
torch's object collectives (`broadcast_object_list`, `gather_object`), which pickle them between the processes of
this one job, all started together by torchrun from this code; no file and no other party is unpickled. They go
over a gloo group of their own (CPU, whatever the backend of the job), whose timeout is `IDLE_TIMEOUT`: between
rounds rank 0 may work for long (a search measuring on phones) while the others wait, longer than an NCCL
collective may stay pending.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import torch.distributed as tdist

from ..arch import Arch, parse_arch
from ..errors import OperationFailed
from ..space import SearchSpace
from .distributed import DistContext, DistributedError
from .evaluate import EvalResult, SubnetEvaluator

_STOP = "stop"
_EVALUATE = "evaluate"
IDLE_TIMEOUT = timedelta(days=7)  # how long the serving ranks wait for rank 0's next round


class ShardedEvaluationError(OperationFailed):
    """A rank could not evaluate its arch (its error is in the message)."""


class ShardedEvaluator:
    """SubnetEvaluator over the processes of a torchrun job: archs split over ranks, results gathered on rank 0."""

    def __init__(self, evaluator: SubnetEvaluator, dist: DistContext):
        """Every rank constructs one (collectively): the ranks check that they evaluate the same weights and data.
        Raises `DistributedError` on every rank when they do not."""
        self.evaluator, self.dist = evaluator, dist
        self._closed = False
        self._group: Any = None
        if dist.distributed:
            self._group = tdist.new_group(backend="gloo", timeout=IDLE_TIMEOUT)
            sources: list[Any] = [None] * dist.world_size
            tdist.all_gather_object(sources, evaluator.source(), group=self._group)
            if len(set(sources)) > 1:
                raise DistributedError(f"the ranks evaluate different weights or data: {sorted(set(sources))}")

    @property
    def space(self) -> SearchSpace:
        return self.evaluator.space

    def source(self) -> str:
        """What the accuracies depend on (the same on every rank)."""
        return self.evaluator.source()

    def evaluate_many(self, archs: Sequence[Arch],
                      progress: Callable[[EvalResult], None] | None = None) -> list[EvalResult]:
        """Rank 0: the result of each arch, in the order of `archs`, identical to one process's; `progress` is called
        for each result as its round comes back. Raises `ShardedEvaluationError` when a rank failed (after the
        round, so the others are not left waiting)."""
        if not self.dist.is_main:
            raise RuntimeError("evaluate_many runs on rank 0; the other ranks serve()")
        if not self.dist.distributed:
            return self.evaluator.evaluate_many(archs, progress)
        if self._closed:
            raise RuntimeError("this ShardedEvaluator is closed")
        world, results = self.dist.world_size, []
        for start in range(0, len(archs), world):
            batch = list(archs[start:start + world])
            sent: list[dict[str, Any] | None] = [a.to_dict() for a in batch] + [None] * (world - len(batch))
            message = [{"op": _EVALUATE, "archs": sent}]
            tdist.broadcast_object_list(message, src=0, group=self._group)
            own_error: Exception | None = None
            try:
                mine = self._evaluate(sent[0])
            except Exception as e:  # re-raised after the round: the other ranks must not wait for rank 0 forever
                own_error, mine = e, None
            replies: list[Any] = [None] * world
            tdist.gather_object(mine, replies, dst=0, group=self._group)
            if own_error is not None:
                raise own_error
            for rank, (arch, reply) in enumerate(zip(batch, replies, strict=False)):
                results.append(_result(arch, reply, rank))
                if progress is not None:
                    progress(results[-1])
        return results

    def serve(self) -> None:
        """Ranks > 0: evaluate the arch rank 0 sends each round until rank 0 closes. An arch this rank cannot
        evaluate is reported to rank 0 (which raises), and serving goes on until the stop message."""
        if self.dist.is_main:
            raise RuntimeError("serve runs on ranks > 0; rank 0 calls evaluate_many")
        if not self.dist.distributed:
            return
        while True:
            message: list[Any] = [None]
            tdist.broadcast_object_list(message, src=0, group=self._group)
            if message[0]["op"] == _STOP:
                return
            try:
                reply = self._evaluate(message[0]["archs"][self.dist.rank])
            except Exception as e:  # sent to rank 0, which raises it as this rank's failure
                reply = {"error": f"{type(e).__name__}: {e}"}
            tdist.gather_object(reply, None, dst=0, group=self._group)

    def close(self) -> None:
        """Rank 0: release the serving ranks (idempotent; a no-op on the other ranks and in one process)."""
        if self.dist.is_main and self.dist.distributed and not self._closed:
            self._closed = True
            tdist.broadcast_object_list([{"op": _STOP}], src=0, group=self._group)

    def _evaluate(self, arch: dict[str, Any] | None) -> dict[str, Any] | None:
        if arch is None:  # the last round has fewer archs than ranks
            return None
        result = self.evaluator.evaluate(parse_arch(arch, self.space))
        return {"arch": result.arch.to_dict(), "mflops": result.mflops, "correct": result.correct,
                "total": result.total}


def _result(arch: Arch, reply: Any, rank: int) -> EvalResult:
    if isinstance(reply, dict) and "error" in reply:
        raise ShardedEvaluationError(f"rank {rank} could not evaluate {arch.to_json()}: {reply['error']}")
    if not isinstance(reply, dict) or reply.get("arch") != arch.to_dict():
        raise ShardedEvaluationError(f"rank {rank} answered for another arch than {arch.to_json()}")
    return EvalResult(arch, float(reply["mflops"]), int(reply["correct"]), int(reply["total"]))
