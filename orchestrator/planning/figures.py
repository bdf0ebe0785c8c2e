"""Recorded measurements the pre-flight plan uses, each with where it was measured (benchmarks/RESULTS.md).

When a run's family and shape match a recorded figure on the same kind of
device, the plan uses it; a gradient family elsewhere gets a FLOP estimate
(train_flops_per_sample x samples / (device peak x ASSUMED_MFU), or on a CPU
the FLOP/s a recorded run achieved); a memory family on a GPU uses its host
CPU figure, because today it computes on the host. The plan says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nightshift.orchestrator.planning.memory import MemoryEstimate
    from nightshift.orchestrator.planning.preflight import Device
    from nightshift.orchestrator.runs.config import RunConfig

ASSUMED_MFU = 0.35  # an assumption, not a measurement: no GPU run has been recorded yet
# Chunked checkpoint write rate: 1.08 GB (10 M holographic episodes) in 7.36 s to local disk, load 10.8
# (benchmarks/scale_memory.py, RESULTS.md issue 17); state_dict() copies come on top (see there).
CHECKPOINT_BYTES_PER_S = 1.08e9 / 7.36
SHARD_OVERHEAD = 1.02  # Arrow stream framing + per-document columns over 2 or 4 bytes per token
# UTF-8 bytes per token on pg19 (train split of the sample, 31.6 MB), measured with tiktoken
BYTES_PER_TOKEN: dict[str, float] = {"gpt2": 3.83, "r50k_base": 3.83, "cl100k_base": 4.18, "bytes": 1.0}


@dataclass(frozen=True, slots=True)
class Recorded:
    family: str
    match: tuple[tuple[str, Any], ...]  # model config fields that must be equal
    unit: str  # "episodes/s", "bytes/s", "tokens/s"
    value: float
    source: str


# Measured on the 2-core development CPU (one core busy: these families run single-threaded).
RECORDED: tuple[Recorded, ...] = (
    Recorded("holographic", (("context_size", 64),), "episodes/s", 720_971,
             "recorded: holographic observe, context 64, 2-core CPU (RESULTS.md issue 5)"),
    Recorded("holographic", (("context_size", 512),), "episodes/s", 619_347,
             "recorded: holographic observe, context 512, 2-core CPU (RESULTS.md issue 5)"),
    Recorded("holographic", (("context_size", 4096),), "episodes/s", 523_237,
             "recorded: holographic observe, context 4096, 2-core CPU (RESULTS.md issue 5)"),
    Recorded("macro_unit", (), "bytes/s", 5.69e6,
             "recorded: macro_unit:base observe, CPU time of one core (RESULTS.md macro_unit)"),
    Recorded("attractor", (("d_model", 128), ("window", 8), ("steps", 16)), "tokens/s", 639,
             "recorded: attractor:a1, one thread (RESULTS.md attractor)"),
    Recorded("transformer", (("n_layer", 4), ("d_model", 128), ("seq_len", 256)), "tokens/s", 352,
             "recorded: transformer:tiny trainer loop, batch 2, gpt2 (RESULTS.md trainer overhead)"),
)
# FLOP/s the recorded transformer:tiny run achieved on the CPU: scales CPU estimates of other shapes.
CPU_REFERENCE = RECORDED[-1]


def _matches(rec: Recorded, config: "RunConfig") -> bool:
    cfg = config.model.config
    return rec.family == config.model.family and all(getattr(cfg, k, None) == v for k, v in rec.match)


def _per_sample(rec: Recorded, config: "RunConfig", mem: "MemoryEstimate", tokenizer: str) -> float:
    """A recorded rate -> training sequences per second for this config."""
    seq = mem.seq_len + 1
    if rec.unit == "episodes/s":
        cfg = config.model.config
        per_seq = (mem.seq_len - cfg.context_size + 1) * (1 - 1 / cfg.holdout_every)
        return rec.value / per_seq
    if rec.unit == "bytes/s":
        return rec.value / (seq * BYTES_PER_TOKEN.get(tokenizer, 4.0))
    return rec.value / seq


def samples_per_second(config: "RunConfig", mem: "MemoryEstimate", device: "Device", count: int,
                       tokenizer: str) -> tuple[float | None, str]:
    """(training sequences per second for the whole run, where that figure comes from)."""
    family = config.model.family
    recorded = next((r for r in RECORDED if _matches(r, config)), None)
    memory_family = mem.flops_per_sample is None
    if memory_family:
        rec = recorded or next((r for r in RECORDED if r.family == family), None)
        if rec is None:
            return None, "no recorded figure for this family"
        note = rec.source if rec is recorded else f"{rec.source}; nearest recorded shape"
        if device.memory is not None:
            note += "; the family computes on the host CPU, so GPUs add no speed (DDP ranks would)"
        return _per_sample(rec, config, mem, tokenizer) * count, note
    if device.memory is None:
        if recorded is not None:
            return _per_sample(recorded, config, mem, tokenizer), recorded.source
        ref_rate = _reference_cpu_flops()
        if ref_rate is None:
            return None, "no recorded CPU figure to scale"
        return ref_rate / mem.flops_per_sample, (f"FLOP estimate: {ref_rate / 1e9:.1f} GFLOP/s, what the recorded "
                                                 "transformer:tiny run achieved on the CPU")
    if device.peak_flops is None:
        return None, f"no FLOP peak for {device.name}"
    rate = device.peak_flops * ASSUMED_MFU * count / mem.flops_per_sample
    return rate, (f"FLOP estimate: {mem.flops_per_sample:.3g} FLOP/sequence at an assumed {ASSUMED_MFU:.0%} MFU "
                  f"of {device.peak_flops / 1e12:,.0f} TFLOP/s x {count} (no GPU run recorded)")


def _reference_cpu_flops() -> float | None:
    """FLOP/s of the recorded CPU transformer run (its config rebuilt on the meta device)."""
    import torch

    from nightshift.models.protocol import Vocab
    from nightshift.models.registry import resolve

    spec = resolve("transformer:tiny")
    with torch.device("meta"):
        model = spec.config.build(Vocab("gpt2", 50257, 50256))
    return CPU_REFERENCE.value / (spec.config.seq_len + 1) * model.train_flops_per_sample()
