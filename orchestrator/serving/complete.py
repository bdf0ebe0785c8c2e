"""Completions for any family: temperature / top-k through the family's own sampler, top-p, stop strings, n.

Every family has `generate` (the attractor adds its repeat penalty, the
macro-unit model proposes whole units), so plain sampling goes through it, a
few tokens at a time so text can stream and stop strings can end the work
early. Nucleus sampling (top_p < 1) needs the next-token distribution, so it
samples from `log_probs` directly; a model without a full distribution over
its vocabulary (macro_unit over BPE tokens) refuses top_p with a clear error.
Generation stops at end-of-text, at a stop string (not included in the text,
as in OpenAI's API), or after `max_tokens` new tokens.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from nightshift.orchestrator.serving.bundle import Bundle

CHUNK_TOKENS = 8  # tokens per generate() call: the granularity of streaming and of stop-string checks
REPLACEMENT = "\ufffd"  # what a token ending inside a UTF-8 character decodes to, until the next token lands


@dataclass(frozen=True, slots=True)
class Sampling:
    max_tokens: int = 16
    temperature: float = 1.0
    top_k: int | None = None  # None or 0: off
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    n: int = 1
    seed: int | None = None  # None: a fresh random seed per request


@dataclass(slots=True)
class Piece:
    """A stretch of new text; `finish_reason` is set on the last piece of a completion ("stop" or "length")."""

    text: str
    finish_reason: str | None = None
    tokens: int = 0  # completion tokens so far (on the last piece: the total)


@dataclass(slots=True)
class Completion:
    text: str
    finish_reason: str
    tokens: int
    pieces: list[str] = field(default_factory=list)


def supports_top_p(bundle: Bundle) -> bool:
    """Whether the model yields a full next-token distribution (needed for nucleus sampling)."""
    try:
        bundle.model.log_probs(torch.tensor([[bundle.model.vocab.eot_id]]))
        return True
    except NotImplementedError:
        return False


def prompt_ids(bundle: Bundle, prompt: str) -> list[int]:
    """[eot] + tokens: a prompt starts a document, as every training document did."""
    return [bundle.model.vocab.eot_id] + bundle.tokenizer.encode_batch([prompt])[0]


def _nucleus(bundle: Bundle, ids: torch.Tensor, count: int, s: Sampling, gen: torch.Generator) -> torch.Tensor:
    model = bundle.model
    out = ids
    for _ in range(count):
        ctx = out[-model.context_length:].unsqueeze(0)  # (1, <=C)
        logits = model.log_probs(ctx)[0, -1].float() / max(s.temperature, 1e-6)  # (V,)
        if s.top_k and s.top_k < logits.numel():
            kth = torch.topk(logits, s.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, -1)
        sorted_p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, 0) - sorted_p < s.top_p  # the smallest prefix whose mass reaches top_p
        keep[0] = True
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        nxt = torch.multinomial(probs / probs.sum(), 1, generator=gen)
        out = torch.cat([out, nxt.to(out.dtype)])
    return out


def _generate(bundle: Bundle, ids: torch.Tensor, count: int, s: Sampling, gen: torch.Generator) -> torch.Tensor:
    if s.top_p < 1.0:
        return _nucleus(bundle, ids, count, s, gen)
    return bundle.model.generate(ids, count, temperature=s.temperature, top_k=s.top_k or None, generator=gen)


@torch.no_grad()
def stream(bundle: Bundle, prompt: str, s: Sampling, seed: int) -> Iterator[Piece]:
    """New text of one completion, piece by piece; the last piece carries the finish reason."""
    eot = bundle.model.vocab.eot_id
    gen = torch.Generator(device="cpu").manual_seed(seed)
    ids = torch.tensor(prompt_ids(bundle, prompt), dtype=torch.long)
    start, new = len(ids), 0
    hold = max((len(x) for x in s.stop), default=1) - 1  # a stop string may still be forming at the end
    sent = 0  # characters of the completion already yielded
    while True:
        count = min(CHUNK_TOKENS, s.max_tokens - new)
        out = _generate(bundle, ids, count, s, gen)[: len(ids) + count]  # macro_unit may return fewer
        fresh = out[len(ids):].tolist()
        ended = eot in fresh
        if ended:
            fresh = fresh[: fresh.index(eot)]
        ids = torch.cat([ids, torch.tensor(fresh, dtype=torch.long)])
        new += len(fresh)
        text = bundle.tokenizer.decode(ids[start:].tolist())
        cut = min((i for i in (text.find(x) for x in s.stop if x) if i >= 0), default=-1)
        if cut >= 0:
            yield Piece(text[sent:cut], "stop", new)
            return
        if ended or new >= s.max_tokens or not fresh:
            yield Piece(text[sent:], "stop" if ended or not fresh else "length", new)
            return
        ready = len(text)
        while ready > sent and text[ready - 1] == REPLACEMENT:  # an unfinished UTF-8 character: wait for it
            ready -= 1
        ready -= hold  # then keep back what could be the start of a stop string
        if ready > sent:
            yield Piece(text[sent:ready], None, new)
            sent = ready


def complete(bundle: Bundle, prompt: str, s: Sampling, seed: int) -> Completion:
    pieces = list(stream(bundle, prompt, s, seed))
    return Completion(text="".join(p.text for p in pieces), finish_reason=pieces[-1].finish_reason or "length",
                      tokens=pieces[-1].tokens, pieces=[p.text for p in pieces])


def request_seed(s: Sampling) -> int:
    return s.seed if s.seed is not None else secrets.randbits(62)
