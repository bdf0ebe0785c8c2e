"""Attractor dynamics: a window of token states relaxes down a learned energy landscape (no attention).

Origin: BoggersTheLLM (`TorchAttractorLanguageModel`); spec in shared/specs/attractor.md.

Mechanisms that can be switched off for evaluation (`ablatable`): "relaxation" (predictions read out
the embedded window with K = 0 steps, same trained weights).

Devices: every parameter and buffer lives on the model's device (`model.to(device)` moves them all);
inputs (token ids) are moved there by the caller (trainer, evaluator) and every output (loss,
metrics, log-probs, scores, generated ids) is on it. The sleep replay buffer is extra state that
follows the device of the windows it is given. Nothing in the training or scoring path calls
`.cpu()`, `.item()` or builds a tensor without a device, so a CUDA step does not synchronise with
the host, with two exceptions that are part of the semantics: eager relaxation on the CPU skips the
break move when no window breaks (a shortcut), and early exit (`early_exit_eps > 0`) checks on the
host whether every window has converged. `compile_relaxation=True` compiles on CUDA too (Triton kernels);
that path is untested (no GPU was available), as is bfloat16 readout on CUDA.
"""

from nightshift.models.attractor.config import Config
from nightshift.models.attractor.model import AttractorLM
from nightshift.models.protocol import Flavor

SUMMARY = "attractor dynamics: K-step energy relaxation of a W-token window, linear readout; sleeps by replay"

# The original trains with plain Adam (lr 1e-3, clip 1.0) and no schedule: no decay, no warmup.
_TRAIN = {"lr": 1e-3, "weight_decay": 0.0, "betas": (0.9, 0.999), "warmup_steps": 0, "grad_clip": 1.0,
          "schedule": "constant"}

# Training speed: each step compiled into fused kernels, the readout's matmuls in bfloat16 where the
# hardware has it natively (evaluation stays float32); both are flags (compile_relaxation, readout_precision).
_FAST = {"compile_relaxation": True, "readout_precision": "auto"}
_A1 = Config(d_model=128, n_waves=4, window=8, steps=16, **_FAST)

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
        model=Config(d_model=128, n_waves=4, window=8, steps=16, gradients="unroll", **_FAST),
        train={**_TRAIN, "batch_size": 64},
        summary="a1 with backprop through all K steps (embeddings and coupling learn)",
    ),
    "default": Flavor(
        model=Config(d_model=512, n_waves=8, window=6, steps=32, **_FAST),
        train={**_TRAIN, "batch_size": 16},
        summary="the original's CLI defaults: D 512, H 8, W 6, K 32, detached steps",
    ),
}
DEFAULT_FLAVOR = "a1"

__all__ = ["Config", "FLAVORS", "DEFAULT_FLAVOR", "SUMMARY", "AttractorLM"]
