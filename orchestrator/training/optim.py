"""AdamW with decay on matrices only, and an LR schedule fitted to the run's planned length.

A recipe's `warmup_steps` was chosen for a long run; applied unchanged to a
20-step sweep cell it keeps the LR in warmup for the whole run (the first
recorded example sweep stopped its transformer at 0.19x its peak LR). So, unless
`fit_schedule=false`, warmup is at most WARMUP_MAX_FRACTION of the planned steps
and the cosine decay ends at the planned end. The planned length is the step
bound (`--steps`, or steps derived from `--tokens` / `--epochs`) or, for a run
bounded by a compute budget, the steps that fit in it, estimated from the
measured cost of its first steps (orchestrator/training/budget.py); the run records
the schedule it used.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from nightshift.orchestrator.runs.config import TrainConfig

WARMUP_MAX_FRACTION = 0.1  # a fitted warmup is at most this share of the planned steps


def build_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]  # matrices and embeddings
    no_decay = [p for p in params if p.ndim < 2]  # norms, biases, scalars
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    # fused AdamW: one kernel per step instead of a dozen per tensor; on CPU too (18 vs 42 ms at attractor:a1)
    extra = {"fused": True} if device.type in ("cuda", "cpu") else {}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), **extra)


@dataclass(slots=True)
class Schedule:
    """The LR multiplier over a run: linear warmup, then cosine (or constant) until `planned_steps`.

    Mutable on purpose: a budget-bound run re-plans its length a few times
    from measured step costs, and the LambdaLR reads the current plan.
    """

    kind: str  # cosine | constant | none (memory families: no optimizer, the plan only bounds the steps)
    warmup: int  # steps of linear warmup from 0
    planned_steps: int  # where the decay ends (and where the run stops)
    min_lr_ratio: float
    planned_by: str  # steps (a step/token/epoch bound) | budget (steps that fit in the compute budget)
    fitted: bool  # False: the recipe's warmup and steps as given (fit_schedule=false)
    recipe_warmup: int  # the recipe's warmup_steps, for the record
    replans: int = 0  # how many times a budget-bound run re-estimated planned_steps

    def factor(self, step: int) -> float:
        """Multiplier of the peak LR at `step` (0-based)."""
        if self.warmup and step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind != "cosine":
            return 1.0
        span = max(1, self.planned_steps - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def replan(self, planned_steps: int, cfg: TrainConfig) -> None:
        """A new planned length (budget runs): warmup and decay are fitted to it again."""
        fresh = fit_schedule(cfg, planned_steps, planned_by="budget", gradient=self.kind != "none")
        self.warmup, self.planned_steps = fresh.warmup, fresh.planned_steps
        self.planned_by, self.replans = "budget", self.replans + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load(self, data: dict[str, Any]) -> None:
        """In place (the scheduler's lambda holds this object): a resumed run continues its own plan."""
        for key, value in data.items():
            if key in self.__dataclass_fields__:
                setattr(self, key, value)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Schedule":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def fit_schedule(cfg: TrainConfig, planned_steps: int, *, planned_by: str = "steps",
                 gradient: bool = True) -> Schedule:
    """Warmup = min(recipe warmup, WARMUP_MAX_FRACTION x planned), decay ending at `planned_steps`."""
    planned = max(1, min(int(planned_steps), cfg.steps))
    if not cfg.fit_schedule:
        warmup = cfg.warmup_steps
    else:
        cap = max(1, math.floor(WARMUP_MAX_FRACTION * planned))
        warmup = min(cfg.warmup_steps, cap)
    return Schedule(kind=cfg.schedule if gradient else "none", warmup=warmup, planned_steps=planned,
                    min_lr_ratio=cfg.min_lr_ratio, planned_by=planned_by, fitted=cfg.fit_schedule,
                    recipe_warmup=cfg.warmup_steps)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier at `step` of the schedule fitted to `cfg.steps` (what a step-bound run uses)."""
    return fit_schedule(cfg, cfg.steps).factor(step)


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: Schedule) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule.factor(step))  # reads re-plans
