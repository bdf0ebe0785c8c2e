"""Generated text from a fixed prompt set, so samples compare across runs and steps."""

from __future__ import annotations

from typing import Any

import torch

from nightshift.models.protocol import LanguageModel

PROMPTS: tuple[str, ...] = (
    "It was a dark and stormy night",
    "The old man looked at",
    "Once upon a time",
)


@torch.no_grad()
def generate_text(model: LanguageModel, tokenizer: Any, prompt: str, tokens: int, *, seed: int = 0,
                  temperature: float = 0.8, top_k: int | None = 40, device: torch.device | str = "cpu") -> str:
    ids = [model.vocab.eot_id] + tokenizer.encode_batch([prompt])[0]
    gen = torch.Generator(device="cpu").manual_seed(seed)  # private stream: sampling never shifts training RNG
    was_training = model.training
    model.eval()
    out = model.generate(torch.tensor(ids, dtype=torch.long, device=device), tokens,
                         temperature=temperature, top_k=top_k, generator=gen if str(device) == "cpu" else None)
    model.train(was_training)
    return tokenizer.decode([i for i in out[1:].tolist() if i != model.vocab.eot_id])


def generate_samples(model: LanguageModel, tokenizer: Any, tokens: int, *, seed: int = 0,
                     device: torch.device | str = "cpu", prompts: tuple[str, ...] = PROMPTS) -> str:
    parts = []
    for i, prompt in enumerate(prompts):
        text = generate_text(model, tokenizer, prompt, tokens, seed=seed + i, device=device)
        parts.append(f"### {prompt!r}\n{text}\n")
    return "\n".join(parts)
