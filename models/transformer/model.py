"""Decoder-only GPT: pre-norm, rotary positions, SDPA causal attention, tied embeddings.

Kept close to nanoGPT's `model.py` so readers can check it line by line; the
differences (RMSNorm, RoPE, optional SwiGLU, padded vocab) are the modern
defaults a fair baseline needs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nightshift.models.protocol import LanguageModel, Vocab, float32
from nightshift.models.transformer.config import Config
from nightshift.models.transformer.loss import linear_cross_entropy


def _norm(cfg: Config, dim: int) -> nn.Module:
    return nn.RMSNorm(dim) if cfg.norm == "rmsnorm" else nn.LayerNorm(dim)


def rope_tables(seq_len: int, head_dim: int, base: float) -> tuple[Tensor, Tensor]:
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # (hd/2,)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # (T, hd/2)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x (B, H, T, hd): rotate channel pairs (first half, second half) by position angles."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, H, T, hd/2) each
    cos, sin = cos[: x.shape[-2]].to(x.dtype), sin[: x.shape[-2]].to(x.dtype)  # (T, hd/2)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout
        self.rope = cfg.positions == "rope"

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)  # (B, T, D) each
        q, k, v = (t.view(B, T, self.n_head, D // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        if self.rope:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, hd)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))  # (B, T, D)


class MLP(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.swiglu = cfg.mlp == "swiglu"
        hidden = int(cfg.mlp_ratio * cfg.d_model * (2 / 3 if self.swiglu else 1))
        self.up = nn.Linear(cfg.d_model, hidden * (2 if self.swiglu else 1), bias=False)
        self.down = nn.Linear(hidden, cfg.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.up(x)  # (B, T, hidden[*2])
        if self.swiglu:
            gate, val = h.chunk(2, dim=-1)
            h = F.silu(gate) * val
        else:
            h = F.gelu(h, approximate="tanh")
        return self.down(h)  # (B, T, D)


class Block(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.norm1, self.attn = _norm(cfg, cfg.d_model), Attention(cfg)
        self.norm2, self.mlp = _norm(cfg, cfg.d_model), MLP(cfg)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


class Transformer(LanguageModel):
    family = "transformer"
    trains_by_gradient = True

    def __init__(self, cfg: Config, vocab: Vocab) -> None:
        super().__init__(vocab)
        self.cfg = cfg
        pad = cfg.pad_vocab_to
        self.padded_vocab = (vocab.size + pad - 1) // pad * pad  # rows past vocab.size are never predicted
        self.embed = nn.Embedding(self.padded_vocab, cfg.d_model)
        self.pos = nn.Embedding(cfg.seq_len, cfg.d_model) if cfg.positions == "learned" else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm_f = _norm(cfg, cfg.d_model)
        cos, sin = rope_tables(cfg.seq_len, cfg.d_model // cfg.n_head, cfg.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        mask = torch.zeros(self.padded_vocab)  # (V_padded,): padding ids get probability 0 and gradient 0
        mask[vocab.size :] = float("-inf")
        self.register_buffer("vocab_mask", mask, persistent=False)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith(("proj.weight", "down.weight")):
                nn.init.normal_(p, 0.0, cfg.init_std / math.sqrt(2 * cfg.n_layer))

    def _init(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, self.cfg.init_std)

    @property
    def context_length(self) -> int:
        return self.cfg.seq_len

    def hidden(self, idx: Tensor) -> Tensor:
        """idx (B, T) -> final normalised hidden states (B, T, D)."""
        T = idx.shape[1]
        if T > self.cfg.seq_len:
            raise ValueError(f"sequence of {T} tokens exceeds the model's context of {self.cfg.seq_len}")
        x = self.embed(idx)  # (B, T, D)
        if self.pos is not None:
            x = x + self.pos(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x, self.rope_cos, self.rope_sin)
        return self.norm_f(x)

    def padded_logits(self, idx: Tensor) -> Tensor:
        """(B, T, V_padded) fp32 logits, padding ids at -inf.

        Masking in place instead of slicing to V avoids a strided copy of the
        whole logits tensor forward and a zero-fill + copy backward (5-8 % of a
        CPU step at gpt2's vocab); in place is safe since the matmul keeps its
        inputs, not its output, for backward.
        """
        logits = (self.hidden(idx) @ self.embed.weight.T).float()  # tied weights: (B, T, V_padded)
        return logits.add_(self.vocab_mask)

    def logits(self, idx: Tensor) -> Tensor:
        """idx (B, T) -> (B, T, V) logits over the real vocabulary (padding rows dropped)."""
        return (self.hidden(idx) @ self.embed.weight.T)[..., : self.vocab.size]  # (B, T, V)

    def train_flops_per_sample(self) -> float:
        """PaLM's count (appendix B): 6 N per token for the matmuls (N without the embedding lookup,
        with the tied output head), plus 12 L T d per token for attention scores and values."""
        cfg, T = self.cfg, self.cfg.seq_len
        n_matmul = sum(p.numel() for name, p in self.named_parameters() if name != "embed.weight" and p.ndim >= 2
                       and not name.startswith("pos."))
        n_matmul += self.padded_vocab * cfg.d_model  # the tied head is a matmul, the lookup is not
        return float(T * (6 * n_matmul + 12 * cfg.n_layer * T * cfg.d_model))

    def forward(self, tokens: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        h = self.hidden(tokens[:, :-1])  # (B, T, D)
        # never the whole (B*T, V) logits at once: models/transformer/loss.py
        loss = linear_cross_entropy(h.flatten(0, 1), self.embed.weight, self.vocab_mask, tokens[:, 1:].flatten())
        return loss, {}

    def log_probs(self, tokens: Tensor) -> Tensor:
        return F.log_softmax(self.logits(tokens).float(), dim=-1)  # (B, T, V)

    @float32
    def score(self, tokens: Tensor) -> Tensor:
        logits = self.padded_logits(tokens[:, :-1])  # (B, T, V_padded)
        nll = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")
        return -nll.view(tokens.shape[0], -1)  # (B, T)
