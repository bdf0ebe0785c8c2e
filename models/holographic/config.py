"""Configuration of the holographic family; field names follow the giant-run flags where they map."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from nightshift.models.errors import ModelConfigError
from nightshift.models.holographic.keys import KeyLayout
from nightshift.models.protocol import Vocab

if TYPE_CHECKING:
    from nightshift.models.footprint import Footprint, RunShape
    from nightshift.models.holographic.model import HolographicModel

log = logging.getLogger(__name__)

STORE_POLICIES = ("reservoir", "ring")
VOTES = ("cosine", "depth")
STORE_DEVICES = ("auto", "host", "model")


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    context_size: int = 64  # tokens in a context window (--context-size); = context_length
    max_attractors: int = 1_000_000  # episodes the store keeps (--max-attractors)
    store_policy: Literal["reservoir", "ring"] = "reservoir"  # uniform sample of all seen, or most recent
    noise_std: float = 0.3  # spread of the seeded token embeddings (--noise-std)
    seed: int = 0  # embeddings and every random choice of the memory
    episodic_buffer_size: int = 8192  # episodes sampled uniformly between sleeps (--episodic-buffer-size)
    rem_cycles: int = 3  # REM recombination rounds per sleep (--rem-cycles); 0 = no schemas
    rem_pairs: int = 64  # prototype pairs recombined per REM cycle
    knn_k: int = 32  # neighbours that vote
    prior_k: int = 8  # prototypes in the distributed prior
    signature_weight: float = 0.0  # weight of vorticity-signature cosine in retrieval (0 = keys only)
    prototype_targets: int = 16  # targets kept per prototype histogram
    max_prototypes: int = 65536
    schema_gate: bool = True  # keep new schemas only when they improve held-out likelihood
    support_decay: float = 0.6180339887498949  # each sleep multiplies old prototypes' support by this (phi^-1)
    holdout_every: int = 64  # about 1 in this many training rows is held out (never stored) to fit the mixture
    holdout_size: int = 4096  # held-out windows kept (uniform sample)
    train_seq_multiple: int = 8  # train_seq_len = context_size * this: one row yields many windows
    # Full windows (predicted positions) per training row; 0: what train_seq_multiple gives. Set, it wins: a
    # giant run with cadences shorter than one row of 4096-token windows needs rows of fewer positions.
    row_positions: int = 0
    # Key function (see keys.py): () = the faithful key, one product of all context_size tokens (16 coefficients);
    # otherwise multi-scale suffix keys: the products of the last s tokens for each s here (increasing, the last
    # = context_size), 8 even coefficients per scale, block j weighted by key_decay^j before normalising.
    key_scales: tuple[int, ...] = ()
    key_decay: float = 1.0
    # Vote kernel on 1 - sim: "cosine" = the key cosine (the spec); "depth" = the matched-suffix similarity
    # (keys.KeyLayout.depth: the weighted count of scales whose block equals the query's), for suffix keys.
    vote: Literal["cosine", "depth"] = "cosine"
    reading_window: int = 0  # reading memory: earlier positions of the text being read that vote (0 = none)
    reading_k: int = 16  # neighbours from the reading memory
    # Where the long-term store lives and is searched: "host" (CPU memory; queries travel there), "model" (the
    # model's device, e.g. CUDA: retrieval runs there) or "auto": the model's device when it is not the CPU and
    # the full store (max_attractors rows x bytes per row) takes at most half of that device's total memory (a
    # device whose memory cannot be read is taken to fit), else the host (placement.py: the one rule, used by
    # the model and the planner). On the CPU all three are the same. Every other part of memory: the host.
    store_device: Literal["auto", "host", "model"] = "auto"

    def validate(self, vocab: Vocab) -> None:
        """Raise ModelConfigError naming the first bad field; runs before any compute."""
        positive = {
            "context_size": self.context_size, "max_attractors": self.max_attractors,
            "episodic_buffer_size": self.episodic_buffer_size, "rem_pairs": self.rem_pairs, "knn_k": self.knn_k,
            "prior_k": self.prior_k, "prototype_targets": self.prototype_targets,
            "max_prototypes": self.max_prototypes, "holdout_size": self.holdout_size,
            "train_seq_multiple": self.train_seq_multiple,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ModelConfigError(f"holographic {name}={value!r}: must be an integer >= 1")
        if not isinstance(self.rem_cycles, int) or isinstance(self.rem_cycles, bool) or self.rem_cycles < 0:
            raise ModelConfigError(f"holographic rem_cycles={self.rem_cycles!r}: must be an integer >= 0")
        if not isinstance(self.holdout_every, int) or self.holdout_every < 2:
            raise ModelConfigError(f"holographic holdout_every={self.holdout_every!r}: must be an integer >= 2")
        if not (isinstance(self.noise_std, int | float) and math.isfinite(self.noise_std) and self.noise_std > 0):
            raise ModelConfigError(f"holographic noise_std={self.noise_std!r}: must be a finite number > 0")
        if not (isinstance(self.signature_weight, int | float) and 0.0 <= self.signature_weight <= 1.0):
            raise ModelConfigError(f"holographic signature_weight={self.signature_weight!r}: must be in [0, 1]")
        scales = self.key_scales
        if scales and (not all(isinstance(s, int) and not isinstance(s, bool) for s in scales)
                       or list(scales) != sorted(set(scales)) or scales[0] < 1 or scales[-1] != self.context_size):
            raise ModelConfigError(f"holographic key_scales={scales!r}: must be increasing integers >= 1 ending at "
                                   f"context_size={self.context_size} (or empty for the faithful key)")
        if not (isinstance(self.support_decay, int | float) and 0.0 < self.support_decay <= 1.0):
            raise ModelConfigError(f"holographic support_decay={self.support_decay!r}: must be in (0, 1]")
        if not (isinstance(self.key_decay, int | float) and math.isfinite(self.key_decay) and self.key_decay > 0):
            raise ModelConfigError(f"holographic key_decay={self.key_decay!r}: must be a finite number > 0")
        if self.store_device not in STORE_DEVICES:
            raise ModelConfigError(f"holographic store_device={self.store_device!r}: must be one of "
                                   f"{', '.join(STORE_DEVICES)}")
        if self.vote not in VOTES:
            raise ModelConfigError(f"holographic vote={self.vote!r}: must be one of {', '.join(VOTES)}")
        for name in ("reading_window", "reading_k", "row_positions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ModelConfigError(f"holographic {name}={value!r}: must be an integer >= 0")
        if self.store_policy not in STORE_POLICIES:
            raise ModelConfigError(
                f"holographic store_policy={self.store_policy!r}: must be one of {', '.join(STORE_POLICIES)}"
            )
        if vocab.size < 2 or not 0 <= vocab.eot_id < vocab.size:
            raise ModelConfigError(f"holographic: vocab {vocab.name!r} of size {vocab.size} with eot {vocab.eot_id}"
                                   " is unusable (need size >= 2 and eot inside it)")
        if vocab.size >= 1 << 31:
            raise ModelConfigError(f"holographic: vocab size {vocab.size} too large (targets are int32)")

    @property
    def layout(self) -> KeyLayout:
        if not self.key_scales:
            return KeyLayout.faithful(self.context_size)
        return KeyLayout.suffixes(self.key_scales, self.key_decay)

    @property
    def reading(self) -> int:
        """Reading-memory neighbours per query (0 when the flavor keeps no reading memory)."""
        return self.reading_k if self.reading_window > 0 else 0

    @property
    def train_seq_len(self) -> int:
        if self.row_positions:
            return self.context_size - 1 + self.row_positions
        return self.context_size * self.train_seq_multiple

    @property
    def positions_per_row(self) -> int:
        """Full windows of one (T + 1)-token row: the positions it predicts (and stores, bar held-out rows)."""
        return self.train_seq_len - self.context_size + 1

    def check(self) -> None:
        """ModelConfig protocol: every holographic check needs the vocabulary, so they all run at build()."""

    def build(self, vocab: Vocab) -> "HolographicModel":
        self.validate(vocab)
        if not vocab.lossless:
            log.warning("holographic: tokenizer %r is not lossless; bits per byte will be refused", vocab.name)
        from nightshift.models.holographic.model import HolographicModel

        return HolographicModel(self, vocab)

    def footprint(self, vocab: Vocab, shape: "RunShape") -> "Footprint":
        """Memory of one rank (models/footprint.py): the episode store, backoff, buffers and prototypes."""
        from nightshift.models.holographic.footprint import footprint

        return footprint(self, vocab, shape)
