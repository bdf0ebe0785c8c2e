"""Memory a run needs: each family's own footprint (models/footprint.py) plus the process and the CUDA context.

The family knows its memory (parameters and optimizer, the memory stores,
activations, what a checkpoint writes: `Config.footprint`); the planner
knows the run (steps, batch, ranks, device, distinct training text) and what
every process costs besides. Where a part lives: `device_parts` on the
accelerator of a GPU run, in host memory on a CPU run; `host_parts` always in
host memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nightshift.models.footprint import Footprint, RunShape
from nightshift.models.protocol import Vocab
from nightshift.orchestrator.runs.config import RunConfig

PROCESS_BASE_BYTES = 0.6e9  # interpreter + torch + pyarrow + tokenizer, measured RSS before a model exists
CUDA_CONTEXT_BYTES = 0.8e9  # CUDA context + allocator slack per GPU process


@dataclass(slots=True)
class MemoryEstimate:
    parameters: int
    seq_len: int  # T: tokens per training window (sequences are T + 1)
    store_bytes: float  # non-parametric memory at the end of the run
    store_on: str  # "host" or "device"
    store_note: str
    activation_bytes: float
    activation_note: str
    device_bytes: float  # per accelerator (0 on a CPU run)
    host_bytes: float  # per process, peak (while checkpointing)
    checkpoint_bytes: float  # one checkpoint
    store_checkpoint_bytes: float  # of which the memory stores
    store_appends: bool  # the store only grows by appending over the whole run (chunks written once)
    rewrite_note: str = "the state changes everywhere between checkpoints"  # why not, when it does not
    flops_per_sample: float | None = None
    breakdown: dict[str, float] = field(default_factory=dict)


def estimate_memory(config: RunConfig, vocab: Vocab, *, world: int, on_gpu: bool, train_tokens: int,
                    bytes_per_token: float = 4.0, device_memory: float | None = None) -> MemoryEstimate:
    """`train_tokens`: distinct training text; repeated epochs add no new bigrams or n-grams.
    `device_memory`: bytes of one accelerator (None: unknown), for families that place stores by it."""
    t = config.train
    shape = RunShape(steps=t.steps, batch_size=t.batch_size, grad_accum=t.grad_accum,
                     eval_batch_size=t.eval_batch_size, world=world, on_gpu=on_gpu, train_tokens=train_tokens,
                     bytes_per_token=bytes_per_token, device_memory=device_memory)
    return _with_process(config.model.config.footprint(vocab, shape), on_gpu)


def _with_process(fp: Footprint, on_gpu: bool) -> MemoryEstimate:
    host_parts = {"process": PROCESS_BASE_BYTES, **fp.host_parts}
    if on_gpu:
        device_parts = {**fp.device_parts, "cuda context": CUDA_CONTEXT_BYTES}
        device_bytes, host_bytes = sum(device_parts.values()), sum(host_parts.values())
        breakdown = {**device_parts, **host_parts}
    else:
        host_parts = {**host_parts, **fp.device_parts}
        device_bytes, host_bytes, breakdown = 0.0, sum(host_parts.values()), host_parts
    return MemoryEstimate(fp.parameters, fp.seq_len, fp.store_bytes, fp.store_on, fp.store_note,
                          fp.activation_bytes, fp.activation_note, device_bytes, host_bytes, fp.checkpoint_bytes,
                          fp.store_checkpoint_bytes, fp.store_appends, fp.rewrite_note, fp.flops_per_sample,
                          breakdown)
