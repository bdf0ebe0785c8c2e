"""The giant-run flags users already type, mapped onto our configs (what `jobs/giant.py` runs).

`--dataset pg19 --max-samples N --vocab-size V --context-size C --max-attractors
--noise-std --log-every --deep-log-every --generate-every --sleep-every
--episodic-buffer-size --rem-cycles` come from the original Modal holographic
run; `--model` picks any family (default holographic). A flag the chosen family
has no field for is ignored with a warning, never silently, and never an error:
the same command line works for every family.

Units are the original's: `--max-samples` and every cadence flag count predicted
positions (one context window and its next token; orchestrator/runs/positions.py),
so the run is the one its users meant. The trainer runs with
`cadence_unit="positions"`; cadences the user did not type keep the recipe's
values, converted from its steps to positions at the recipe's own step size.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from nightshift.models.overrides import field_names
from nightshift.models.registry import resolve
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import RunConfig, build_run_config
from nightshift.orchestrator.runs.positions import StepSize, fit_step, positions_per_row, steps_for

log = logging.getLogger(__name__)

DEFAULT_MODEL = "holographic"
# --vocab-size picks the lossless tokenizer with that vocabulary (bits per byte needs lossless tokens).
VOCAB_TOKENIZERS: dict[int, str] = {257: "bytes", 50257: "gpt2", 100277: "cl100k_base", 200019: "o200k_base"}
# --context-size lands on the field that is each family's context length.
CONTEXT_FIELDS: dict[str, str] = {"holographic": "context_size", "transformer": "seq_len", "attractor": "window"}
# Cadence flags (in positions) -> the trainer field each sets.
CADENCE_FLAGS: dict[str, str] = {"log_every": "log_every", "deep_log_every": "eval_every",
                                 "generate_every": "sample_every", "sleep_every": "sleep_every"}
# Giant flags that are model fields of the same name, where a family has them.
MODEL_FLAGS: tuple[str, ...] = ("max_attractors", "noise_std", "episodic_buffer_size", "rem_cycles")


@dataclass(frozen=True, slots=True, kw_only=True)
class GiantFlags:
    """One giant run as typed; None means "the recipe's default"."""

    dataset: str = "pg19"  # a source (pg19, fineweb, tinystories, local:PATH) or a prepared dataset id
    model: str = DEFAULT_MODEL  # family[:flavor]
    max_samples: int | None = None  # predicted positions to train on (window + next token), as in the original
    vocab_size: int | None = None  # 257 bytes | 50257 gpt2 | 100277 cl100k_base | 200019 o200k_base; other: nearest
    tokenizer: str | None = None  # explicit tokenizer name (wins over --vocab-size)
    context_size: int | None = None
    max_attractors: int | None = None
    noise_std: float | None = None
    log_every: int | None = None  # predicted positions between metric logs
    deep_log_every: int | None = None  # positions between evaluations (bits per byte, capped by eval_max_bytes)
    generate_every: int | None = None  # positions between generated samples
    sleep_every: int | None = None  # positions between sleep phases
    episodic_buffer_size: int | None = None
    rem_cycles: int | None = None
    batch_size: int | None = None  # global rows per step (default: fitted so a step <= the shortest cadence)
    seed: int = 0
    max_bytes: str = "1GB"  # training text prepared on first use
    valid_bytes: str = "10MB"
    final_eval_bytes: str = ""  # cap on the final evaluation and each ablation ("": all of --valid-bytes)
    sets: tuple[str, ...] = ()  # extra `key=value` overrides, as `nightshift train --set`

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GiantFlags":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown giant-run flag(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        data = {**data, "sets": tuple(data.get("sets") or ())}
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "sets": list(self.sets)}


def tokenizer_for(flags: GiantFlags, *, say: bool = False) -> str:
    """The lossless tokenizer the flags mean. A size we have none for (the original's word-level 100000, whose
    unknown words become <unk>, so bits per byte could not be exact) maps to the nearest lossless one; `say`
    logs that in one line (the entry point says it once, not every caller)."""
    if flags.tokenizer:
        return flags.tokenizer
    if flags.vocab_size is None:
        return "gpt2"
    if flags.vocab_size in VOCAB_TOKENIZERS:
        return VOCAB_TOKENIZERS[flags.vocab_size]
    if flags.vocab_size == 256:
        return "bytes"
    if flags.vocab_size < 2:
        accepted = ", ".join(f"{v} ({n})" for v, n in VOCAB_TOKENIZERS.items())
        raise UserError(f"--vocab-size {flags.vocab_size}: must be >= 2; lossless sizes: {accepted}")
    size = min(VOCAB_TOKENIZERS, key=lambda v: (abs(v - flags.vocab_size), v))
    if say:
        log.warning("--vocab-size %d: no lossless tokenizer of that size (bits per byte needs lossless tokens); "
                    "using the nearest, %s (%d)", flags.vocab_size, VOCAB_TOKENIZERS[size], size)
    return VOCAB_TOKENIZERS[size]


def giant_run_config(flags: GiantFlags, dataset_id: str, world: int = 1) -> tuple[RunConfig, list[str]]:
    """The RunConfig the flags mean for the chosen family, and the flags it ignored (also logged).

    `world`: DDP ranks (GPUs), so a fitted batch splits evenly over them.
    """
    spec = resolve(flags.model)
    family = spec.family
    model_fields = set(field_names(spec.config))
    sets: dict[str, str] = {}
    ignored: list[str] = []

    def model_set(flag: str, field: str | None, value: Any) -> None:
        if value is None:
            return
        if field is not None and field in model_fields:
            sets[f"model.{field}"] = str(value)
        else:
            ignored.append(f"--{flag.replace('_', '-')}")

    model_set("context_size", CONTEXT_FIELDS.get(family), flags.context_size)
    for name in MODEL_FLAGS:
        model_set(name, name, getattr(flags, name))
    if flags.sleep_every is not None and family == "transformer":
        ignored.append("--sleep-every")  # the baseline never sleeps: the control
    for pair in flags.sets:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UserError(f"--set {pair!r}: expected key=value, e.g. --set lr=3e-4")
        sets[key.strip()] = value
    for flag in ignored:
        log.warning("giant run: %s does not apply to %s models; ignored", flag, family)
    for flag in ("max_samples", "batch_size", *CADENCE_FLAGS):
        value = getattr(flags, flag)
        if value is not None and value < (0 if flag in CADENCE_FLAGS else 1):
            raise UserError(f"--{flag.replace('_', '-')} {value}: must be >= {0 if flag in CADENCE_FLAGS else 1}")
    config = build_run_config(dataset_id, flags.model, sets, seed=flags.seed)
    return in_positions(config, flags, ignored, world), ignored


def in_positions(config: RunConfig, flags: GiantFlags, ignored: list[str], world: int) -> RunConfig:
    """The trainer config with the giant flags' cadences and length in predicted positions."""
    from nightshift.pipelines.sizes import parse_size

    t = config.train
    per_row = positions_per_row(config)
    if t.cadence_unit == "positions":  # a --set chose positions: the recipe's cadences are already positions
        scale = dict.fromkeys(CADENCE_FLAGS.values(), 1)
    else:  # steps unit: log/eval/sample count steps of the recipe's batch, sleep_every counts rows
        scale = {**dict.fromkeys(CADENCE_FLAGS.values(), t.batch_size * per_row), "sleep_every": per_row}
    cadences = {field: getattr(t, field) * scale[field] for field in CADENCE_FLAGS.values()}
    typed = {}
    for flag, field in CADENCE_FLAGS.items():
        value = getattr(flags, flag)
        if value is not None and f"--{flag.replace('_', '-')}" not in ignored:
            cadences[field] = typed[field] = value
    if config.model.family == "transformer":
        cadences["sleep_every"] = 0
    shortest = min((v for v in typed.values() if v), default=None)
    model_fields = set(field_names(config.model.config))
    step = fit_step(per_row, shortest, t.batch_size, world,
                    can_shorten_row="row_positions" in model_fields, batch_given=flags.batch_size)
    if step.row_set:
        config = dataclasses.replace(config, model=dataclasses.replace(
            config.model, config=dataclasses.replace(config.model.config, row_positions=step.row_positions)))
    steps = steps_for(flags.max_samples, step) if flags.max_samples is not None else t.steps
    final = parse_size(flags.final_eval_bytes, what="--final-eval-bytes") if flags.final_eval_bytes else 0
    train = dataclasses.replace(t, cadence_unit="positions", batch_size=step.batch, steps=steps,
                                final_eval_max_bytes=int(final), **cadences)
    train.validate()
    return dataclasses.replace(config, train=train)


def step_size(config: RunConfig) -> StepSize:
    """The step a giant config takes (for the plan's translation line)."""
    return StepSize(config.train.batch_size, positions_per_row(config), False)


def check_world(config: RunConfig, processes: int) -> None:
    """DDP splits each global batch evenly: say so before any GPU is paid for."""
    per = processes * config.train.grad_accum
    if processes > 1 and config.train.batch_size % per:
        raise UserError(f"batch_size={config.train.batch_size} must be divisible by GPUs x grad_accum = "
                        f"{processes} x {config.train.grad_accum}; pass --batch-size (e.g. {per * 2})")


def gpu_count(gpu: str | None) -> int:
    """`H100` -> 1, `H100:8` -> 8, None/"" -> 0 (CPU)."""
    if not gpu:
        return 0
    _, sep, count = gpu.partition(":")
    if not sep:
        return 1
    try:
        n = int(count)
    except ValueError:
        raise UserError(f"--gpu {gpu!r}: expected TYPE or TYPE:COUNT, e.g. H100 or H100:8") from None
    if n < 1:
        raise UserError(f"--gpu {gpu!r}: the count must be >= 1")
    return n
