"""Transformer baseline config: the control every experimental family is compared with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from nightshift.models.errors import ModelConfigError

if TYPE_CHECKING:
    from nightshift.models.footprint import Footprint, RunShape
    from nightshift.models.protocol import Vocab
    from nightshift.models.transformer.model import Transformer


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads; d_model must divide evenly
    d_model: int = 128  # residual stream width
    seq_len: int = 256  # context length in tokens (training windows and eval windows)
    mlp: Literal["gelu", "swiglu"] = "gelu"  # MLP flavour
    mlp_ratio: float = 4.0  # hidden width / d_model (SwiGLU uses 2/3 of it, as in Llama)
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"  # pre-norm type
    positions: Literal["rope", "learned"] = "rope"  # positional scheme
    rope_base: float = 10000.0
    dropout: float = 0.0  # no dropout by default (data is not repeated at our scales)
    pad_vocab_to: int = 64  # pad the embedding table to a multiple of this (tensor-core friendly)
    init_std: float = 0.02

    def validate(self) -> None:
        for name in ("n_layer", "n_head", "d_model", "seq_len", "pad_vocab_to"):
            if getattr(self, name) < 1:
                raise ModelConfigError(f"transformer {name}={getattr(self, name)} must be >= 1")
        if self.d_model % self.n_head:
            raise ModelConfigError(
                f"transformer d_model={self.d_model} is not divisible by n_head={self.n_head}"
            )
        if self.positions == "rope" and (self.d_model // self.n_head) % 2:
            raise ModelConfigError(
                f"transformer head size {self.d_model // self.n_head} must be even for rope positions"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ModelConfigError(f"transformer dropout={self.dropout} must be in [0, 1)")
        if self.mlp_ratio <= 0:
            raise ModelConfigError(f"transformer mlp_ratio={self.mlp_ratio} must be > 0")

    def check(self) -> None:
        """The checks that need no vocabulary (ModelConfig protocol)."""
        self.validate()

    def build(self, vocab: "Vocab") -> "Transformer":
        from nightshift.models.transformer.model import Transformer

        self.validate()
        return Transformer(self, vocab)

    def footprint(self, vocab: "Vocab", shape: "RunShape") -> "Footprint":
        """Memory of one rank (models/footprint.py): weights + AdamW, and activations by
        Korthikanti et al. 2022 with SDPA (no T^2 scores kept), or the eval logits if larger."""
        from nightshift.models.footprint import gradient_footprint, meta_build

        model = meta_build(self, vocab)
        B, T, V = shape.per_rank_batch, model.train_seq_len, model.padded_vocab
        per_token = 34 if shape.on_gpu else 68
        logits = B * T * V * (10 if shape.on_gpu else 12)  # logits, their fp32 copy and the gradient of the loss
        train = self.n_layer * per_token * B * T * self.d_model + logits
        evaluate = shape.eval_batch_size * T * V * 8  # forward only: logits + log-softmax
        note = f"formula: {self.n_layer} layers x {per_token} B x B x T x d + logits, B={B} T={T}"
        return gradient_footprint(model, shape, max(train, evaluate), note)
