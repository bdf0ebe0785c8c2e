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
    """The prompt and its continuation, as one decoded text (the prompt is part of it: print it once)."""
    ids = [model.vocab.eot_id] + tokenizer.encode_batch([prompt])[0]
    prompt_ids = torch.tensor(ids, dtype=torch.long, device=device)  # (T,)
    gen = private_generator(model.sampling_device(prompt_ids.device), seed)
    was_training = model.training
    model.eval()
    out = model.generate(prompt_ids, tokens, temperature=temperature, top_k=top_k, generator=gen)
    model.train(was_training)
    return tokenizer.decode([i for i in out[1:].tolist() if i != model.vocab.eot_id])


def private_generator(device: torch.device, seed: int) -> torch.Generator | None:
    """A seeded generator on the device that samples: GPU samples follow the seed, and sampling never
    shifts the training RNG stream. None only where the device has no generators of its own (the tests'
    fake device, labelled meta): there sampling draws from the global stream."""
    try:
        return torch.Generator(device=device).manual_seed(seed)
    except RuntimeError:
        return None


def generate_samples(model: LanguageModel, tokenizer: Any, tokens: int, *, seed: int = 0,
                     device: torch.device | str = "cpu", prompts: tuple[str, ...] = PROMPTS) -> str:
    parts = []
    for i, prompt in enumerate(prompts):
        text = generate_text(model, tokenizer, prompt, tokens, seed=seed + i, device=device)
        parts.append(f"### {prompt!r}\n{text}\n")
    return "\n".join(parts)
