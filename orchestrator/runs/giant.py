"""The giant-run flags users already type, mapped onto our configs (what `jobs/giant.py` runs).

`--dataset pg19 --max-samples N --vocab-size V --context-size C --max-attractors
--noise-std --log-every --deep-log-every --generate-every --sleep-every
--episodic-buffer-size --rem-cycles` come from the original Modal holographic
run; `--model` picks any family (default holographic). A flag the chosen family
has no field for is ignored with a warning, never silently, and never an error:
the same command line works for every family.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

from nightshift.models.overrides import field_names
from nightshift.models.registry import resolve
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import RunConfig, build_run_config

log = logging.getLogger(__name__)

DEFAULT_MODEL = "holographic"
# --vocab-size picks the lossless tokenizer with that vocabulary (bits per byte needs lossless tokens).
VOCAB_TOKENIZERS: dict[int, str] = {257: "bytes", 50257: "gpt2", 100277: "cl100k_base", 200019: "o200k_base"}
# --context-size lands on the field that is each family's context length.
CONTEXT_FIELDS: dict[str, str] = {"holographic": "context_size", "transformer": "seq_len", "attractor": "window"}
# Giant flags that are model fields of the same name, where a family has them.
MODEL_FLAGS: tuple[str, ...] = ("max_attractors", "noise_std", "episodic_buffer_size", "rem_cycles")


@dataclass(frozen=True, slots=True, kw_only=True)
class GiantFlags:
    """One giant run as typed; None means "the recipe's default"."""

    dataset: str = "pg19"  # a source (pg19, fineweb, tinystories, local:PATH) or a prepared dataset id
    model: str = DEFAULT_MODEL  # family[:flavor]
    max_samples: int | None = None  # training samples (sequences) to see: steps = ceil(max_samples / batch)
    vocab_size: int | None = None  # 257 bytes | 50257 gpt2 | 100277 cl100k_base | 200019 o200k_base
    tokenizer: str | None = None  # explicit tokenizer name (wins over --vocab-size)
    context_size: int | None = None
    max_attractors: int | None = None
    noise_std: float | None = None
    log_every: int | None = None  # steps between metric logs
    deep_log_every: int | None = None  # steps between full evaluations (bits per byte on validation)
    generate_every: int | None = None  # steps between generated samples
    sleep_every: int | None = None  # samples between sleep phases
    episodic_buffer_size: int | None = None
    rem_cycles: int | None = None
    batch_size: int | None = None  # global sequences per step (default: the recipe's)
    seed: int = 0
    max_bytes: str = "1GB"  # training text prepared on first use
    valid_bytes: str = "10MB"
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


def tokenizer_for(flags: GiantFlags) -> str:
    if flags.tokenizer:
        return flags.tokenizer
    if flags.vocab_size is None:
        return "gpt2"
    if flags.vocab_size in VOCAB_TOKENIZERS:
        return VOCAB_TOKENIZERS[flags.vocab_size]
    if flags.vocab_size == 256:
        return "bytes"
    accepted = ", ".join(f"{v} ({n})" for v, n in VOCAB_TOKENIZERS.items())
    raise UserError(f"--vocab-size {flags.vocab_size}: our tokenizers are lossless with fixed vocabularies "
                    f"(bits per byte needs that); accepted: {accepted}, or --tokenizer NAME")


def giant_run_config(flags: GiantFlags, dataset_id: str) -> tuple[RunConfig, list[str]]:
    """The RunConfig the flags mean for the chosen family, and the flags it ignored (also logged)."""
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
    train = {"log_every": flags.log_every, "eval_every": flags.deep_log_every,
             "sample_every": flags.generate_every, "batch_size": flags.batch_size}
    if flags.sleep_every is not None:
        if family == "transformer":
            ignored.append("--sleep-every")  # the baseline never sleeps: the control
        else:
            train["sleep_every"] = flags.sleep_every
    sets.update({f"train.{k}": str(v) for k, v in train.items() if v is not None})
    for pair in flags.sets:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UserError(f"--set {pair!r}: expected key=value, e.g. --set lr=3e-4")
        sets[key.strip()] = value
    for flag in ignored:
        log.warning("giant run: %s does not apply to %s models; ignored", flag, family)
    config = build_run_config(dataset_id, flags.model, sets, seed=flags.seed)
    if flags.max_samples is not None:
        if flags.max_samples < 1:
            raise UserError(f"--max-samples {flags.max_samples}: must be >= 1")
        steps = math.ceil(flags.max_samples / config.train.batch_size)
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=steps))
    return config, ignored


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
