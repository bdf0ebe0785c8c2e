"""Holographic associative memory over Cl(3,1) context keys (the `holographic_v4` lineage).

Fixed seeded token embeddings are 4x4 real matrices (even multivectors of
Cl(3,1)). Training stores (key, vorticity signature, next token) episodes in
a bounded store; prediction is an exact kNN vote plus a prototype prior,
mixed with a bigram backoff into a distribution over the whole vocabulary.
Sleep consolidates episodes into prototypes (Non-REM) and recombines
prototypes into schemas (REM). See each module and /shared/specs/holographic.md.

Two key functions (keys.py):
- faithful (base, phi, short, long, giant, tiny): the spec's key, the Grace-projected
  product of all context_size embeddings, voted with the spec's cosine kernel. It has
  no locality (one changed token anywhere: cosine ~0.5), so its vote adds ~nothing
  beyond exact repeats.
- suffix (suffix, suffix-store): multi-scale suffix keys, the Grace-projected products
  of the last 1, 2, 3, 4, 6, 8, 16, 32 tokens, 8 even coefficients per scale, weighted
  by 0.8^j and concatenated (64 floats). Windows sharing their last L tokens share
  every block of scale <= L: shared recent context = neighbours, nearer the more is
  shared. Retrieval is still one exact inner product over the store; the vote then
  groups neighbours by matched depth (how many scales match exactly) and interpolates
  the depths like PPM (chain.py). `suffix` also keeps a reading memory (reading.py): the
  positions already read in the same text (up to 4096 tokens back) vote like stored
  episodes, and its depth 0 is the window's token counts. It is causal and adapts
  nothing (no count, weight or stored key changes while scoring).

Ablations (models/protocol.py): `ablatable = ("memory", "prototypes")`. "memory" off:
no stored neighbours, no reading memory, no prototypes: the bigram backoff alone.
"prototypes" off: no prototypes and no schemas (the kNN vote and reading memory stay).
Under an ablation the mixture is REFIT with the same parts off, on the same held-out
TRAINING windows (never validation): the figure is the best model without the part,
not the full model with a hole in it. Sleep always runs with every part on.

Device rule (one rule for every tensor):
- module buffers (embeddings, bound targets, the row hash) live on the model's device
  (`model.to(device)`); token ids are moved there and keys are computed there;
- the long-term store lives where `store_device` says: "host" (CPU memory; queries
  are moved there for retrieval), "model" (the model's device, e.g. CUDA; moved
  there once, explicitly, retrieval runs there in query blocks and key tiles), or
  "auto" (the default): the model's device when that device is not the CPU and the
  store at its full size (max_attractors rows x the footprint's bytes per row) takes
  at most half of that device's total memory (a device whose memory cannot be read
  is taken to fit), else the host. On the CPU the three are the same. One function
  decides (placement.store_placement), for the model and for the planner's footprint;
- everything else in memory (episodic buffer, held-out windows, bigram counts,
  prototypes, H) lives on the host; evidence is moved to the host explicitly
  (`.cpu()`) and mixed there; checkpoints hold host tensors only;
- outputs of score / log_probs / generate come back on the input's device.
"""

from dataclasses import replace

from nightshift.models.holographic.algebra import PHI
from nightshift.models.holographic.config import Config
from nightshift.models.holographic.model import HolographicModel
from nightshift.models.protocol import Flavor

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
