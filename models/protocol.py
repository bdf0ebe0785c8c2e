"""The seam every model family plugs into.

A family is a `LanguageModel` (an `nn.Module`) built from its own frozen
config dataclass by `config.build(vocab)`. The trainer only ever calls the
methods below, so a family never needs to know about backends, checkpoints
or tracking:

- gradient families (`trains_by_gradient = True`): `forward(tokens)` returns
  `(loss, metrics)`; the trainer owns the optimizer, DDP and the LR schedule.
- memory families (`trains_by_gradient = False`): `observe(tokens)` updates the
  family's own state under `torch.no_grad()` and returns metrics.
- every family: `sleep(ctx)` (consolidation, a no-op by default),
  `log_probs` (a normalised distribution over the *whole* vocabulary),
  `score` (log p of each next token, what bits-per-byte sums), `generate`,
  and a `state_dict()` that includes non-parametric memory (use
  `get_extra_state`/`set_extra_state` for memory whose size changes; it must
  survive `torch.save` -> `torch.load(weights_only=True)`).
- DDP for memory families: `synchronize()` merges memory across
  `torch.distributed` ranks so every rank predicts identically.
- ablations: a family names the mechanisms that can be switched off in
  `ablatable` (holographic: "memory", "prototypes"; macro_unit: "units";
  attractor: "relaxation"); `ablated(model, {"memory"})` scores the same
  trained state with those parts off, so "what the memory adds" is a number.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from nightshift.models.footprint import Footprint, RunShape

BYTE_VOCAB_NAME = "bytes"


@dataclass(frozen=True, slots=True)
class Vocab:
    """What a family needs to know about the tokenizer its dataset was built with."""

    name: str  # "gpt2", "cl100k_base", "bytes", ...
    size: int  # number of token ids, end-of-text included
    eot_id: int  # end-of-text: separates documents in the training stream
    token_bytes: tuple[bytes, ...] = field(repr=False, default=())  # id -> the UTF-8 bytes it decodes to (eot -> b"")
    lossless: bool = True  # decode(encode(text)) == text; required for bits per byte

    @classmethod
    def bytes_vocab(cls) -> "Vocab":
        """Raw bytes: ids 0..255 are the bytes themselves, 256 is end-of-text."""
        return cls(
            name=BYTE_VOCAB_NAME,
            size=257,
            eot_id=256,
            token_bytes=tuple(bytes([i]) for i in range(256)) + (b"",),
        )

    def decode(self, ids: list[int] | Tensor) -> str:
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        return b"".join(self.token_bytes[i] for i in ids if i != self.eot_id).decode("utf-8", errors="replace")


@dataclass(slots=True)
class SleepContext:
    """What the trainer hands a family when every rank enters a sleep phase together."""

    step: int
    rank: int = 0
    world_size: int = 1
    # Gradient families: apply one optimizer update for this loss (backward, clip,
    # optimizer.step, zero_grad), the same way the trainer does. None for memory families.
    optimize: Callable[[Tensor], None] | None = None


_AUTOCAST_KINDS = ("cpu", "cuda")


def float32(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Run a scoring method in float32 whatever autocast the caller holds.

    Bits per byte is compared across families, devices and precisions, so a
    score is never computed in bf16: a memory family's exact-match tests
    (suffix keys) and log-prob sums break in bf16, and a GPU `val_bpb` must
    equal a CPU `nightshift eval` of the same checkpoint.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Tensor:
        live = [k for k in _AUTOCAST_KINDS if torch.is_autocast_enabled(k)]
        if not live:
            return fn(*args, **kwargs)
        with contextlib.ExitStack() as stack:
            for kind in live:
                stack.enter_context(torch.autocast(kind, enabled=False))
            return fn(*args, **kwargs)

    return wrapper


class LanguageModel(nn.Module):
    """Base class of every family; see the module docstring for the contract."""

    family: ClassVar[str] = "?"
    trains_by_gradient: ClassVar[bool] = True
    # Mechanisms that `set_ablation` can switch off for evaluation (empty: nothing to ablate).
    ablatable: ClassVar[tuple[str, ...]] = ()
    # DDP: parameters that get no gradient in some steps (e.g. the attractor's detached relaxation)
    ddp_find_unused_parameters: bool = False

    def __init__(self, vocab: Vocab) -> None:
        super().__init__()
        self.vocab = vocab
        self.ablated_parts: frozenset[str] = frozenset()  # read by score/log_probs/generate

    # --------------------------------------------------------------- ablation
    def set_ablation(self, parts: Collection[str]) -> None:
        """Switch the named mechanisms off (empty: the full model).

        Changes predictions only, never the trained state, so a checkpoint
        scores the same with and without an ablation in between. Families
        override to invalidate caches that depend on the active parts.
        """
        unknown = sorted(set(parts) - set(self.ablatable))
        if unknown:
            accepted = ", ".join(self.ablatable) or "none"
            raise ValueError(f"{self.family}: cannot ablate {', '.join(unknown)}; ablatable parts: {accepted}")
        self.ablated_parts = frozenset(parts)

    # ----------------------------------------------------------------- shapes
    @property
    def context_length(self) -> int:
        """Tokens of left context the model can use; evaluation windows are this long."""
        raise NotImplementedError

    @property
    def eval_window(self) -> int:
        """Longest input `score` accepts at once (tokens of input, targets not counted).

        When it exceeds `context_length`, the evaluator strides so every scored
        token has its full left context; when equal (a transformer's fixed
        context), consecutive windows overlap by half.
        """
        return self.context_length

    @property
    def train_seq_len(self) -> int:
        """Length T of training windows; the reader yields (B, T + 1) token ids."""
        return self.context_length

    @property
    def positions_per_row(self) -> int:
        """Predicted positions (a context window and its next token) one training row (T + 1 tokens) yields.

        The unit every family shares: the giant run's "samples" and the trainer's positions cadences count
        it. A next-token model predicts all T; a family that stores only full windows predicts fewer.
        """
        return self.train_seq_len

    # --------------------------------------------------------------- training
    def forward(self, tokens: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Gradient families: tokens (B, T+1) -> (scalar loss, detached metric tensors)."""
        raise NotImplementedError(f"{self.family} does not train by gradient; call observe()")

    @torch.no_grad()
    def observe(self, tokens: Tensor) -> dict[str, float]:
        """Memory families: update memory from tokens (B, T+1); return metrics."""
        raise NotImplementedError(f"{self.family} trains by gradient; call forward()")

    def sleep(self, ctx: SleepContext) -> dict[str, float]:
        """Consolidation phase; returns its metrics (empty: this family does not sleep)."""
        return {}

    def synchronize(self) -> None:
        """Merge memory across torch.distributed ranks (memory families); gradient families: no-op."""

    def check_dataset(self, *, max_doc_tokens: int, total_tokens: int | None = None) -> None:
        """Refuse a dataset this model cannot train on (e.g. windows longer than any document), before
        any compute; ModelConfigError in one line. Most families accept any dataset."""

    # ------------------------------------------------------------- evaluation
    def log_probs(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) -> (B, T, V) natural-log distribution of the next token at each position.

        Must be normalised over the whole vocabulary (logsumexp == 0) and use
        only tokens[:, : t + 1] at position t.
        """
        raise NotImplementedError

    @float32
    def score(self, tokens: Tensor) -> Tensor:
        """tokens (B, T+1) -> (B, T): log p(tokens[:, t+1] | tokens[:, :t+1]) in nats.

        What bits-per-byte sums, always in float32 (an override keeps `@float32`).
        Override when the full (B, T, V) tensor is wasteful to build.
        """
        logp = self.log_probs(tokens[:, :-1])  # (B, T, V)
        return logp.gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)  # (B, T)

    @torch.no_grad()
    def generate(
        self,
        prompt: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """prompt (T,) -> (T + max_new_tokens,), sampling from `log_probs` on the last context window."""
        out = prompt.clone()
        for _ in range(max_new_tokens):
            ctx = out[-self.context_length :].unsqueeze(0)  # (1, <=C)
            logits = self.log_probs(ctx)[0, -1] / max(temperature, 1e-6)  # (V,)
            if top_k is not None and top_k < logits.numel():
                kth = torch.topk(logits, top_k).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits.float(), dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
            out = torch.cat([out, nxt.to(out.dtype)])
        return out

    def sampling_device(self, prompt_device: torch.device) -> torch.device:
        """Where `generate` draws its samples: the device its `generator` must live on.

        The prompt's device by default (the logits follow the input); a family that
        samples on the host whatever the input (holographic, macro_unit) says "cpu".
        """
        return torch.device(prompt_device)

    # ------------------------------------------------------------------ info
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def memory_bytes(self) -> int:
        """Bytes of non-parametric memory (memory families override)."""
        return 0

    def eval_metrics(self) -> dict[str, float]:
        """Family-specific metrics logged beside each evaluation (e.g. a memory's own spec metrics); {} here."""
        return {}

    def train_flops_per_sample(self) -> float | None:
        """Estimated FLOPs of one training update on one (T+1)-token sample, forward + backward.

        Gradient families return an estimate (what MFU and compute accounting
        multiply by samples seen); None where a FLOP count means little (memory
        families: their cost is measured in device-seconds).
        """
        return None


@contextmanager
def ablated(model: LanguageModel, parts: Collection[str]) -> Iterator[LanguageModel]:
    """Score `model` with `parts` switched off inside the block; the previous setting is restored after."""
    before = model.ablated_parts
    model.set_ablation(parts)
    try:
        yield model
    finally:
        model.set_ablation(before)


class ModelConfig(Protocol):
    """What the registry, the run config and the planner need from a family's frozen config dataclass."""

    def build(self, vocab: Vocab) -> LanguageModel:
        """The model for this vocabulary (every check runs here, the vocabulary-dependent ones included)."""
        ...

    def check(self) -> None:
        """The checks that need no vocabulary, run when a run is configured (ModelConfigError: one line)."""
        ...

    def footprint(self, vocab: Vocab, shape: RunShape) -> Footprint:
        """The memory one rank of a run of this shape holds (models/footprint.py), for the pre-flight plan."""
        ...


@dataclass(frozen=True, slots=True)
class Flavor:
    """A recipe: a model config plus the trainer settings it was designed for (lr, batch size...)."""

    model: ModelConfig  # the family's frozen Config instance
    train: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""
