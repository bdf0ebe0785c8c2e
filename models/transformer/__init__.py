"""Transformer baseline: a good decoder-only GPT, so comparisons never flatter the experiments."""

from nightshift.models.protocol import Flavor
from nightshift.models.transformer.config import Config
from nightshift.models.transformer.model import Transformer

SUMMARY = "decoder-only GPT baseline (pre-norm, RoPE, SDPA, tied embeddings); the control, never sleeps"

_TRAIN = {"lr": 1e-3, "weight_decay": 0.1, "betas": (0.9, 0.95), "warmup_steps": 100, "grad_clip": 1.0}

FLAVORS: dict[str, Flavor] = {
    "debug": Flavor(
        model=Config(n_layer=2, n_head=2, d_model=64, seq_len=64),
        train={**_TRAIN, "batch_size": 8, "warmup_steps": 10},
        summary="2 layers, d 64, context 64: for tests",
    ),
    "tiny": Flavor(
        model=Config(n_layer=4, n_head=4, d_model=128, seq_len=256),
        train={**_TRAIN, "batch_size": 16},
        summary="4 layers, d 128, context 256: laptop runs",
    ),
    "small": Flavor(
        model=Config(n_layer=6, n_head=6, d_model=384, seq_len=256),
        train={**_TRAIN, "lr": 6e-4, "batch_size": 32},
        summary="6 layers, d 384, 6 heads",
    ),
    "gpt2-124m": Flavor(
        model=Config(n_layer=12, n_head=12, d_model=768, seq_len=1024, norm="layernorm", positions="learned"),
        train={**_TRAIN, "lr": 6e-4, "batch_size": 16, "warmup_steps": 700, "grad_accum": 4},
        summary="GPT-2 small: 12 layers, d 768, 12 heads, context 1024",
    ),
}
DEFAULT_FLAVOR = "tiny"

__all__ = ["Config", "FLAVORS", "DEFAULT_FLAVOR", "SUMMARY", "Transformer"]
