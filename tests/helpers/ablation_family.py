"""A test-only memory family with one ablatable part, registered for a test by `register(monkeypatch)`.

Bigram counts (the `memory`) mixed with unigram counts (the backoff): on text
with repeats the memory clearly helps, so an ablation that did nothing would show.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import Tensor

from nightshift.models.protocol import Flavor, LanguageModel, Vocab
from nightshift.models.registry import family_module

NAME = "bigram_test"


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    window: int = 32  # tokens per training window
    mix: float = 0.9  # weight of the bigram memory where it has seen the context

    def check(self) -> None:
        """Nothing to check without a vocabulary."""

    def build(self, vocab: Vocab) -> "BigramMemory":
        return BigramMemory(self, vocab)


class BigramMemory(LanguageModel):
    family = NAME
    trains_by_gradient = False
    ablatable = ("memory",)

    def __init__(self, cfg: Config, vocab: Vocab) -> None:
        super().__init__(vocab)
        self.cfg = cfg
        self.register_buffer("bigrams", torch.zeros(vocab.size, vocab.size))  # (V, V) counts
        self.register_buffer("unigrams", torch.ones(vocab.size))  # (V,) add-one counts

    @property
    def context_length(self) -> int:
        return self.cfg.window

    @torch.no_grad()
    def observe(self, tokens: Tensor) -> dict[str, float]:
        prev, nxt = tokens[:, :-1].reshape(-1), tokens[:, 1:].reshape(-1)
        self.bigrams.index_put_((prev, nxt), torch.ones(len(prev)), accumulate=True)
        self.unigrams += torch.bincount(nxt, minlength=self.vocab.size).float()
        return {"train/loss": 0.0}

    def log_probs(self, tokens: Tensor) -> Tensor:
        uni = (self.unigrams / self.unigrams.sum()).expand(*tokens.shape, -1)  # (B, T, V)
        if "memory" in self.ablated_parts:
            return uni.log()
        rows = self.bigrams[tokens]  # (B, T, V)
        total = rows.sum(-1, keepdim=True)  # (B, T, 1)
        big = rows / total.clamp(min=1)
        weight = torch.where(total > 0, self.cfg.mix, 0.0)
        return (weight * big + (1 - weight) * uni).log()

    def memory_bytes(self) -> int:
        return self.bigrams.numel() * 4


FLAVORS = {"tiny": Flavor(model=Config(), train={"batch_size": 4}, summary="bigram memory + unigram backoff")}
DEFAULT_FLAVOR = "tiny"
SUMMARY = "test-only bigram memory family"


def register(monkeypatch) -> None:
    """Make `bigram_test:tiny` resolvable for one test (the registry imports nightshift.models.<family>)."""
    import nightshift.models.registry as registry

    monkeypatch.setattr(registry, "FAMILIES", (*registry.FAMILIES, NAME))
    monkeypatch.setitem(sys.modules, f"nightshift.models.{NAME}", sys.modules[__name__])


def family_class(family: str) -> type[LanguageModel] | None:
    try:
        module = family_module(family)
    except ImportError:
        return None
    return next((v for v in vars(module).values() if isinstance(v, type) and issubclass(v, LanguageModel)
                 and v is not LanguageModel and v.family == family), None)
