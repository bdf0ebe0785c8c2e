"""What a family reports to the pre-flight planner about its memory, as it reports `train_flops_per_sample`.

A family's memory is its own design (an episode store, count tables, weights
and optimizer moments), so each family's config computes its own `Footprint`
for a `RunShape` the planner describes: counted where the family's code says
it (parameters from a build on the meta device, bytes per stored row from the
family's own column layout), a formula where it cannot (activations, growth
of the stores), each with a note of where it comes from. The planner adds the
process and the CUDA context and decides what fits (orchestrator/planning/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from nightshift.models.protocol import LanguageModel, Vocab


@dataclass(frozen=True, slots=True, kw_only=True)
class RunShape:
    """What the planner knows of a run before it starts."""

    steps: int
    batch_size: int  # sequences per optimizer step, all ranks together
    grad_accum: int = 1
    eval_batch_size: int = 1
    world: int = 1  # ranks
    on_gpu: bool = False
    train_tokens: int = 0  # distinct training text: repeated epochs add no new bigrams or n-grams
    bytes_per_token: float = 4.0  # UTF-8 bytes per token of the dataset's tokenizer
    device_memory: float | None = None  # total bytes of one accelerator (on_gpu); None = unknown (taken to fit)

    @property
    def per_rank_batch(self) -> int:
        return max(1, self.batch_size // (self.world * self.grad_accum))


@dataclass(slots=True, kw_only=True)
class Footprint:
    """A family's own estimate of the memory one rank of a run holds, and of what one checkpoint writes."""

    parameters: int
    seq_len: int  # T: tokens per training window (sequences are T + 1)
    activation_bytes: float
    activation_note: str
    checkpoint_bytes: float  # one checkpoint
    store_bytes: float = 0.0  # non-parametric memory at the end of the run
    store_on: str = "host"  # "host" or "device"
    store_note: str = "no memory store"
    store_checkpoint_bytes: float = 0.0  # of the checkpoint, the memory stores
    store_appends: bool = True  # the store only grows by appending over the run (chunks written once)
    rewrite_note: str = "the state changes everywhere between checkpoints"  # why not, when it does not
    flops_per_sample: float | None = None
    device_parts: dict[str, float] = field(default_factory=dict)  # on the accelerator (the host on a CPU run)
    host_parts: dict[str, float] = field(default_factory=dict)  # always in host memory


def meta_build(config: Any, vocab: Vocab) -> LanguageModel:
    """The family's model with its parameters on the meta device: shapes and counts, no memory."""
    with torch.device("meta"):
        return config.build(vocab)


def gradient_footprint(model: LanguageModel, shape: RunShape, activations: float, note: str) -> Footprint:
    """fp32 weights + gradients + AdamW moments (16 B per parameter) and a checkpoint of weights + moments."""
    params = model.num_parameters()
    ckpt = 12 * params  # weights + moments (gradients are not saved)
    return Footprint(parameters=params, seq_len=model.train_seq_len, activation_bytes=activations,
                     activation_note=note, checkpoint_bytes=ckpt, rewrite_note="weights and optimizer change at "
                     "every step", flops_per_sample=model.train_flops_per_sample(),
                     device_parts={"weights+grads+AdamW": 16 * params, "activations": activations},
                     host_parts={"checkpoint copy": ckpt} if shape.on_gpu else {})
