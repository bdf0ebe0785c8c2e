"""Recorded measurements the pre-flight plan uses, each with where it was measured (benchmarks/results/).

When a run's family and shape match a recorded figure on the same kind of
device, the plan uses it; a gradient family elsewhere gets a FLOP estimate
(train_flops_per_sample x samples / (device peak x ASSUMED_MFU), or on a CPU
the FLOP/s a recorded run achieved); a memory family on a GPU uses its host
CPU figure, because today it computes on the host. The plan says which.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nightshift.orchestrator.planning.memory import MemoryEstimate
    from nightshift.orchestrator.planning.preflight import Device
    from nightshift.orchestrator.runs.config import RunConfig

ASSUMED_MFU = 0.35  # an assumption, not a measurement: no GPU run has been recorded yet
SHARD_OVERHEAD = 1.02  # Arrow stream framing + per-document columns over 2 or 4 bytes per token
# Generated from the benchmarks' recorded results (`python -m benchmarks tables`), shipped with the package:
# no figure here is typed by hand. CI fails when it differs from benchmarks/results/.
RECORDED_FILE = Path(__file__).with_name("recorded.json")


@dataclass(frozen=True, slots=True)
class Recorded:
    family: str
    match: tuple[tuple[str, Any], ...]  # model config fields that must be equal
    unit: str  # "episodes/s", "bytes/s", "tokens/s"
    value: float
    source: str
    flops_per_sample: float | None = None  # gradient families: what the recorded run computed per sequence


def _load() -> dict[str, Any]:
    return json.loads(RECORDED_FILE.read_text()) if RECORDED_FILE.exists() else {}


_DATA = _load()
RECORDED: tuple[Recorded, ...] = tuple(
    Recorded(r["family"], tuple(sorted(r["match"].items())), r["unit"], float(r["value"]), r["source"],
             r.get("train_flops_per_sample")) for r in _DATA.get("rates", []))
BYTES_PER_TOKEN: dict[str, float] = {"bytes": 1.0, **_DATA.get("bytes_per_token", {}).get("value", {})}
BYTES_PER_TOKEN_SOURCE = _DATA.get("bytes_per_token", {}).get("source", "none recorded")
# Chunked checkpoint writes to local disk (state_dict() copies come on top); None: no recorded figure.
CHECKPOINT_BYTES_PER_S: float | None = _DATA.get("checkpoint_bytes_per_s", {}).get("value")
# Holographic phase costs measured by benchmarks/giant_rehearsal.py (its calibration, on this machine's CPU):
# the exact search's (query x stored row)/s on the host, the per-query cost beside the scan (backoff, mixing),
# the per-observe-call and per-generated-token overheads, and a sleep's fixed cost, its buffer^2 clustering cost
# and its cost per held-out window (the mixture refit scores every held-out window over the whole vocabulary).
_COSTS = _DATA.get("holographic_costs", {})
_COST = _COSTS.get("value", {})
REHEARSAL_SOURCE = _COSTS.get("source", "no recorded rehearsal")
HOST_PAIRS_PER_S: float | None = _COST.get("host_pairs_per_s")
QUERY_S: float | None = _COST.get("query_s")
OBSERVE_CALL_S: float | None = _COST.get("observe_call_s")
OBSERVE_TOKEN_S: float | None = _COST.get("observe_token_s")
GENERATE_TOKEN_S: float | None = _COST.get("generate_token_s")
SLEEP_FIXED_S: float = _COST.get("sleep_fixed_s", 0.0)
SLEEP_PAIR_S: float | None = _COST.get("sleep_pair_s")
SLEEP_HELD_S: float = _COST.get("sleep_held_s", 0.0)
SEED_METRICS_S: float = _COST.get("seed_metrics_s", 0.0)  # per evaluation, beside the seed queries' scans
# calibration key -> the name above (the rehearsal plans with its own fresh calibration through these)
COST_NAMES = {"host_pairs_per_s": "HOST_PAIRS_PER_S", "query_s": "QUERY_S", "observe_call_s": "OBSERVE_CALL_S",
              "observe_token_s": "OBSERVE_TOKEN_S", "generate_token_s": "GENERATE_TOKEN_S",
              "sleep_fixed_s": "SLEEP_FIXED_S", "sleep_pair_s": "SLEEP_PAIR_S",
              "sleep_held_s": "SLEEP_HELD_S", "seed_metrics_s": "SEED_METRICS_S"}
# An assumption, not a measurement: an exact (Q, 16) @ (16, N) search is 32 FLOP per (query x row); an H100's
# ~67 fp32 TFLOP/s would do 2e12 pairs/s, and 10 % of that is assumed until a GPU run is recorded.
ASSUMED_GPU_PAIRS_PER_S = 2e11
# FLOP/s a recorded transformer run achieved on the CPU: scales CPU estimates of other shapes.
CPU_REFERENCE = next((r for r in RECORDED if r.family == "transformer" and r.flops_per_sample), None)


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
        if device.memory is not None and mem.store_on == "device":
            note += "; the host CPU's rate: observe computes keys on the GPU, but no GPU run is recorded"
        elif device.memory is not None:
            note += "; the store is on the host, so GPUs add no speed (DDP ranks would)"
        return _per_sample(rec, config, mem, tokenizer) * count, note
    if device.memory is None:
        if recorded is not None:
            return _per_sample(recorded, config, mem, tokenizer), recorded.source
        ref_rate = _reference_cpu_flops()
        if ref_rate is None:
            return None, "no recorded CPU figure to scale"
        return ref_rate / mem.flops_per_sample, (f"FLOP estimate: {ref_rate / 1e9:.1f} GFLOP/s, what the recorded "
                                                 f"transformer run achieved on the CPU ({CPU_REFERENCE.source})")
    if device.peak_flops is None:
        return None, f"no FLOP peak for {device.name}"
    rate = device.peak_flops * ASSUMED_MFU * count / mem.flops_per_sample
    return rate, (f"FLOP estimate: {mem.flops_per_sample:.3g} FLOP/sequence at an assumed {ASSUMED_MFU:.0%} MFU "
                  f"of {device.peak_flops / 1e12:,.0f} TFLOP/s x {count} (no GPU run recorded)")


def _reference_cpu_flops() -> float | None:
    """FLOP/s of the recorded CPU transformer run: its tokens/s over its sequence length, x its FLOPs/sequence."""
    if CPU_REFERENCE is None:
        return None
    seq_len = dict(CPU_REFERENCE.match).get("seq_len")
    return CPU_REFERENCE.value / (seq_len + 1) * CPU_REFERENCE.flops_per_sample if seq_len else None
