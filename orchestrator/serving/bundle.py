"""A trained model as two self-contained files: weights + config, and the tokenizer.

`checkpoint.pt` holds only what inference needs (the model's state dict,
non-parametric memory included, the RunConfig, the step and the tokenizer's
identity) and loads with `torch.load(weights_only=True)`: no pickled code
runs when someone opens a model they downloaded. `tokenizer/` holds the
tokenizer's ranks in tiktoken's own file format, so a logged model works
offline, without a tiktoken cache or a nightshift store. Loading checks the
ranks against the identity the dataset recorded and refuses a mismatch.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import torch

from nightshift.models.protocol import LanguageModel
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import RunConfig
from nightshift.orchestrator.runs.vocab import vocab_of
from nightshift.pipelines.tokenizers import ByteTokenizer, TiktokenTokenizer, load_tokenizer, token_dtype

FORMAT = "nightshift.model/1"
CHECKPOINT_FILE = "checkpoint.pt"
TOKENIZER_DIR = "tokenizer"
RANKS_FILE = "ranks.tiktoken"
TOKENIZER_META = "tokenizer.json"


@dataclass(slots=True)
class Bundle:
    """A loaded model, ready to generate: the model in eval mode, its tokenizer and what it was trained as."""

    model: LanguageModel
    tokenizer: Any
    config: RunConfig
    step: int

    @property
    def family(self) -> str:
        return self.config.model.family

    @property
    def label(self) -> str:
        return f"{self.config.model.family}:{self.config.model.flavor}"


def write_checkpoint(model: LanguageModel, config: RunConfig, tokenizer: Any, step: int, path: str) -> str:
    """Inference-only checkpoint (no optimizer, reader or RNG state); returns `path`."""
    state = {"format": FORMAT, "model": model.state_dict(), "config": config.to_dict(), "step": int(step),
             "tokenizer": tokenizer.identity()}
    torch.save(state, path)
    return path


def write_tokenizer(tokenizer: Any, folder: str) -> str:
    """The tokenizer's ranks (`base64(token) rank` lines, tiktoken's format) and its regex and specials."""
    os.makedirs(folder, exist_ok=True)
    meta: dict[str, Any] = {"identity": tokenizer.identity()}
    if isinstance(tokenizer, TiktokenTokenizer):
        enc = tokenizer._enc
        meta.update({"name": enc.name, "pat_str": enc._pat_str, "special_tokens": dict(enc._special_tokens)})
        with open(os.path.join(folder, RANKS_FILE), "wb") as f:
            for token, rank in sorted(enc._mergeable_ranks.items(), key=lambda kv: kv[1]):
                f.write(base64.b64encode(token) + b" " + str(rank).encode() + b"\n")
    with open(os.path.join(folder, TOKENIZER_META), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    return folder


class BundledTiktoken(TiktokenTokenizer):
    """A tiktoken encoding rebuilt from a model's own ranks file (no download, no cache)."""

    def __init__(self, folder: str) -> None:
        import tiktoken

        with open(os.path.join(folder, TOKENIZER_META)) as f:
            meta = json.load(f)
        ranks: dict[bytes, int] = {}
        with open(os.path.join(folder, RANKS_FILE), "rb") as f:
            for line in f:
                if line.strip():
                    token, rank = line.split()
                    ranks[base64.b64decode(token)] = int(rank)
        self._enc = tiktoken.Encoding(name=meta["name"], pat_str=meta["pat_str"], mergeable_ranks=ranks,
                                      special_tokens={k: int(v) for k, v in meta["special_tokens"].items()})
        self.name = meta["identity"]["name"]
        self.vocab_size = int(self._enc.n_vocab)
        self.eot_id = int(self._enc.eot_token)
        self.dtype = token_dtype(self.vocab_size)
        self.threads = 1
        self._ranks = ranks

    def identity(self) -> dict:
        h = hashlib.sha256()
        for token, rank in sorted(self._ranks.items(), key=lambda kv: kv[1]):
            h.update(base64.b64encode(token) + b" " + str(rank).encode() + b"\n")
        for token, rank in sorted(self._enc._special_tokens.items(), key=lambda kv: kv[1]):
            h.update(f"special {token} {rank}\n".encode())
        return {"name": self.name, "vocab_size": self.vocab_size, "eot_id": self.eot_id, "ranks_sha256": h.hexdigest()}

    def token_bytes(self) -> tuple[bytes, ...]:
        table = [b""] * self.vocab_size
        for token, rank in self._ranks.items():
            table[rank] = token
        return tuple(table)


def read_tokenizer(folder: str) -> Any:
    with open(os.path.join(folder, TOKENIZER_META)) as f:
        identity = json.load(f)["identity"]
    if identity["name"] == "bytes":
        tokenizer: Any = ByteTokenizer()
    elif os.path.exists(os.path.join(folder, RANKS_FILE)):
        tokenizer = BundledTiktoken(folder)
    else:  # an older folder without ranks: the named encoding from tiktoken (cache or download)
        tokenizer = load_tokenizer(identity["name"])
    if tokenizer.identity() != identity:
        raise UserError(f"tokenizer in {folder} does not match the identity the model was trained with "
                        f"({identity['name']}, ranks {identity['ranks_sha256'][:12]})")
    return tokenizer


def load_bundle(checkpoint: str, tokenizer_dir: str, device: str = "cpu") -> Bundle:
    """Rebuild the model from `checkpoint.pt` (weights_only) and the tokenizer folder beside it."""
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)  # placed by load_state_dict
    except FileNotFoundError:
        raise UserError(f"no model checkpoint at {checkpoint}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{checkpoint} is not a nightshift model checkpoint (expected format {FORMAT})")
    tokenizer = read_tokenizer(tokenizer_dir)
    if tokenizer.identity() != state["tokenizer"]:
        raise UserError(f"tokenizer in {tokenizer_dir} is not the one {checkpoint} was trained with")
    config = RunConfig.from_dict(state["config"])
    model = config.model.config.build(vocab_of(tokenizer))
    model.load_state_dict(state["model"])
    model.to(torch.device(device)).eval()
    return Bundle(model=model, tokenizer=tokenizer, config=config, step=int(state["step"]))


def bundle_in(model_dir: str) -> tuple[str, str]:
    """(checkpoint, tokenizer folder) inside a logged model's folder (MLflow puts artifacts in `artifacts/`)."""
    for base in (os.path.join(model_dir, "artifacts"), model_dir):
        ckpt, tok = os.path.join(base, CHECKPOINT_FILE), os.path.join(base, TOKENIZER_DIR)
        if os.path.exists(ckpt) and os.path.isdir(tok):
            return ckpt, tok
    raise UserError(f"{model_dir} holds no nightshift model ({CHECKPOINT_FILE} and {TOKENIZER_DIR}/ "
                    "under artifacts/)")
