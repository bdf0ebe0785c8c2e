"""Holographic associative memory over Cl(3,1) context keys (the `holographic_v4` lineage).

Fixed seeded token embeddings are 4x4 real matrices; a context window's key
is the Grace-damped, normalised product of its embeddings (16 Clifford
coefficients). Training stores (key, vorticity signature, next token)
episodes in a bounded store; prediction is an exact kNN vote plus a
prototype prior, mixed with a bigram backoff into a distribution over the
whole vocabulary. Sleep consolidates episodes into prototypes (Non-REM) and
recombines prototypes into schemas (REM). See docs in each module and
/shared/specs/holographic.md.
"""

from dataclasses import replace

from models.holographic.algebra import PHI
from models.holographic.config import Config
from models.holographic.model import HolographicModel
from models.protocol import Flavor

SUMMARY = "Cl(3,1) holographic memory: exact kNN over context keys + prototypes/schemas, bigram backoff (no gradients)"

_TRAIN = {"batch_size": 16, "sleep_every": 1_000_000}
_SUFFIX = Config(context_size=32, key_scales=(1, 2, 3, 4, 6, 8, 16, 32), key_decay=0.8, noise_std=1.0, vote="depth",
                 reading_window=4096, reading_k=64, train_seq_multiple=256, holdout_every=8)

FLAVORS: dict[str, Flavor] = {
    "base": Flavor(
        model=Config(context_size=64),
        train=_TRAIN,
        summary="context 64, 1M episodes, noise_std 0.3",
    ),
    "phi": Flavor(
        model=Config(context_size=64, noise_std=PHI**-3),
        train=_TRAIN,
        summary="the original's default embedding spread noise_std = phi^-3",
    ),
    "short": Flavor(
        model=Config(context_size=4, knn_k=64, train_seq_multiple=128),
        train={"batch_size": 16, "sleep_every": 1_000_000},
        summary="context 4: near-exact matches act as a 5-gram; where memory adds most over the backoff on pg19",
    ),
    "long": Flavor(
        model=Config(context_size=512),
        train={"batch_size": 4, "sleep_every": 1_000_000},
        summary="context 512",
    ),
    "giant": Flavor(
        model=Config(context_size=4096, train_seq_multiple=4),
        train={"batch_size": 2, "sleep_every": 1_000_000},
        summary="context 4096, as in the Modal giant run (pg19)",
    ),
    "suffix": Flavor(
        model=_SUFFIX,
        train={"batch_size": 4, "sleep_every": 1_000_000},
        summary="locality: multi-scale suffix keys (1..32 tokens), depth vote, reading memory of 4096 tokens",
    ),
    "suffix-store": Flavor(
        model=replace(_SUFFIX, reading_window=0),
        train={"batch_size": 4, "sleep_every": 1_000_000},
        summary="suffix keys and depth vote over the training store only (no reading memory)",
    ),
    "tiny": Flavor(
        model=Config(context_size=16, max_attractors=20_000, episodic_buffer_size=2048, holdout_every=16,
                     holdout_size=1024, rem_cycles=2, rem_pairs=32),
        train={"batch_size": 8, "sleep_every": 20_000},
        summary="small memory for smoke tests and CI",
    ),
}
DEFAULT_FLAVOR = "base"

__all__ = ["DEFAULT_FLAVOR", "FLAVORS", "SUMMARY", "Config", "HolographicModel"]
