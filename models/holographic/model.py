"""HolographicModel: a memory family (no gradients) over Cl(3,1) context keys.

observe(tokens (B, T+1)) turns every full window of `context_size` tokens
inside each row into an episode (key, signature, next token); about one row
in `holdout_every` is held out instead (never stored, never counted) to fit
the probability mixture. score()/log_probs() look up with the same key
function (see context.py for positions with a shorter left context).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from nightshift.models.holographic import algebra, distributed, predict
from nightshift.models.holographic import sleep as dreaming
from nightshift.models.holographic.config import Config
from nightshift.models.holographic.memory import Memory, seeded
from nightshift.models.holographic.placement import device_memory, store_placement
from nightshift.models.holographic.predict import Evidence
from nightshift.models.holographic.prototypes import Prototypes
from nightshift.models.holographic.reading import reading_neighbours, window_counts
from nightshift.models.holographic.store import knn
from nightshift.models.protocol import LanguageModel, SleepContext, Vocab, ablated, float32

log = logging.getLogger(__name__)
QUERY_CHUNK = 4096  # queries per retrieval call in score()
HASH_SPAN = 32  # leading tokens of a row that decide whether it is held out
ACC_WINDOWS = 1024  # held-out windows whose top-1 accuracy sleep reports


class HolographicModel(LanguageModel):
    family = "holographic"
    trains_by_gradient = False
    # "memory": the kNN vote and the prototype prior (what is left is the bigram backoff);
    # "prototypes": prototypes and schemas only (the kNN vote stays).
    ablatable = ("memory", "prototypes")

    def __init__(self, config: Config, vocab: Vocab) -> None:
        super().__init__(vocab)
        self.config = config
        emb = algebra.token_embeddings(vocab.size, config.noise_std, config.seed)  # (V, 4, 4)
        self.register_buffer("embeddings", emb)
        bound = algebra.frobenius_normalize(algebra.bind(emb.double())).float()  # (V, 4, 4)
        self.register_buffer("bound_targets", bound, persistent=False)
        mult = (torch.arange(HASH_SPAN, dtype=torch.long) * 2654435761 + 97) % (1 << 31)
        self.register_buffer("_row_hash", mult, persistent=False)
        self.layout = config.layout
        self.memory = Memory(
            vocab_size=vocab.size, max_attractors=config.max_attractors, policy=config.store_policy,
            buffer_size=config.episodic_buffer_size, holdout_size=config.holdout_size,
            hist_width=config.prototype_targets, seed=config.seed, layout=self.layout, reading=config.reading,
            probe_width=config.context_size + 1,
        )
        self.store_placed: tuple[torch.device, str, str] | None = None  # (model device, "device"|"host", why)

    # ----------------------------------------------------------------- shapes
    @property
    def context_length(self) -> int:
        """The key's window, or the reading memory's when longer (the tokens a prediction can use)."""
        return max(self.config.context_size, self.config.reading_window)

    @property
    def eval_window(self) -> int:
        """Longer than the context, so the evaluator gives every scored token its full context."""
        return max(4 * self.context_length, self.context_length + 256)

    @property
    def train_seq_len(self) -> int:
        return self.config.train_seq_len

    @property
    def positions_per_row(self) -> int:
        return self.config.positions_per_row

    def _check(self, tokens: Tensor, min_len: int) -> Tensor:
        if tokens.dim() != 2 or tokens.shape[1] < min_len:
            raise ValueError(f"holographic: expected token ids of shape (B, >= {min_len}), got {tuple(tokens.shape)}")
        if tokens.dtype.is_floating_point or tokens.is_complex():
            raise ValueError(f"holographic: token ids must be integers, got {tokens.dtype}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab.size):
            raise ValueError(f"holographic: token ids must lie in [0, {self.vocab.size}), "
                             f"got [{int(tokens.min())}, {int(tokens.max())}]")
        return tokens.long().to(self.embeddings.device)  # keys are computed where the model lives

    def _place_store(self) -> None:
        """Keep the long-term store where `store_device` puts it for the model's device (placement.py); it is
        moved explicitly, once, when the decision changes (the first call on a device)."""
        device = self.embeddings.device
        if self.store_placed is None or self.store_placed[0] != device:
            where, why = store_placement(self.config, self.vocab, device, device_memory(device))
            self.store_placed = (device, where, why)
            log.info("holographic: %s", why)
        self.memory.store.to(device if self.store_placed[1] == "device" else "cpu")

    # --------------------------------------------------------------- training
    def heldout_rows(self, tokens: Tensor) -> Tensor:
        """(B, L) -> (B,) bool: a row is held out by a hash of its first tokens (rank- and order-free)."""
        span = min(HASH_SPAN, tokens.shape[1])
        h = (tokens[:, :span] * self._row_hash[:span]).sum(1)  # (B,)
        return h % self.config.holdout_every == 0

    @torch.no_grad()
    def observe(self, tokens: Tensor) -> dict[str, float]:
        """Store every full window of each row (B, T+1) as an episode; return metrics."""
        n = self.config.context_size
        tokens = self._check(tokens, n + 1)
        self._place_store()
        t0 = time.perf_counter()
        all_keys, norms, sigs = self.layout.features(self.embeddings, tokens[:, :-1])  # (B, T, D), (B, T), (B, T, 16)
        keys, norms, sigs = all_keys[:, n - 1 :], norms[:, n - 1 :], sigs[:, n - 1 :]  # full windows only
        targets = tokens[:, n:]  # (B, T-n+1): the token after each window
        prev = tokens[:, n - 1 : -1]  # last token of each window
        held = self.heldout_rows(tokens)  # (B,)
        keep = ~held

        def rows(mask: Tensor) -> dict[str, Tensor]:
            return {"key": keys[mask].reshape(-1, self.layout.dim), "norm": norms[mask].reshape(-1),
                    "sig": sigs[mask].reshape(-1, 16).half(), "target": targets[mask].reshape(-1).int()}

        episodes = rows(keep)
        heldout = rows(held) | {"prev": prev[held].reshape(-1).int()}
        if self.config.reading and bool(held.any()):  # what the reading memory will say about these windows
            rsims, rtargets = self.reading_evidence(all_keys[held], tokens[held, 1:])  # (h, T, r) each
            wcount, wsize = window_counts(tokens[held, 1:], tokens[held, 1:], self.config.reading_window)  # (h, T)
            heldout |= {"rsim": rsims[:, n - 1 :].reshape(-1, self.config.reading).float(),
                        "rtarget": rtargets[:, n - 1 :].reshape(-1, self.config.reading).int(),
                        "wcount": wcount[:, n - 1 :].reshape(-1).float(),
                        "wsize": wsize[:, n - 1 :].reshape(-1).float()}
        # H += phi^-1 sum_b normalize(K_b) normalize(bind(E_y_b)), K_b the whole window's product (the last
        # scale); a unit multivector is a matrix of norm 2.
        kmat = algebra.frobenius_normalize(self.layout.matrices(episodes["key"])[:, -1])  # (M, 4, 4)
        h_delta = algebra.PHI_INV * torch.einsum("mij,mjk->ik", kmat, self.bound_targets[targets[keep].reshape(-1)])
        h_delta = h_delta.double().cpu()  # H lives on the host
        world = distributed.world()
        self.memory.add(
            episodes, heldout, tokens[keep, :-1], tokens[keep, 1:], h_delta,
            rank=world[0] if world else 0, synced=world is None, probe=tokens[keep, : n + 1].int(),
        )
        m = episodes["target"].shape[0]
        return {
            "samples": float(m),
            "heldout_samples": float(heldout["target"].shape[0]),
            "store_size": float(self.memory.store.size),
            "observe_seconds": time.perf_counter() - t0,
        }

    def synchronize(self) -> None:
        if distributed.world() is not None:
            self.memory.synchronize()

    # --------------------------------------------------------------- retrieval
    def similarity(self, queries: Tensor, neighbours: Tensor, raw: Tensor) -> Tensor:
        """The vote kernel's similarity: raw inner products (Q, k), or the matched-suffix depth."""
        if self.config.vote == "depth":
            return self.layout.depth(queries, neighbours).masked_fill(raw == float("-inf"), float("-inf"))
        return raw

    def reading_evidence(self, keys: Tensor, targets: Tensor, start: int = 1) -> tuple[Tensor, Tensor]:
        """Rows of keys (B, L, D) and next tokens (B, L) -> reading neighbours' (sims, next tokens) (B, L, r).

        Positions before `start` get no neighbours (callers that only read later positions).
        """
        raw, pos, nxt = reading_neighbours(keys, targets, self.config.reading, self.config.reading_window, start)
        nb = torch.gather(keys, 1, pos.reshape(keys.shape[0], -1, 1).expand(-1, -1, keys.shape[2]))  # (B, L*r, D)
        sims = self.similarity(keys, nb.reshape(*pos.shape, keys.shape[2]), raw)  # (B, L, r)
        if sims.shape[2] < self.config.reading:  # a short row: pad with "no neighbour"
            pad = self.config.reading - sims.shape[2]
            sims = torch.nn.functional.pad(sims, (0, pad), value=float("-inf"))
            nxt = torch.nn.functional.pad(nxt, (0, pad))
        return sims, nxt

    def evidence(
        self, keys: Tensor, sigs: Tensor, prev: Tensor, protos: Prototypes | None = None,
        reading: dict[str, Tensor] | None = None,
    ) -> Evidence:
        """Flat queries (Q, D), (Q, 16), (Q,) [+ reading-memory evidence] -> all evidence, minus ablated parts."""
        prev = prev.long().cpu()
        if "memory" in self.ablated_parts:  # backoff only: no neighbours, no reading memory, no prior
            none = torch.zeros(keys.shape[0], 0)
            return Evidence(sims=none, targets=none.long(), prior=None, prev=prev)
        self._place_store()
        store, w = self.memory.store, self.config.signature_weight
        if w > 0:
            q = torch.cat([keys * (1 - w), sigs.float() * w], 1)  # dot = (1-w) cos(K) + w cos(sig)
            bank = torch.cat([store.view("key"), store.view("sig").float()], 1)
        else:
            q, bank = keys, store.view("key")
        sims, idx = knn(q, bank, self.config.knn_k)  # (Q, k), on the store's device
        if self.config.vote == "depth" and idx.numel():
            sims = self.similarity(keys.to(bank.device), store.view("key")[idx], sims)  # (Q, k)
        targets = store.view("target")[idx]  # (Q, k)
        sims, targets, keys = sims.cpu(), targets.long().cpu(), keys.cpu()  # evidence is mixed on the host
        protos = self.memory.protos if protos is None else protos
        prior = None if "prototypes" in self.ablated_parts else protos.prior(keys, self.config.prior_k)
        r = {k: v.cpu() for k, v in (reading or {}).items()}  # explicit: evidence is mixed on the host
        return Evidence(sims=sims, targets=targets, prior=prior, prev=prev, rsims=r.get("rsims"),
                        rtargets=r["rtargets"].long() if "rtargets" in r else None, wsize=r.get("wsize"),
                        wcount=r.get("wcount"), wtokens=r.get("wtokens"))

    def heldout_evidence(self, protos: Prototypes | None = None) -> tuple[Evidence, Tensor]:
        h = self.memory.holdout
        reading = None
        if self.config.reading:
            reading = {"rsims": h.view("rsim"), "rtargets": h.view("rtarget"), "wsize": h.view("wsize"),
                       "wcount": h.view("wcount")}
        ev = self.evidence(h.view("key"), h.view("sig"), h.view("prev"), protos, reading)
        return ev, h.view("target").long()

    def ensure_fitted(self) -> None:
        """Fit the mixture on the held-out training windows if memory changed since the last fit.

        Under an ablation the mixture is refit with the same parts off, on the same held-out
        TRAINING windows (never validation): "memory off" is then the best backoff-only model
        (its own beta), not the full model's weights with a hole in them.
        """
        mem = self.memory
        if not mem.fitted:
            parts, self.ablated_parts = self.ablated_parts, frozenset()
            try:
                if mem.holdout.size > 0:
                    ev, y = self.heldout_evidence()
                    mem.params, mem.fit_info = self._fit(ev, y)
            finally:
                self.ablated_parts = parts
            mem.fitted = True
        if self.ablated_parts and self.ablated_parts not in mem.ablation_fits:
            fit = (mem.params, dict(mem.fit_info))
            if mem.holdout.size > 0:
                ev, y = self.heldout_evidence()
                fit = self._fit(ev, y)
            mem.ablation_fits[self.ablated_parts] = fit

    def _fit(self, ev: Evidence, y: Tensor) -> tuple[predict.MixParams, dict[str, float]]:
        if self.config.vote == "depth":
            return predict.fit_depth(ev, y, self.memory.backoff, self.layout.num_scales)
        return predict.fit(ev, y, self.memory.backoff)

    @property
    def mix(self) -> predict.MixParams:
        """Mixture parameters of the active parts (call ensure_fitted first)."""
        if self.ablated_parts:
            return self.memory.ablation_fits[self.ablated_parts][0]
        return self.memory.params

    def _queries(self, ctx: Tensor, nxt: Tensor, scored: bool, start: int = 1
                 ) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor] | None]:
        """Rows ctx (B, L) with the token after each position nxt (B, L) -> flat (keys, sigs, prev, reading).

        nxt[:, t] is read as the next token of positions s < t (the reading memory), and as the scored
        token of position t when `scored` (score()); otherwise its last column may be anything.
        """
        keys, _, sigs = self.layout.features(self.embeddings, ctx)  # (B, L, D), _, (B, L, 16)
        reading = None
        if self.config.reading and "memory" not in self.ablated_parts:
            rs, rt = self.reading_evidence(keys, nxt, start)  # (B, L, r) x 2
            window = self.config.reading_window
            wcount, wsize = window_counts(nxt, nxt, window)  # (B, L) x 2
            reading = {"rsims": rs.reshape(-1, rs.shape[2]), "rtargets": rt.reshape(-1, rt.shape[2]),
                       "wsize": wsize.reshape(-1)}
            if scored:
                reading["wcount"] = wcount.reshape(-1)
            else:  # full distributions need the window's tokens; gathered per chunk (see _chunks)
                reading["nxt"] = nxt
        return keys.reshape(-1, self.layout.dim), sigs.reshape(-1, 16), ctx.reshape(-1), reading

    def _chunks(self, keys: Tensor, sigs: Tensor, prev: Tensor, reading: dict[str, Tensor] | None,
                chunk: int) -> Iterator[tuple[Any, ...]]:
        for s in range(0, prev.shape[0], chunk):
            sl = slice(s, s + chunk)
            part = None
            if reading is not None:
                part = {k: v[sl] for k, v in reading.items() if k != "nxt"}
                if "nxt" in reading:
                    part["wtokens"] = self._window_tokens(reading["nxt"], sl)
            yield sl, self.evidence(keys[sl], sigs[sl], prev[sl], reading=part)

    def _window_tokens(self, nxt: Tensor, sl: slice) -> Tensor:
        """Flat query slice of rows nxt (B, L) -> (n, W) next tokens of each query's reading window (-1: none)."""
        length = nxt.shape[1]
        width = min(self.config.reading_window, length)
        idx = torch.arange(nxt.numel(), device=nxt.device)[sl]  # (n,) flat positions
        b, t = idx // length, idx % length
        s = t[:, None] - width + torch.arange(width, device=nxt.device)  # (n, W): positions t-W .. t-1
        return nxt[b[:, None], s.clamp_min(0)].masked_fill(s < 0, -1)

    # ------------------------------------------------------------- evaluation
    @torch.no_grad()
    @float32
    def score(self, tokens: Tensor) -> Tensor:
        """(B, T+1) -> (B, T) natural-log p(tokens[:, t+1] | tokens[:, :t+1]); causal, vectorised."""
        device = tokens.device
        tokens = self._check(tokens, 2)
        self.ensure_fitted()
        keys, sigs, prev, reading = self._queries(tokens[:, :-1], tokens[:, 1:], scored=True)
        y = tokens[:, 1:].reshape(-1).cpu()
        out = torch.empty(y.shape[0], dtype=torch.float64)
        for sl, ev in self._chunks(keys, sigs, prev, reading, QUERY_CHUNK):
            out[sl] = predict.point_probs(ev, y[sl], self.mix, self.memory.backoff)
        return out.log().float().reshape(tokens.shape[0], -1).to(device)  # outputs on the input's device

    @torch.no_grad()
    def log_probs(self, tokens: Tensor) -> Tensor:
        """(B, T) -> (B, T, V) log-distribution over the whole vocabulary."""
        device = tokens.device
        tokens = self._check(tokens, 1)
        self.ensure_fitted()
        nxt = torch.cat([tokens[:, 1:], tokens[:, -1:]], 1)  # (B, T): the last column is never read
        keys, sigs, prev, reading = self._queries(tokens, nxt, scored=False)
        chunk = max(1, min(QUERY_CHUNK, (1 << 24) // self.vocab.size))
        parts = [predict.full_probs(ev, self.mix, self.memory.backoff).log().float()
                 for _, ev in self._chunks(keys, sigs, prev, reading, chunk)]
        return torch.cat(parts).reshape(*tokens.shape, self.vocab.size).to(device)  # on the input's device

    def sampling_device(self, prompt_device: torch.device) -> torch.device:
        """Sampling runs on the host whatever the prompt's device: its generator is a CPU one."""
        return torch.device("cpu")

    @torch.no_grad()
    def generate(
        self, prompt: Tensor, max_new_tokens: int, *, temperature: float = 1.0, top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Sample token by token from the distribution at the last position of the last window."""
        out = prompt.long().cpu().clone()  # sampling runs on the host; the result goes back to the prompt's device
        for _ in range(max_new_tokens):
            ctx = self._check(out[-self.context_length :].unsqueeze(0), 1)  # (1, <=C) on the model's device
            self.ensure_fitted()
            nxt_known = torch.cat([ctx[:, 1:], ctx[:, -1:]], 1)  # (1, <=C): the last column is never read
            keys, sigs, prev, reading = self._queries(ctx, nxt_known, scored=False, start=ctx.shape[1] - 1)
            last = slice(keys.shape[0] - 1, keys.shape[0])  # only the last position is sampled from
            part = None
            if reading is not None:
                part = {k: v[last] for k, v in reading.items() if k != "nxt"}
                part["wtokens"] = self._window_tokens(reading["nxt"], last)
            ev = self.evidence(keys[last], sigs[last], prev[last], reading=part)
            logits = predict.full_probs(ev, self.mix, self.memory.backoff)[0].log() / max(temperature, 1e-6)
            if top_k is not None and top_k < logits.numel():
                kth = torch.topk(logits, top_k).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            out = torch.cat([out, nxt])
        return out.to(prompt.device)

    # ------------------------------------------------------------------ sleep
    def _heldout_quality(
        self, base: Evidence, y: Tensor, protos: Prototypes, accuracy: bool = True
    ) -> tuple[predict.MixParams, dict[str, float], float]:
        """Fit on held-out windows with these prototypes; (params, fit info, held-out top-1 accuracy).

        `base` holds the held-out neighbours (they do not depend on the prototypes). The accuracy
        (the argmax of full distributions: the costly part) uses the first ACC_WINDOWS windows, without
        the reading window's token counts (held-out windows keep only the count of their own target).
        """
        h = self.memory.holdout
        ev = dataclasses.replace(base, prior=protos.prior(h.view("key"), self.config.prior_k))  # all else kept
        params, info = self._fit(ev, y)
        if not accuracy:
            return params, info, float("nan")
        correct, total = 0, min(ACC_WINDOWS, y.shape[0])
        chunk = max(1, min(QUERY_CHUNK, (1 << 24) // self.vocab.size))
        for s in range(0, total, chunk):
            sl = slice(s, min(s + chunk, total))
            correct += int((predict.full_probs(ev.rows(sl), params, self.memory.backoff).argmax(1) == y[sl]).sum())
        return params, info, correct / max(1, total)

    def consider_schemas(self, schema_rows: dict[str, Tensor], base: Evidence, y: Tensor) -> dict[str, float]:
        """REM's schemas join the prototypes only if the held-out fit with them is better (schema_gate).

        Both fits are refit from scratch on the same held-out training windows (`base`, `y`), so a
        schema is kept exactly when the mixture can use it to predict unseen text better.
        """
        mem = self.memory
        _, info0, acc0 = self._heldout_quality(base, y, mem.protos)
        candidate = mem.protos.copy()
        candidate.append(schema_rows)
        dreaming.merge_similar(candidate)
        _, info1, acc1 = self._heldout_quality(base, y, candidate)
        earned = info1["heldout_nats"] < info0["heldout_nats"]  # must improve, not merely not hurt
        if earned or not self.config.schema_gate:
            mem.protos = candidate
            mem.fitted = False
        return {"heldout_acc_without_schemas": acc0, "heldout_acc_with_schemas": acc1,
                "heldout_nats_without_schemas": info0["heldout_nats"],
                "heldout_nats_with_schemas": info1["heldout_nats"],
                "schemas_accuracy_delta": acc1 - acc0, "schemas_earned": float(earned)}

    @torch.no_grad()
    def sleep(self, ctx: SleepContext) -> dict[str, float]:
        """Non-REM -> prototypes, REM -> schemas (kept only if they earn it), prune, merge, Grace on H.

        Sleep is training: it always judges with every part on, whatever ablation is set for scoring.
        """
        with ablated(self, ()):
            return self._sleep(ctx)

    def _sleep(self, ctx: SleepContext) -> dict[str, float]:
        t0 = time.perf_counter()
        self.synchronize()  # a no-op outside DDP; the trainer also syncs before sleep
        mem, cfg = self.memory, self.config
        buf = mem.buffer
        rows, stats = dreaming.nrem(buf.view("key"), buf.view("norm"), buf.view("sig").float(),
                                    buf.view("target"), cfg.prototype_targets, self.layout)
        # forgetting: what earlier sleeps consolidated loses support unless new episodes merge into it again,
        # so prototypes that stop recurring fall under the prune rule's support < 2
        mem.protos.support = mem.protos.support * cfg.support_decay
        if rows:
            mem.protos.append(rows)
        merged = dreaming.merge_similar(mem.protos)
        schema_rows, rem_stats = dreaming.rem(
            mem.protos, cfg.rem_cycles, cfg.rem_pairs, seeded(cfg.seed, 1, mem.counters["sleeps"]))
        metrics = stats | rem_stats | {"merged": float(merged)}
        base, y = self.heldout_evidence() if mem.holdout.size else (None, None)
        if base is not None and schema_rows:
            metrics |= self.consider_schemas(schema_rows, base, y)
        elif schema_rows:
            mem.protos.append(schema_rows)  # nothing to judge them on yet
        metrics["pruned"] = float(dreaming.prune(mem.protos, cfg.max_prototypes))
        mem.H = algebra.grace(mem.H)
        buf.clear()
        mem.counters["sleeps"] += 1
        mem.fitted = False
        if base is not None:
            mem.params, mem.fit_info, acc = self._heldout_quality(base, y, mem.protos)
            mem.fitted = True
            metrics |= {"heldout_acc": acc, "heldout_nats": mem.fit_info["heldout_nats"],
                        "lambda_mean": mem.fit_info["lambda_mean"], "prototype_weight": mem.params.gamma}
            if len(mem.protos):  # what prototypes and schemas earn: the same fit without them
                _, info0, _ = self._heldout_quality(base, y, Prototypes(cfg.prototype_targets, self.layout),
                                                    accuracy=False)
                metrics["heldout_nats_without_prototypes"] = info0["heldout_nats"]
        if mem.res["probe"].size >= 8 and cfg.context_size >= 3:  # the spec's grammar test, on training windows
            from nightshift.models.holographic.metrics import vorticity_discriminability, vorticity_pairs

            probe = mem.res["probe"].view("tokens").long()  # (P, n + 1)
            vort = vorticity_discriminability(self, probe, pairs=vorticity_pairs(cfg.context_size),
                                              seed=mem.counters["sleeps"])
            metrics |= {f"vorticity_{k}": v for k, v in vort.items()}
        hc = algebra.coefficients(mem.H.float())
        metrics |= {
            "prototypes": float(len(mem.protos)),
            "schemas": float(mem.protos.num_schemas),
            "new_schemas": float(len(schema_rows["centroid"])) if schema_rows else 0.0,
            "compression_ratio": stats["episodes"] / max(1.0, stats.get("new_prototypes", 0.0)),
            "H_sigma": float(algebra.grace_stability(hc)),
            "H_enstrophy_fraction": float(algebra.enstrophy(hc) / (hc * hc).sum().clamp_min(1e-30)),
            "seconds": time.perf_counter() - t0,
        }
        return {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))}

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> Any:
        self.memory.backoff.consolidate()
        return {"memory": self.memory.state(), "config_context_size": self.config.context_size}

    def set_extra_state(self, state: Any) -> None:
        if int(state["config_context_size"]) != self.config.context_size:
            raise ValueError(
                f"holographic checkpoint has context_size={state['config_context_size']}, "
                f"model has {self.config.context_size}"
            )
        self.memory.load(state["memory"])

    def memory_bytes(self) -> int:
        return self.memory.nbytes()

    @torch.no_grad()
    def eval_metrics(self) -> dict[str, float]:
        """The spec's seed metrics of the current memory (diagnostics.py; keys in docs/seed_metrics.md).

        Bounded cost (fixed samples of the probe, holdout and store), deterministic, every part on whatever
        ablation is set for scoring (like sleep), local only (no collective: the trainer calls it on rank 0).
        Metrics undefined for the current state (e.g. prototype ones before the first sleep) are omitted.
        """
        from nightshift.models.holographic.diagnostics import seed_metrics

        with ablated(self, ()):
            return seed_metrics(self)
