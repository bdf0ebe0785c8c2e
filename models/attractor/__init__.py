"""Attractor dynamics: a window of token states relaxes down a learned energy landscape (no attention).

Origin: BoggersTheLLM (`TorchAttractorLanguageModel`); spec in shared/specs/attractor.md.
"""

from models.attractor.config import Config
from models.attractor.model import AttractorLM
from models.protocol import Flavor

SUMMARY = "attractor dynamics: K-step energy relaxation of a W-token window, linear readout; sleeps by replay"

# The original trains with plain Adam (lr 1e-3, clip 1.0) and no schedule: no decay, no warmup.
_TRAIN = {"lr": 1e-3, "weight_decay": 0.0, "betas": (0.9, 0.999), "warmup_steps": 0, "grad_clip": 1.0,
          "schedule": "constant"}

_A1 = Config(d_model=128, n_waves=4, window=8, steps=16)

FLAVORS: dict[str, Flavor] = {
    "debug": Flavor(
        model=Config(d_model=32, n_waves=4, window=4, steps=4, replay_capacity=32, replay_batch=8,
                     eval_window=32),
        train={**_TRAIN, "batch_size": 8},
        summary="D 32, H 4, W 4, K 4: for tests",
    ),
    "a1": Flavor(
        model=_A1,
        train={**_TRAIN, "batch_size": 64},
        summary="the original's published run: D 128, H 4, W 8, K 16, detached steps (faithful)",
    ),
    "a1-unroll": Flavor(
        model=Config(d_model=128, n_waves=4, window=8, steps=16, gradients="unroll"),
        train={**_TRAIN, "batch_size": 64},
        summary="a1 with backprop through all K steps (embeddings and coupling learn)",
    ),
    "default": Flavor(
        model=Config(d_model=512, n_waves=8, window=6, steps=32),
        train={**_TRAIN, "batch_size": 16},
        summary="the original's CLI defaults: D 512, H 8, W 6, K 32, detached steps",
    ),
}
DEFAULT_FLAVOR = "a1"

__all__ = ["Config", "FLAVORS", "DEFAULT_FLAVOR", "SUMMARY", "AttractorLM"]
