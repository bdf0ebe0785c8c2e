"""What a training run is: dataset id + model spec + trainer settings, and the ids derived from them.

A run is addressed by content: `run_id` hashes the whole config (dataset id,
model family/flavor/config, trainer config), so a changed field can never
reuse an old run's checkpoints, while re-running an identical config resumes
or is a no-op.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

from nightshift.models.overrides import apply_overrides, field_names
from nightshift.models.registry import ModelSpec, resolve
from nightshift.orchestrator.errors import UserError
from nightshift.pipelines.ids import canonical_json, content_id


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    """Trainer settings; a flavor's recipe supplies defaults, `--set` overrides them."""

    steps: int = 1000  # optimizer steps (memory families: observe calls); always steps, whatever cadence_unit says
    # What log_every, eval_every, sample_every and sleep_every count: "steps" (sleep_every: sequences), or
    # "positions": predicted positions (one context window and its next token; the giant run's "samples").
    # A positions cadence fires at the step whose count crosses a multiple of it.
    cadence_unit: Literal["steps", "positions"] = "steps"
    batch_size: int = 16  # GLOBAL batch in sequences per step (split across DDP ranks)
    grad_accum: int = 1  # micro-batches per step (each batch_size / grad_accum sequences)
    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # cosine decays to lr * this
    warmup_steps: int = 100  # linear warmup from 0 (fitted: at most 10% of the planned steps)
    schedule: Literal["cosine", "constant"] = "cosine"
    fit_schedule: bool = True  # fit warmup and decay to the planned length (false: warmup_steps and steps as given)
    weight_decay: float = 0.1  # AdamW decay, on matrices only (ndim >= 2)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0  # global norm clip; 0 disables
    seed: int = 0  # model init, data order, sampling
    eval_every: int = 200  # steps between validation evals (0: only the final one)
    eval_max_bytes: int = 100_000  # cap on validation bytes for periodic evals (0: all)
    final_eval_max_bytes: int = 0  # cap on validation bytes for the final eval and each ablation (0: all)
    eval_batch_size: int = 16  # windows per evaluation forward pass
    sleep_every: int = 0  # sequences (cadence_unit=steps) or positions between sleep phases (0: never)
    sample_every: int = 0  # steps between generated samples (0: only at the end)
    sample_tokens: int = 64  # tokens generated per sample prompt
    checkpoint_every: int = 500  # steps between checkpoints (0: only at the end)
    checkpoint_minutes: float = 20.0  # also checkpoint after this much wall-clock (0: never by time)
    keep_checkpoints: int = 3  # the newest K checkpoints kept; older ones deleted (their unshared chunks too)
    keep_every: int = 0  # also keep every checkpoint whose step is a multiple of this (0: none beyond the newest K)
    log_every: int = 10  # steps between metric logs
    budget_minutes: float = 0.0  # stop after this many minutes of all work but evals/checkpoints/samples (0: none)
    budget_device_seconds: float = 0.0  # the same bound in device-seconds (x world size) (0: none)
    final_ablations: bool = True  # at the end, also score with each of the family's ablatable parts off
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False  # torch.compile the model (CUDA)
    spike_factor: float = 5.0  # roll back when loss > this x running median (0: only on NaN/inf)
    spike_window: int = 50  # losses in the running median
    rollback_skip: int = 20  # extra batches skipped past the offending one after a rollback
    rollback_lr_factor: float = 1.0  # multiply the LR by this at each rollback (e.g. 0.5)
    max_rollbacks: int = 3  # more than this many rollbacks within rollback_period steps stops the run
    rollback_period: int = 1000

    def validate(self) -> None:
        positive = ("steps", "batch_size", "grad_accum", "eval_batch_size", "sample_tokens", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise UserError(f"{name}={getattr(self, name)} must be >= 1")
        if self.keep_checkpoints < 1:
            raise UserError(f"keep_checkpoints={self.keep_checkpoints} must be >= 1 (resume needs one)")
        if self.cadence_unit not in ("steps", "positions"):
            raise UserError(f"cadence_unit={self.cadence_unit!r}: accepted: steps, positions")
        for name in ("warmup_steps", "eval_every", "eval_max_bytes", "final_eval_max_bytes", "sleep_every",
                     "sample_every", "checkpoint_every", "seed", "keep_every"):
            if getattr(self, name) < 0:
                raise UserError(f"{name}={getattr(self, name)} must be >= 0")
        if self.lr <= 0:
            raise UserError(f"lr={self.lr} must be > 0")
        if self.batch_size % self.grad_accum:
            raise UserError(f"batch_size={self.batch_size} must be divisible by grad_accum={self.grad_accum}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise UserError(f"min_lr_ratio={self.min_lr_ratio} must be in [0, 1]")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise UserError("grad_clip and weight_decay must be >= 0")
        if self.spike_factor < 0 or self.spike_window < 1 or self.rollback_skip < 0 or self.max_rollbacks < 0:
            raise UserError("spike_factor, rollback_skip, max_rollbacks must be >= 0 and spike_window >= 1")
        if not 0 < self.rollback_lr_factor <= 1:
            raise UserError(f"rollback_lr_factor={self.rollback_lr_factor} must be in (0, 1]")
        if self.checkpoint_minutes < 0 or self.budget_minutes < 0 or self.budget_device_seconds < 0:
            raise UserError("checkpoint_minutes, budget_minutes and budget_device_seconds must be >= 0")


# Fields that say where and how often, not what: a run started on a laptop resumes on
# Ray or Modal (another device, cadence or compile setting) under the same id.
OPERATIONAL_FIELDS = frozenset({
    "device", "compile", "log_every", "checkpoint_every", "checkpoint_minutes", "eval_batch_size",
    "final_ablations", "keep_checkpoints", "keep_every",
})


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """Everything that determines a run's result."""

    dataset_id: str
    model: ModelSpec
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def model_id(self) -> str:
        return content_id(f"{self.model.family}-{self.model.flavor}",
                          {"family": self.model.family, "config": self.model.config})

    @property
    def run_id(self) -> str:
        """Hash of the whole config except where/how it runs (see OPERATIONAL_FIELDS)."""
        identity = self.to_dict()
        identity["train"] = {k: v for k, v in identity["train"].items() if k not in OPERATIONAL_FIELDS}
        return content_id(f"{self.model.family}-{self.model.flavor}-s{self.train.seed}", identity)

    @property
    def run_path(self) -> tuple[str, str, str, str]:
        return ("runs", self.dataset_id, self.model_id, self.run_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_id": self.dataset_id,
            "model": {"family": self.model.family, "flavor": self.model.flavor,
                      "config": _plain(self.model.config)},
            "train": _plain(self.train),
        }

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        spec = resolve(f"{data['model']['family']}:{data['model']['flavor']}")
        model_cfg = _from_plain(spec.config, data["model"]["config"])
        train = _from_plain(TrainConfig(), data["train"])
        return cls(dataset_id=data["dataset_id"],
                   model=dataclasses.replace(spec, config=model_cfg), train=train)


def _plain(obj: Any) -> dict[str, Any]:
    return {f.name: (list(v) if isinstance(v := getattr(obj, f.name), tuple) else v)
            for f in dataclasses.fields(obj)}


def _from_plain(template: Any, values: dict[str, Any]) -> Any:
    known = set(field_names(template))
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in known}
    return dataclasses.replace(template, **kwargs)


def parse_sets(pairs: list[str] | None) -> dict[str, str]:
    """`["a=1", "model.b=x"]` -> {"a": "1", "model.b": "x"}; malformed pairs are one-line errors."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {pair!r}: expected key=value, e.g. --set lr=3e-4")
        out[key.strip()] = value
    return out


def build_run_config(dataset_id: str, model: str, sets: dict[str, str] | None = None,
                     *, steps: int | None = None, seed: int | None = None) -> RunConfig:
    """Resolve `family:flavor`, route each `--set` to the model or trainer config, validate both."""
    model_sets, train_sets = {}, {}
    spec0 = resolve(model)
    model_fields, train_fields = set(field_names(spec0.config)), set(field_names(TrainConfig()))
    for key, value in (sets or {}).items():
        scope, dot, name = key.partition(".")
        if dot and scope in ("model", "train"):
            (model_sets if scope == "model" else train_sets)[name] = value
        elif key in model_fields and key in train_fields:
            raise UserError(f"--set {key}: ambiguous, use model.{key} or train.{key}")
        elif key in train_fields:
            train_sets[key] = value
        elif key in model_fields:
            model_sets[key] = value
        else:
            known = sorted(model_fields | train_fields)
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
            raise UserError(f"--set {key}: no such model or trainer field; {hint}")
    spec = resolve(model, model_sets)
    recipe_defaults = {k: v for k, v in spec.train.items() if k in train_fields}
    train = apply_overrides(TrainConfig(**recipe_defaults), train_sets, what="trainer")
    if steps is not None:
        train = dataclasses.replace(train, steps=steps)
    if seed is not None:
        train = dataclasses.replace(train, seed=seed)
    train.validate()
    spec.config.check()  # vocabulary-independent checks now; the rest at build()
    return RunConfig(dataset_id=dataset_id, model=spec, train=train)
