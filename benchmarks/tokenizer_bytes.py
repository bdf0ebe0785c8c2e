"""UTF-8 bytes per token on pg19: what the pre-flight planner converts token counts to bytes with.

The pg19 sample's train split (../shared/data/pg19/train.parquet, 31.6 MB) through tiktoken gpt2,
r50k_base and cl100k_base (offline cache), and the bytes tokenizer (1.0 by definition): total UTF-8
bytes / total tokens (`encode_ordinary`, no special tokens). The planner's bytes-per-token table is
this benchmark's recorded figures.

    python -m benchmarks run tokenizer_bytes [--set max_chars=200000]
"""

from __future__ import annotations

from benchmarks.harness import Benchmark, Clock, Context

ENCODINGS = ("gpt2", "r50k_base", "cl100k_base")


def sample_texts(ctx: Context, max_chars: int | None) -> list[str]:
    """The train split's books, cut to `max_chars` characters in all (None: every book, whole)."""
    import pyarrow.parquet as pq

    texts = pq.read_table(ctx.shared / "pg19" / "train.parquet", columns=["text"]).column("text").to_pylist()
    if max_chars is None:
        return texts
    out, left = [], max_chars
    for text in texts:
        if left <= 0:
            break
        out.append(text[:left])
        left -= len(out[-1])
    return out


def run(ctx: Context) -> dict:
    import tiktoken

    texts = sample_texts(ctx, ctx["max_chars"])
    chars = sum(map(len, texts))
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    ctx.log(f"pg19 train: {len(texts)} books, {chars:,} characters, {n_bytes:,} UTF-8 bytes")
    per_token: dict[str, float] = {}
    tokens: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for name in ENCODINGS:
        enc = tiktoken.get_encoding(name)
        with Clock() as clock:
            tokens[name] = sum(map(len, enc.encode_ordinary_batch(texts, num_threads=1)))
        per_token[name] = n_bytes / tokens[name]
        seconds[name] = clock.wall
        ctx.log(f"{name:<12} {tokens[name]:>12,} tokens: {per_token[name]:.4f} bytes/token ({clock.wall:.1f} s)")
    per_token["bytes"] = 1.0
    tokens["bytes"] = n_bytes
    return {"bytes_per_token": per_token, "chars": chars, "bytes": n_bytes, "books": len(texts), "tokens": tokens,
            "encode_seconds": seconds, "planner": {"bytes_per_token": dict(per_token)}}


BENCHMARK = Benchmark(
    name="tokenizer_bytes",
    summary="UTF-8 bytes per token of the pg19 sample's train split for tiktoken gpt2, r50k_base, cl100k_base "
            "(and bytes)",
    run=run,
    threads=1,
    full={"max_chars": None},
    toy={"max_chars": 200_000},
)
