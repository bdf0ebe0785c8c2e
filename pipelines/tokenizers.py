"""Tokenizers by name: tiktoken encodings and raw bytes, with an identity that goes into dataset ids.

A dataset records *which* tokenizer made it (name, vocab size, sha256 of the
ranks) so a changed vocabulary can never silently reuse old shards.

Long documents (a pg19 book is ~0.5-1 MB) are cut into ~64 KB chunks before
BPE, at places where the pre-tokenizer splits anyway (after a letter, before a
space or newline), so the concatenated chunk tokens equal the whole-document
tokens and always decode back to exactly the document text.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from nightshift.pipelines.errors import DataError

TIKTOKEN_NAMES: tuple[str, ...] = ("gpt2", "r50k_base", "cl100k_base", "o200k_base")
TOKENIZER_NAMES: tuple[str, ...] = (*TIKTOKEN_NAMES, "bytes")
CHUNK_CHARS = 64 * 1024  # BPE work per call; small enough to stay cache-friendly, big enough to amortise calls


class Tokenizer(Protocol):
    name: str
    vocab_size: int
    eot_id: int
    lossless: bool

    def identity(self) -> dict: ...
    def encode_batch(self, texts: list[str]) -> list[list[int]]: ...
    def encode_docs(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]: ...
    def decode(self, ids: Sequence[int] | np.ndarray) -> str: ...
    def token_bytes(self) -> tuple[bytes, ...]: ...


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (gpt2, bytes), else uint32 (cl100k, o200k)."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def chunk_text(text: str, limit: int = CHUNK_CHARS) -> list[str]:
    """Cut `text` into pieces of at most ~`limit` chars whose concatenation is `text`.

    A cut goes right after a letter that is followed by a space or newline:
    every tiktoken pre-tokenizer pattern ends a word there, so encoding the
    pieces separately gives the same ids as encoding the whole text. Only a
    text with no such place in a whole window falls back to a hard cut (still
    exactly reversible).
    """
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    start = 0
    n = len(text)
    while n - start > limit:
        end = _cut_point(text, start, start + limit)
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return pieces


def _cut_point(text: str, start: int, stop: int) -> int:
    for sep in ("\n\n", "\n", " "):
        pos = text.rfind(sep, start + 1, stop)
        while pos > start:
            if text[pos - 1].isalpha():
                return pos
            pos = text.rfind(sep, start + 1, pos)
    return stop


def _offsets(lengths: Sequence[int]) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


class TiktokenTokenizer:
    """A tiktoken encoding; `encode_*` never emits special tokens (encode_ordinary)."""

    lossless = True

    def __init__(self, name: str, threads: int = 1) -> None:
        self.name = name
        self._enc = _tiktoken_encoding(name)
        self.vocab_size = int(self._enc.n_vocab)
        self.eot_id = int(self._enc.eot_token)
        self.dtype = token_dtype(self.vocab_size)
        self.threads = threads

    def identity(self) -> dict:
        return {"name": self.name, "vocab_size": self.vocab_size, "eot_id": self.eot_id,
                "ranks_sha256": _ranks_sha256(self.name)}

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self._enc.encode_ordinary_batch(list(texts), num_threads=self.threads)

    def encode_docs(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """All docs at once -> (flat ids in `dtype`, offsets of length len(texts)+1).

        `encode_to_numpy` with no special tokens allowed *or* disallowed is
        encode_ordinary without the detour through a Python list of ints.
        """
        chunks: list[str] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            for piece in chunk_text(text):
                chunks.append(piece)
                owner.append(i)
        if self.threads > 1 and len(chunks) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.threads) as pool:
                encoded = list(pool.map(self._encode_np, chunks))
        else:
            encoded = [self._encode_np(c) for c in chunks]
        lengths = [0] * len(texts)
        for i, ids in zip(owner, encoded):
            lengths[i] += len(ids)
        flat = np.concatenate(encoded).astype(self.dtype, copy=False) if encoded else np.empty(0, self.dtype)
        return flat, _offsets(lengths)

    def _encode_np(self, text: str) -> np.ndarray:
        return self._enc.encode_to_numpy(text, allowed_special=set(), disallowed_special=())

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return self._enc.decode([int(i) for i in ids if int(i) != self.eot_id])

    def token_bytes(self) -> tuple[bytes, ...]:
        return _token_bytes(self.name)


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255 plus end-of-text 256: no vocabulary to learn, lossless."""

    name = "bytes"
    vocab_size = 257
    eot_id = 256
    lossless = True
    dtype = np.dtype(np.uint16)

    def identity(self) -> dict:
        ranks = hashlib.sha256(bytes(range(256))).hexdigest()
        return {"name": self.name, "vocab_size": self.vocab_size, "eot_id": self.eot_id, "ranks_sha256": ranks}

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [list(t.encode("utf-8")) for t in texts]

    def encode_docs(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        raw = [t.encode("utf-8") for t in texts]
        flat = np.frombuffer(b"".join(raw), dtype=np.uint8).astype(self.dtype)
        return flat, _offsets([len(r) for r in raw])

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        arr = np.asarray(ids, dtype=np.int64)
        return arr[arr < 256].astype(np.uint8).tobytes().decode("utf-8", errors="replace")

    def token_bytes(self) -> tuple[bytes, ...]:
        return (*(bytes([i]) for i in range(256)), b"")


def load_tokenizer(name: str, *, threads: int = 1) -> Tokenizer:
    """`gpt2`, `r50k_base`, `cl100k_base`, `o200k_base` (tiktoken) or `bytes`."""
    if name == "bytes":
        return ByteTokenizer()
    if name not in TIKTOKEN_NAMES:
        raise DataError(f"unknown tokenizer {name!r}; accepted: {', '.join(TOKENIZER_NAMES)}")
    return TiktokenTokenizer(name, threads=threads)


@functools.lru_cache(maxsize=None)
def _tiktoken_encoding(name: str) -> Any:
    """Load once per process; offline without a cached file -> one line naming TIKTOKEN_CACHE_DIR."""
    import tiktoken

    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:  # noqa: BLE001 - requests/OSError/ValueError all mean "cannot get the file"
        cache = os.environ.get("TIKTOKEN_CACHE_DIR") or "(unset)"
        raise DataError(
            f"tokenizer {name!r} is not in the tiktoken cache and could not be downloaded "
            f"({type(exc).__name__}); set TIKTOKEN_CACHE_DIR to a folder holding its encoding file "
            f"(now TIKTOKEN_CACHE_DIR={cache}) or run once with network access"
        ) from None


@functools.lru_cache(maxsize=None)
def _ranks_sha256(name: str) -> str:
    """sha256 over `base64(token) rank` lines in rank order, as in a .tiktoken file, plus specials."""
    import base64

    enc = _tiktoken_encoding(name)
    h = hashlib.sha256()
    for token, rank in sorted(enc._mergeable_ranks.items(), key=lambda kv: kv[1]):
        h.update(base64.b64encode(token) + b" " + str(rank).encode() + b"\n")
    for token, rank in sorted(enc._special_tokens.items(), key=lambda kv: kv[1]):
        h.update(f"special {token} {rank}\n".encode())
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _token_bytes(name: str) -> tuple[bytes, ...]:
    enc = _tiktoken_encoding(name)
    table = [b""] * enc.n_vocab
    for token, rank in enc._mergeable_ranks.items():
        table[rank] = token
    return tuple(table)
