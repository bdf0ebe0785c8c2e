"""Attractor family config: every decision the spec lists is a field here.

Field defaults are the original's numbers (BoggersTheLLM `sandbox.py`), with
its defects fixed where the spec calls them bugs (per-row breaks, no entropy
floor / repulsion loss terms, plain NLL in evaluation). The one defect that is
also a design choice, detached vs unrolled gradients, is a field that the
flavors set explicitly (`a1` is faithful, `a1-unroll` is the fix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from nightshift.models.errors import ModelConfigError

if TYPE_CHECKING:
    from nightshift.models.attractor.model import AttractorLM
    from nightshift.models.footprint import Footprint, RunShape
    from nightshift.models.protocol import Vocab

MAX_WINDOW = 4096  # hard bound on W: the W*D -> V readout and the per-position eval windows scale with it


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    # --- shapes
    d_model: int = 128  # D: state width of one window position
    n_waves: int = 4  # H: the state is H contiguous waves of width D / H, each with its own energy head
    window: int = 8  # W: tokens relaxed together; the model's context length
    steps: int = 16  # K: outer relaxation steps per window

    # --- decisions (spec "Defects of the original")
    gradients: Literal["detach", "unroll"] = "detach"  # detach: autograd restarts every step (the original);
    #   unroll: backprop through all K steps (embeddings and coupling learn)
    breaks: Literal["row", "batch", "off"] = "row"  # row: each window breaks on its own tension;
    #   batch: the original (.any() over the batch, batch-mean tension); off: no breaks
    readout: Literal["last", "all_positions"] = "last"  # all_positions: causal coupling, every position
    #   predicts its next token (a variant; "last" is the original)
    early_exit_eps: float = 0.0  # stop relaxing a window when its max |dS| < eps (0 = always K steps)
    checkpoint_every: int = 0  # activation checkpointing over segments of this many steps (0 = off)
    impl: Literal["fused", "autograd"] = "fused"  # fused: hand-written backward of each step (fast);
    #   autograd: the same math as plain tensor ops (readable reference; identical results)
    compile_relaxation: bool = False  # torch.compile the training relaxation step into fused kernels
    #   (compiled.py): ~2x faster relaxation after a one-off compile (tens of seconds on a small CPU, cached on
    #   disk by inductor). Not `compile`: that is the trainer's whole-model switch
    readout_precision: Literal["auto", "float32", "bfloat16"] = "float32"  # training matmuls of the readouts;
    #   auto: bfloat16 where the device multiplies it natively (readout.py); evaluation is always float32

    # --- dynamics (the original's constants)
    eta: float = 0.09  # energy gradient step size
    gamma_init: float = 0.52  # coupling decay with distance, softplus-parametrised
    dt_init: float = 0.09  # coupling step; c = softplus(dt_raw) * softplus(scale_raw)
    scale_init: float = 0.07
    asym_strength: float = 1.25  # left/right contrast: 1 + strength * tanh(a) * sign(j - i)
    asym_floor: float = 0.2  # the clamp on that factor
    norm_min: float = 1e-3  # per-wave norm clamp before normalisation
    norm_max: float = 12.0
    tension_lambda: float = 0.35  # weight of (1 - cos) in the tension
    break_high: float = 0.18  # break when tension > this
    break_low: float = 0.08  # low-tension escape when tension < this ...
    break_patience: int = 4  # ... for this many consecutive steps
    break_alpha: float = 0.1  # alpha = break_alpha * clamp((break_ref - T) / break_ref, 0.1, 2)
    break_ref: float = 0.12
    tau_init: float = 0.12  # readout temperature, softplus-parametrised and learnable

    # --- loss
    traj_margin: float = 0.2  # L_traj = relu(margin - cos(S_t, sg S_t+1) + cos(S_t, sg S_t+1 shuffled))
    traj_weight: float = 1.0
    window_ce_weight: float = 0.2  # CE of the W*D -> V readout (what evaluation scores)
    last_ce_weight: float = 0.15  # CE of the D -> V head on the last position (auxiliary)
    energy_weight: float = 1e-3  # * mean(E^2)

    # --- sleep (replay of high-tension windows)
    replay_capacity: int = 256  # windows kept since the last sleep (highest final tension wins)
    replay_steps: int = 4  # optimizer updates per sleep
    replay_batch: int = 64  # windows per replay update

    # --- evaluation and generation
    eval_window: int = 256  # tokens `score` takes per row (each is relaxed in its own W-window)
    eval_chunk_floats: int = 1 << 24  # bound on logits floats per scoring chunk (memory)
    gen_top_k: int = 28  # generation defaults of the original
    gen_repeat_penalty: float = 1.35  # subtracted from the logits of each of the last gen_repeat_last ids
    gen_repeat_last: int = 4

    @property
    def wave_dim(self) -> int:
        return self.d_model // self.n_waves

    def validate(self, vocab_size: int | None = None) -> None:
        """Every field, before any tensor is allocated; one line naming the bad value."""
        for name in ("d_model", "n_waves", "window", "eval_window", "replay_batch", "eval_chunk_floats",
                     "break_patience", "gen_repeat_last"):
            if getattr(self, name) < 1:
                raise ModelConfigError(f"attractor {name}={getattr(self, name)} must be >= 1")
        if self.steps < 1:
            raise ModelConfigError(f"attractor steps (K)={self.steps} must be >= 1 (relaxation steps per window)")
        if self.d_model % self.n_waves:
            raise ModelConfigError(
                f"attractor d_model (D)={self.d_model} is not divisible by n_waves (H)={self.n_waves}; "
                f"choose D a multiple of H"
            )
        if self.window > MAX_WINDOW:
            raise ModelConfigError(f"attractor window (W)={self.window} exceeds the hard bound {MAX_WINDOW}")
        for name in ("checkpoint_every", "replay_capacity", "replay_steps", "gen_top_k"):
            if getattr(self, name) < 0:
                raise ModelConfigError(f"attractor {name}={getattr(self, name)} must be >= 0")
        for name in ("eta", "early_exit_eps", "traj_margin", "traj_weight", "window_ce_weight",
                     "last_ce_weight", "energy_weight", "asym_strength", "asym_floor", "gen_repeat_penalty",
                     "break_alpha", "tension_lambda"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ModelConfigError(f"attractor {name}={value} must be a finite number >= 0")
        for name in ("gamma_init", "dt_init", "scale_init", "tau_init", "norm_min", "norm_max", "break_ref"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ModelConfigError(f"attractor {name}={value} must be a finite number > 0")
        if self.norm_min >= self.norm_max:
            raise ModelConfigError(f"attractor norm_min={self.norm_min} must be < norm_max={self.norm_max}")
        if self.break_low > self.break_high:
            raise ModelConfigError(f"attractor break_low={self.break_low} must be <= break_high={self.break_high}")
        if self.window_ce_weight == 0 and self.readout == "last":
            raise ModelConfigError("attractor window_ce_weight=0 would leave the evaluated readout untrained; use > 0")
        if self.gradients not in ("detach", "unroll"):
            raise ModelConfigError(f"attractor gradients={self.gradients!r}; accepted: detach, unroll")
        if self.breaks not in ("row", "batch", "off"):
            raise ModelConfigError(f"attractor breaks={self.breaks!r}; accepted: row, batch, off")
        if self.readout_precision not in ("auto", "float32", "bfloat16"):
            raise ModelConfigError(f"attractor readout_precision={self.readout_precision!r}; "
                                   f"accepted: auto, float32, bfloat16")
        if not isinstance(self.compile_relaxation, bool):
            raise ModelConfigError(f"attractor compile_relaxation={self.compile_relaxation!r}; accepted: true, false")
        if self.impl not in ("fused", "autograd"):
            raise ModelConfigError(f"attractor impl={self.impl!r}; accepted: fused, autograd")
        if self.readout not in ("last", "all_positions"):
            raise ModelConfigError(f"attractor readout={self.readout!r}; accepted: last, all_positions")
        if self.readout == "all_positions" and self.breaks == "batch":
            raise ModelConfigError("attractor breaks='batch' mixes windows and cannot be causal; "
                                   "use breaks=row or off with readout=all_positions")
        if vocab_size is not None and vocab_size < 2:
            raise ModelConfigError(f"attractor needs a vocabulary of >= 2 tokens, got {vocab_size}")

    def check(self) -> None:
        """The checks that need no vocabulary (ModelConfig protocol)."""
        self.validate()

    def build(self, vocab: "Vocab") -> "AttractorLM":
        from nightshift.models.attractor.model import AttractorLM

        self.validate(vocab.size)
        return AttractorLM(self, vocab)

    def footprint(self, vocab: "Vocab", shape: "RunShape") -> "Footprint":
        """Memory of one rank (models/footprint.py): weights + AdamW, and a rough count of the relaxation's
        activations (all K steps kept when unrolled) plus the readout logits, or one scoring chunk if larger."""
        from nightshift.models.footprint import gradient_footprint, meta_build

        model = meta_build(self, vocab)
        B, T = shape.per_rank_batch, model.train_seq_len
        kept = self.steps if self.gradients == "unroll" else 1
        train = B * T * self.window * self.d_model * 4 * 6 * kept + B * T * vocab.size * 12
        note = f"rough: B x T x W x D x 24 B x {'K' if kept > 1 else '1'} + logits, B={B} T={T}"
        return gradient_footprint(model, shape, max(train, 4 * self.eval_chunk_floats), note)
