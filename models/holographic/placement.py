"""Where the long-term episode store lives: the one rule behind `store_device` (model and planner alike).

"host": CPU memory (queries travel there). "model": the model's device. "auto" (the default): the model's
device when that device is not the CPU and the store at its full size (max_attractors rows x the family's
bytes per row) takes at most STORE_SHARE of that device's total memory; a device whose memory cannot be read
(None) is taken to fit. Otherwise the host. On the CPU the three are the same memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from nightshift.models.holographic.memory import episode_columns
from nightshift.models.holographic.store import Reservoir
from nightshift.models.protocol import Vocab

if TYPE_CHECKING:
    from nightshift.models.holographic.config import Config

STORE_SHARE = 0.5  # "auto": the full store may take at most this share of the device's total memory


def full_store_bytes(config: "Config") -> int:
    """The store at max_attractors rows, from the family's own columns (+ priority)."""
    return config.max_attractors * Reservoir(1, episode_columns(config.layout.dim)).bytes_per_row()


def device_memory(device: torch.device | str) -> float | None:
    """Total memory of an accelerator in bytes, or None where it cannot be read (the CPU, mps, a test's fake)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return float(torch.cuda.get_device_properties(device).total_memory)
    return None


def store_placement(config: "Config", vocab: Vocab, device: torch.device | str,
                    device_memory: float | None) -> tuple[str, str]:
    """("device" | "host", the reason in one sentence) for the store of a model on `device`.

    `vocab` is unused today (a stored row does not depend on it) and kept so a vocabulary-sized column could
    join the rule. `device_memory`: the device's total bytes, None = unknown (taken to fit).
    """
    del vocab
    device = torch.device(device)
    choice = config.store_device
    if device.type == "cpu":
        return "host", f"store_device={choice}: the model is on the CPU, so host and model memory are the same"
    if choice == "host":
        return "host", "store_device=host: the store stays in host memory; queries travel there"
    if choice == "model":
        return "device", f"store_device=model: the store lives on the model's {device.type} device"
    need = full_store_bytes(config)
    if device_memory is None:
        return "device", (f"store_device=auto: the full store ({need / 2**30:.2f} GiB at max_attractors="
                          f"{config.max_attractors:,}) goes on the {device.type} device, whose memory is unknown"
                          " (taken to fit)")
    limit = STORE_SHARE * device_memory
    where = "device" if need <= limit else "host"
    verb = "fits in" if where == "device" else "exceeds"
    return where, (f"store_device=auto: the full store ({need / 2**30:.2f} GiB at max_attractors="
                   f"{config.max_attractors:,}) {verb} half of the {device.type} device's "
                   f"{device_memory / 2**30:.1f} GiB, so it lives on the {where}")
