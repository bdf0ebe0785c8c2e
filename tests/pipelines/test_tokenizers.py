"""Tokenizers: exact round trips, whole-document equivalence of chunked BPE, identity, offline errors."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import tiktoken
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.tokenizers import chunk_text, load_tokenizer, token_dtype


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base"])
def test_chunked_encoding_equals_whole_document_on_a_book(name, pg19_texts):
    book = pg19_texts["train"][0]
    assert len(book) > 200_000  # long enough to be cut into many chunks
    tok = load_tokenizer(name)
    flat, offsets = tok.encode_docs([book])
    whole = tiktoken.get_encoding(name).encode_ordinary(book)
    assert len(chunk_text(book)) > 3
    assert flat.tolist() == whole
    assert offsets.tolist() == [0, len(whole)]
    assert tok.decode(flat) == book


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=3000), st.integers(min_value=8, max_value=200))
def test_chunks_concatenate_back_to_the_text(text, limit):
    pieces = chunk_text(text, limit)
    assert "".join(pieces) == text
    assert all(pieces) or text == ""


_PIECES = st.sampled_from([*"ab Zé'\n\t .,!?0123456789-", "ß", "日本", "\u0301", "’s", "'S", "\r\n", "  ", "\n\n"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=120).map("".join), st.integers(min_value=4, max_value=40))
def test_cuts_after_a_letter_give_the_whole_text_tokens(text, limit):
    """Where chunk_text finds a safe cut (letter | space or newline), BPE per chunk == BPE of the whole."""
    pieces = chunk_text(text, limit)
    assume(all(p[-1].isalpha() and q[0] in " \n" for p, q in zip(pieces, pieces[1:])))
    for name in ("gpt2", "cl100k_base"):
        enc = tiktoken.get_encoding(name)
        assert [i for p in pieces for i in enc.encode_ordinary(p)] == enc.encode_ordinary(text)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=400), min_size=1, max_size=5))
def test_every_tokenizer_round_trips_exactly(texts):
    for name in ("gpt2", "cl100k_base", "bytes"):
        tok = load_tokenizer(name)
        flat, offsets = tok.encode_docs(texts)
        assert flat.dtype == token_dtype(tok.vocab_size)
        for i, text in enumerate(texts):
            assert tok.decode(flat[offsets[i]:offsets[i + 1]]) == text


def test_special_token_text_is_encoded_as_ordinary_text():
    tok = load_tokenizer("gpt2")
    flat, _ = tok.encode_docs(["a<|endoftext|>b"])
    assert tok.eot_id not in flat.tolist()
    assert flat.tolist() == tok.encode_batch(["a<|endoftext|>b"])[0]


def test_bytes_tokenizer_ids_are_utf8_bytes_and_eot_is_256():
    tok = load_tokenizer("bytes")
    assert (tok.vocab_size, tok.eot_id, tok.lossless) == (257, 256, True)
    flat, _ = tok.encode_docs(["é!"])
    assert flat.tolist() == list("é!".encode("utf-8"))
    table = tok.token_bytes()
    assert len(table) == 257 and table[0xC3] == b"\xc3" and table[256] == b""


def test_tiktoken_identity_vocab_and_token_bytes():
    gpt2, cl100k = load_tokenizer("gpt2"), load_tokenizer("cl100k_base")
    assert (gpt2.vocab_size, gpt2.eot_id) == (50257, 50256)
    assert token_dtype(gpt2.vocab_size) == np.uint16 and token_dtype(cl100k.vocab_size) == np.uint32
    ident = gpt2.identity()
    assert set(ident) == {"name", "vocab_size", "eot_id", "ranks_sha256"} and len(ident["ranks_sha256"]) == 64
    assert ident["ranks_sha256"] != cl100k.identity()["ranks_sha256"]
    table = gpt2.token_bytes()
    assert len(table) == gpt2.vocab_size and table[gpt2.eot_id] == b""
    ids = gpt2.encode_batch(["Hello, world"])[0]
    assert b"".join(table[i] for i in ids) == b"Hello, world"


def test_unknown_tokenizer_names_the_accepted_ones():
    with pytest.raises(DataError, match=r"unknown tokenizer 'llama'.*gpt2.*cl100k_base.*bytes"):
        load_tokenizer("llama")


def test_uncached_encoding_offline_names_tiktoken_cache_dir(tmp_path, monkeypatch):
    """No cached file and no network (proxy pointing at a closed port): one line naming TIKTOKEN_CACHE_DIR."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(var, f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(DataError) as err:
        load_tokenizer("o200k_base")
    message = str(err.value)
    assert "TIKTOKEN_CACHE_DIR" in message and "o200k_base" in message and "\n" not in message
