"""Device peak FLOP/s and model FLOP utilisation (MFU).

Peaks are dense bf16 tensor-core figures from the vendors' datasheets (no
sparsity); MFU = achieved model FLOP/s / peak. A device not in the table
(a CPU, an unknown GPU) has no peak, so MFU is not reported rather than
guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# name fragment (lower case, as torch.cuda.get_device_name reports it) -> dense bf16 FLOP/s
# First match wins: longer names before their prefixes ("h100 pcie" before "h100", "l40" before "l4").
PEAK_BF16: tuple[tuple[str, float], ...] = (
    ("h200", 989e12),
    ("h100 pcie", 756e12),
    ("h100 nvl", 835e12),
    ("h100", 989e12),  # SXM / HBM3 ("NVIDIA H100 80GB HBM3")
    ("a100", 312e12),
    ("l40s", 362e12),
    ("l40", 181e12),
    ("l4", 121e12),
    ("a10g", 125e12),
)


def device_peak_flops(device: torch.device | str) -> float | None:
    """Dense bf16 peak of `device`, or None (CPU, or a GPU not in PEAK_BF16)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return peak_for_name(torch.cuda.get_device_name(device))


def peak_for_name(name: str) -> float | None:
    lowered = name.lower()
    for fragment, peak in PEAK_BF16:
        if fragment in lowered:
            return peak
    return None


def mfu(flops_per_s: float, peak: float | None) -> float | None:
    return flops_per_s / peak if peak else None


@dataclass(frozen=True, slots=True)
class FlopsMeter:
    """Model FLOP/s of a run and its MFU, where the family counts its FLOPs and the device's peak is known."""

    per_sample: float | None  # training FLOPs per sample (None: the family does not count them)
    peak: float | None  # peak FLOP/s of all ranks' devices together (None: CPU or an unknown GPU)

    def metrics(self, samples_per_s: float) -> dict[str, float]:
        """`perf/flops_per_s` and `perf/mfu` at this rate (what is known of them)."""
        if not self.per_sample:
            return {}
        achieved = self.per_sample * samples_per_s
        row = {"perf/flops_per_s": achieved}
        ratio = mfu(achieved, self.peak)
        if ratio is not None:
            row["perf/mfu"] = ratio
        return row

    def result(self, samples: int, seconds: float) -> dict[str, float | None]:
        """The run's average FLOP/s and MFU over its training time (result.json)."""
        row = self.metrics(samples / max(seconds, 1e-9))
        return {"flops_per_s": row.get("perf/flops_per_s"), "mfu": row.get("perf/mfu")}
