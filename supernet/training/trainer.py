"""The supernet training loop (the paper's recipe): one `Trainer`, driven step by step or to the end by `fit`.

A step (as the official `process.py` runs one):

1. at the first batch of an epoch, the sampler re-scores its memory banks on that batch (`rescore_banks`; official
   `bank_loss_update`); at the quarter-epoch steps the step's level bank is re-scored too when the step explores;
2. the sampler plans the step's subnets (`sample(step, epoch)`, identical on every rank);
3. each subnet runs forward and backward on the batch, gradients accumulating: max and uniform subnets learn from the
   teachers' T = 0.2 ensemble (`distillation_loss`), or, with no teacher, from the labels (label-smoothed CE); min
   subnets learn with the alpha-divergence towards the mean softmax of the step's uniform subnets (or the max
   subnet's softmax when the step has one, as in sandwich training);
4. the ranks average gradients, BN statistics and scalars (`DistContext.average_`); then AGC(0.1), one AdamW step,
   one scheduler step, one EMA update;
5. the clean-batch CE of the explored subnets (`plan.feedback`) goes back to the sampler (`observe`); after an
   epoch's last step, `end_epoch`.

The learning rate follows timm's warm-up + cosine schedule stepped every step (warmup_epochs and epochs converted to
steps; the official code steps per epoch, which is the same curve sampled coarsely), after linear scaling by
world_size x batch_size / 512. No randomness enters a step besides the data order (DistributedSampler, seed + epoch),
the sampler (seeded by step) and the augmentation (crops seeded by seed, epoch and image; the batched rest by seed,
step and rank), so a run resumed from a checkpoint repeats the uninterrupted run bit for bit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..arch import Arch, ArchError
from ..checkpoint import Checkpoint, CheckpointError, read_checkpoint, save_checkpoint
from ..documents import DocumentError, header
from ..model import ElasticViTSupernet
from ..space import get_space
from .batch_augment import AugmentedBatch, BatchAugment
from .config import sampler_config
from .data import Batch, epoch_indices, iterate_pixels, open_split
from .distributed import DistContext
from .ema import create_ema
from .losses import alpha_divergence_loss, distillation_loss, ensemble_targets, label_loss
from .metrics import MetricsLog
from .optim import adaptive_clip_grad_, build_optimizer, build_scheduler, scale_lr
from .plan import StepPlan
from .precision import Precision
from .registry import get_sampler
from .rng import derive_seed, rng_state, set_rng_state
from .samplers import SubnetSampler
from .teachers import load_teacher, teacher_logits
from .train_config import RESUME_MUTABLE, ConfigError, TrainConfig

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"
SUMMARY_KIND, SUMMARY_VERSION = "training-run", 1  # the header of `RunSummary.to_dict` (train --json)


@dataclass(frozen=True)
class RunSummary:
    """What `Trainer.fit` did: the steps reached, the last step's loss (None when nothing was left to do), and where
    the checkpoint and the metrics are."""

    steps: int
    loss: float | None
    checkpoint: str
    metrics: str

    def to_dict(self) -> dict[str, Any]:
        return {**header(SUMMARY_KIND, SUMMARY_VERSION), "steps": self.steps, "loss": self.loss,
                "checkpoint": self.checkpoint, "metrics": self.metrics}


@dataclass(frozen=True)
class StepResult:
    """What one step did: its plan (subnets and roles), per-subnet losses (mean over ranks), LR and timing."""

    plan: StepPlan
    losses: tuple[float, ...]
    lr: float
    seconds: float
    images: int

    @property
    def loss(self) -> float:
        return sum(self.losses)


class Trainer:
    """Supernet training for one `TrainConfig`, optionally resumed from a checkpoint, on one rank of `dist`."""

    def __init__(self, config: TrainConfig, resume: str | Path | Checkpoint | None = None,
                 dist: DistContext | None = None):
        self.config = config
        self.output_dir = Path(config.output_dir)
        if resume is None and (self.output_dir / CHECKPOINT_NAME).exists():
            raise ConfigError(f"{self.output_dir} already holds a run: continue it with --resume "
                              f"{self.output_dir / CHECKPOINT_NAME}, or choose another output_dir")
        self.dist = dist or DistContext.from_env(config.device)
        try:
            self.space = get_space(config.space)
        except KeyError as e:
            raise ConfigError(str(e.args[0])) from None
        self.train_set = open_split(config.data, "train", self.space.crop_size, config.seed, config.val_fraction)
        if self.train_set.num_classes != self.space.num_classes:
            raise ConfigError(f"data {config.data} has {self.train_set.num_classes} classes, space "
                              f"{self.space.name} has {self.space.num_classes}")
        world, batch = self.dist.world_size, config.batch_size
        self.steps_per_epoch = len(self.train_set) // world // batch
        if self.steps_per_epoch < 1:
            raise ConfigError(f"batch_size {batch} x {world} processes exceeds the {len(self.train_set)} training "
                              "images")
        self.total_steps = config.steps or (config.epochs + config.cooldown_epochs) * self.steps_per_epoch
        options = sampler_config(self.space, config.sampler_options)
        try:
            self.sampler: SubnetSampler = get_sampler(config.sampler, self.space, options, config.seed)
        except (KeyError, ConfigError) as e:
            raise ConfigError(f"sampler: {e.args[0]}") from None
        augmentation = config.augmentation()
        self.augment = BatchAugment(augmentation, self.space.num_classes)
        self.crop = augmentation.crop_spec()
        self.precision = Precision(config.precision, self.dist.device, config.channels_last)
        torch.manual_seed(config.seed)
        self.model = self.precision.prepare(ElasticViTSupernet(self.space).to(self.dist.device))
        self.dist.broadcast_module_(self.model)
        self.forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(self.model) if config.compile \
            else self.model
        lr = scale_lr(config.lr, world, batch)
        self.optimizer = build_optimizer(self.model, lr, config.weight_decay)
        self.scheduler = build_scheduler(self.optimizer, lr, scale_lr(config.warmup_lr, world, batch),
                                         scale_lr(config.min_lr, world, batch),
                                         config.warmup_epochs * self.steps_per_epoch,
                                         config.epochs * self.steps_per_epoch)
        self.ema = create_ema(self.model, config.ema_decay)
        self.teachers = [load_teacher(t, self.dist.device) for t in config.teachers]
        self.step = 0
        self._batches: tuple[int, int, Iterator[Batch]] | None = None  # (epoch, next batch index, iterator)
        if resume is not None:
            self._resume(resume if isinstance(resume, Checkpoint) else read_checkpoint(resume))
        self.metrics: MetricsLog | None = None
        if self.dist.is_main:
            self.metrics = MetricsLog(self.output_dir / METRICS_NAME, self.step,
                                      self.output_dir / "tensorboard" if config.tensorboard else None)

    # ----- one step ---------------------------------------------------------------------------------------------
    def train_step(self) -> StepResult:
        """Run the next step (see the module docstring) and return what it did."""
        start = time.perf_counter()
        epoch, index = divmod(self.step, self.steps_per_epoch)
        pixels, labels = self._next_batch(epoch, index)
        batch = self.augment(pixels, labels, derive_seed(self.config.seed, self.step, self.dist.rank))
        batch = self.precision.inputs(batch)
        if index == 0:
            self._rescore_banks(range(len(self.sampler.config.levels)), batch.clean, batch.labels)
        plan = self.sampler.sample(self.step, epoch)
        quarter = self.steps_per_epoch // 4
        if plan.feedback and quarter and (index + 1) % quarter == 0 and (index + 1) // quarter < 4:
            self._rescore_banks([plan.level_index], batch.clean, batch.labels)  # type: ignore[list-item]
        losses, ces = self._accumulate(plan, batch)
        scalars = torch.stack(losses + ces)
        params = [p for p in self.model.parameters() if p.grad is not None]
        grads = [g for g in (p.grad for p in params) if g is not None]
        stats = [b for b in self.model.buffers() if b.is_floating_point()]
        self.dist.average_(grads + stats + [scalars])
        self.precision.scaler.unscale_(self.optimizer)  # averaged first: every rank sees the same inf/nan
        adaptive_clip_grad_(params, self.config.agc_clip)
        lr = self.optimizer.param_groups[0]["lr"]
        self.precision.scaler.step(self.optimizer)  # skipped (fp16) when a gradient overflowed
        self.precision.scaler.update()
        self.scheduler.step()
        self.ema.update_parameters(self.model)
        values = scalars.tolist()
        feedback: list[float | None] = [None] * len(plan.subnets)
        for i, ce in zip(plan.feedback, values[len(losses):], strict=True):
            feedback[i] = ce
        self.sampler.observe(plan, feedback)
        self.step += 1
        if index == self.steps_per_epoch - 1:
            self.sampler.end_epoch(epoch)
        return StepResult(plan, tuple(values[:len(losses)]), lr, time.perf_counter() - start,
                          len(pixels) * self.dist.world_size)

    def _next_batch(self, epoch: int, index: int) -> Batch:
        """This rank's batch `index` of `epoch` as uint8 pixels and labels on the device (the epoch's order is
        rebuilt when a run starts or resumes; training crops are seeded per image and epoch)."""
        if self._batches is None or self._batches[:2] != (epoch, index):
            order = epoch_indices(self.train_set, epoch, self.config.seed, self.dist.rank, self.dist.world_size)
            bs = self.config.batch_size
            batches = iterate_pixels(self.train_set, order[index * bs:], bs, workers=self.config.workers,
                                     drop_last=True, crop=self.crop, seed=self.config.seed, epoch=epoch,
                                     pin_memory=self.dist.device.type == "cuda")
            self._batches = (epoch, index, batches)
        x, y = next(self._batches[2])
        self._batches = (epoch, index + 1, self._batches[2])
        return x.to(self.dist.device, non_blocking=True), y.to(self.dist.device, non_blocking=True)

    def _accumulate(self, plan: StepPlan, batch: AugmentedBatch) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Forward and backward every subnet of `plan` on the augmented (mixed) batch (min subnets last: their
        target needs the others' outputs). Returns the per-subnet losses and the CE of the `plan.feedback` subnets
        on the un-mixed batch with the original labels (official `bank_arch_update`), detached."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        x = batch.inputs
        targets = None
        if self.teachers:
            with self.precision.autocast():
                targets = ensemble_targets(teacher_logits(self.teachers, x, self.space.num_classes))
        outputs: dict[int, torch.Tensor] = {}
        losses: dict[int, torch.Tensor] = {}
        ces: dict[int, torch.Tensor] = {}
        for i in sorted(range(len(plan.subnets)), key=lambda j: plan.subnets[j].role == "min"):
            sub = plan.subnets[i]
            self.model.set_active(sub.arch)
            with self.precision.autocast():
                logits = self.forward(x).float()
            if i in plan.feedback:
                ces[i] = F.cross_entropy(self._clean_logits(batch, logits), batch.labels)
            if sub.role == "min":
                loss = alpha_divergence_loss(logits, self._min_target(plan, outputs))
            elif targets is not None:
                loss = distillation_loss(logits, targets)
            else:
                loss = label_loss(logits, batch.targets)
            self.precision.scaler.scale(loss).backward()
            outputs[i], losses[i] = logits.detach(), loss.detach()
        return [losses[i] for i in range(len(plan.subnets))], [ces[i] for i in plan.feedback]

    @torch.no_grad()
    def _clean_logits(self, batch: AugmentedBatch, logits: torch.Tensor) -> torch.Tensor:
        """The active subnet's logits on the un-mixed batch: the training forward's when nothing was mixed, else
        one more train-mode forward without gradients (as the official code scores a bank entry)."""
        if not batch.mixed:
            return logits.detach()
        with self.precision.autocast():
            return self.forward(batch.clean).float()

    @staticmethod
    def _min_target(plan: StepPlan, outputs: dict[int, torch.Tensor]) -> torch.Tensor:
        refs = [outputs[i] for i, s in enumerate(plan.subnets) if s.role == "max"]
        refs = refs or [outputs[i] for i, s in enumerate(plan.subnets) if s.role == "uniform"]
        if not refs:
            raise ValueError(f"step {plan.step}: a min subnet needs a max or uniform subnet in the same step")
        return ensemble_targets(refs, temperature=1.0)

    def _rescore_banks(self, level_indices: Sequence[int], x: torch.Tensor, y: torch.Tensor) -> None:
        """Let the sampler re-score its banks of `level_indices` on this batch (`SubnetSampler.rescore_banks`)."""

        @torch.no_grad()
        def score(archs: Sequence[Arch]) -> list[float]:
            """Each arch's CE on this batch, averaged over ranks (official `bank_loss_update`: train-mode forward
            passes without gradients)."""
            self.model.train()
            ces = []
            for arch in archs:
                self.model.set_active(arch)
                with self.precision.autocast():
                    logits = self.forward(x).float()
                ces.append(F.cross_entropy(logits, y))
            values = torch.stack(ces)
            self.dist.average_([values])
            return values.tolist()

        self.sampler.rescore_banks(level_indices, score)

    # ----- the whole run ----------------------------------------------------------------------------------------
    def fit(self, progress: bool = False) -> RunSummary:
        """Train until `total_steps`, logging every `log_every` steps, checkpointing every `save_every` steps and at
        the end."""
        bar = tqdm(total=self.total_steps, initial=self.step, desc="training", unit="step",
                   disable=not (progress and self.dist.is_main))
        window: list[StepResult] = []
        last: StepResult | None = None
        try:
            while self.step < self.total_steps:
                last = self.train_step()
                window.append(last)
                rate = last.images / last.seconds
                level = "-" if last.plan.level is None else f"{last.plan.level:g}"
                bar.set_postfix(loss=f"{last.loss:.3f}", level=level, imgs_s=f"{rate:.0f}", refresh=False)
                bar.update(1)
                if self.step % self.config.log_every == 0 or self.step == self.total_steps:
                    self._log(last, window)
                    window = []
                if self.config.save_every and self.step % self.config.save_every == 0:
                    self.save()
            if self.config.save_every == 0 or self.step % self.config.save_every:
                self.save()
        finally:
            bar.close()
            if self.metrics is not None:
                self.metrics.close()
        return RunSummary(self.step, last.loss if last else None, str(self.output_dir / CHECKPOINT_NAME),
                          str(self.output_dir / METRICS_NAME))

    def _log(self, last: StepResult, window: list[StepResult]) -> None:
        if self.metrics is None:
            return
        plan = last.plan
        self.metrics.write({
            "step": plan.step, "epoch": plan.epoch, "level": plan.level, "lr": last.lr, "loss": last.loss,
            "losses": list(last.losses),
            "subnets": [{"role": s.role, "mflops": round(s.mflops, 3), "bank": s.from_bank} for s in plan.subnets],
            "imgs_per_s": sum(r.images for r in window) / sum(r.seconds for r in window), "time": time.time()})

    # ----- checkpoints ------------------------------------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path:
        """Write the full training state atomically (rank 0; every rank waits for it)."""
        path = Path(path) if path is not None else self.output_dir / CHECKPOINT_NAME
        if self.dist.is_main:
            path.parent.mkdir(parents=True, exist_ok=True)
            trainer = {"step": self.step, "config": self.config.to_dict(), "world_size": self.dist.world_size,
                       "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                       "sampler": self.sampler.state_dict(), "ema_updates": int(self.ema.n_averaged),
                       "scaler": self.precision.scaler.state_dict(), "rng": rng_state()}
            save_checkpoint(path, self.space, self.model.state_dict(), self.ema.module.state_dict(), trainer=trainer)
        self.dist.barrier()
        return path

    def _resume(self, checkpoint: Checkpoint) -> None:
        """Restore everything `save` wrote; `CheckpointError` for a corrupt, foreign or mismatched checkpoint."""
        path = checkpoint.path
        checkpoint.check(self.space, fix="resume it with space = {space}")
        state = checkpoint.training_state()
        stored, current = state["config"], self.config.to_dict()
        defaults = TrainConfig(data=self.config.data).to_dict()  # a key older checkpoints lack had its default
        for key, value in current.items():
            before = stored.get(key, defaults[key])
            if key not in RESUME_MUTABLE and before != value:
                raise CheckpointError(f"{path}: the run was trained with {key} = {before!r}, this one has "
                                      f"{value!r}; an exact resume needs the same setting")
        if state.get("world_size") != self.dist.world_size:
            raise CheckpointError(f"{path}: the run was trained on {state.get('world_size')} processes; resume it on "
                                  f"as many (data sharding and LR scaling depend on it)")
        data = checkpoint.entries
        try:
            self.model.load_state_dict(data["model"])
            self.ema.module.load_state_dict(data["ema"])
            self.ema.n_averaged.fill_(int(state["ema_updates"]))
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.sampler.load_state_dict(state["sampler"])
            if "scaler" in state:
                self.precision.scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"])
            self.step = int(state["step"])
        except (DocumentError, ArchError, KeyError, RuntimeError, ValueError, TypeError, IndexError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"{path}: damaged training state ({first[:200]})") from None
