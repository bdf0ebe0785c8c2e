"""Attractor-dynamics language model (no attention): embed a window, relax it, read it out.

A window of W token states (B, W, D) relaxes for K steps down a learned
energy landscape (see `dynamics.py`); a linear readout of the flattened final
window predicts the next token. Training minimises a trajectory-contrastive
loss plus auxiliary cross-entropies, as the original (BoggersTheLLM) does;
evaluation is plain NLL of the window readout, nothing else.
"""

from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nightshift.models.attractor import readout
from nightshift.models.attractor.config import Config
from nightshift.models.attractor.dynamics import Relaxation, Relaxed, _inv_softplus
from nightshift.models.attractor.sleep import TensionBuffer
from nightshift.models.errors import ModelConfigError
from nightshift.models.protocol import LanguageModel, SleepContext, Vocab, float32

log = logging.getLogger(__name__)


class AttractorLM(LanguageModel):
    family = "attractor"
    trains_by_gradient = True
    ablatable = ("relaxation",)  # off: read out the unrelaxed embedded window (K = 0) with the same weights

    def __init__(self, cfg: Config, vocab: Vocab) -> None:
        super().__init__(vocab)
        self.cfg = cfg
        # detach mode leaves the coupling parameters out of the graph (the original's defect), so
        # DDP must be told some parameters get no gradient
        self.ddp_find_unused_parameters = cfg.gradients == "detach"
        D, W, V = cfg.d_model, cfg.window, vocab.size
        self.embed = nn.Embedding(V, D)
        self.relax = Relaxation(cfg)
        self.readout_window = nn.Linear(W * D, V, bias=False)  # (flattened final window) -> next token
        self.readout_last = nn.Linear(D, V, bias=False)  # auxiliary head on the last position
        self.tau_raw = nn.Parameter(torch.tensor(_inv_softplus(cfg.tau_init)))  # tau = softplus(raw) > 0
        self.replay = TensionBuffer(cfg.replay_capacity, W + 1)
        self._replaying = False  # sleep updates do not refill the buffer they drain

    # ----------------------------------------------------------------- shapes
    @property
    def context_length(self) -> int:
        return self.cfg.window

    @property
    def eval_window(self) -> int:
        return max(self.cfg.eval_window, self.cfg.window)

    def check_dataset(self, *, max_doc_tokens: int, total_tokens: int | None = None) -> None:
        """Refuse a dataset whose documents cannot fill one window, before any compute.

        The trainer's windows span document boundaries, so a W longer than the
        longest document means *every* training window mixes documents and the
        model never sees a single document's context of W tokens.
        """
        W = self.cfg.window
        if max_doc_tokens < W:
            raise ModelConfigError(
                f"attractor window (W)={W} is larger than the longest document ({max_doc_tokens} tokens); "
                f"use window <= {max(max_doc_tokens, 1)}"
            )
        if total_tokens is not None and total_tokens < W + 1:
            raise ModelConfigError(
                f"attractor window (W)={W} needs >= {W + 1} training tokens, the dataset has {total_tokens}"
            )

    # ------------------------------------------------------------ the pieces
    def tau(self) -> Tensor:
        return F.softplus(self.tau_raw)

    def embed_window(self, ids: Tensor) -> Tensor:
        """ids (B, W) -> S0 (H, W, B, d): LayerNorm (no affine), then unit L2 norm per position."""
        cfg = self.cfg
        e = self.embed(ids)  # (B, W, D)
        e = F.normalize(F.layer_norm(e, (cfg.d_model,)), dim=-1)  # (B, W, D)
        B, W, _ = e.shape
        return e.view(B, W, cfg.n_waves, cfg.wave_dim).permute(2, 1, 0, 3).contiguous()  # (H, W, B, d)

    @staticmethod
    def to_bwd(S: Tensor) -> Tensor:
        """(H, W, B, d) -> (B, W, D)."""
        H, W, B, d = S.shape
        return S.permute(2, 1, 0, 3).reshape(B, W, H * d)

    def _matmul_dtype(self) -> torch.dtype:
        """bfloat16 or float32 operands for the training readouts (readout.py); evaluation is float32."""
        return readout.resolve(self.cfg.readout_precision, self.tau_raw.device)

    def window_logits(self, S: Tensor) -> Tensor:
        """S (B, W, D) -> logits (B, V) of the token after the window."""
        x = S.flatten(1) / self.tau()  # (B, W*D); 1/tau on the smaller side
        return readout.linear(x, self.readout_window.weight, self._matmul_dtype())  # (B, V)

    def last_logits(self, S: Tensor) -> Tensor:
        """S (..., D) -> logits (..., V) of the auxiliary last-position head."""
        return readout.linear(S / self.tau(), self.readout_last.weight, self._matmul_dtype())

    def causal_window_logits(self, S: Tensor) -> Tensor:
        """S (B, W, D) -> logits (B, W, V): position t reads the window left-padded with zeros up to t.

        The last position is exactly `window_logits`; earlier ones use the same weights, aligned right.
        """
        B, W, D = S.shape
        padded = F.pad(S, (0, 0, W - 1, 0))  # (B, 2W-1, D)
        shifted = padded.unfold(1, W, 1).transpose(-1, -2)  # (B, W, W, D): row t = positions t-W+1..t
        x = shifted.reshape(B, W, W * D) / self.tau()  # (B, W, W*D)
        return readout.linear(x, self.readout_window.weight, self._matmul_dtype())  # (B, W, V)

    def relax_ids(self, ids: Tensor, *, with_loss: bool) -> tuple[Relaxed, Tensor]:
        """ids (B, W) -> (relaxation result, final state (B, W, D)).

        With "relaxation" ablated, predictions read out the embedded window itself (K = 0 steps)
        through the same trained weights; training (with_loss) always relaxes.
        """
        S0 = self.embed_window(ids)  # (H, W, B, d)
        if "relaxation" in self.ablated_parts and not with_loss:
            with torch.no_grad():
                tension = self.relax.tension(S0)[-1]  # (B,)
            out = Relaxed(state=S0, tension=tension, traj=None, energy_sq=None, breaks=S0.new_zeros(()), steps=0)
        else:
            out = self.relax(S0, with_loss=with_loss)
        return out, self.to_bwd(out.state)

    # --------------------------------------------------------------- training
    def forward(self, tokens: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """tokens (B, W+1) -> (loss, metrics). Inputs are the first W tokens; the target is the last
        (or, with readout=all_positions, every next token)."""
        cfg = self.cfg
        if tokens.ndim != 2 or tokens.shape[1] != cfg.window + 1:
            raise ValueError(f"attractor expects tokens of shape (B, {cfg.window + 1}), got {tuple(tokens.shape)}")
        loss, metrics, tension = self._loss(tokens)
        if self.training and torch.is_grad_enabled() and not self._replaying:
            self.replay.add(tokens, tension)
        return loss, metrics

    def _loss(self, tokens: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        cfg = self.cfg
        out, S = self.relax_ids(tokens[:, :-1], with_loss=True)  # S: (B, W, D)
        if cfg.readout == "all_positions":
            targets = tokens[:, 1:]  # (B, W)
            logits = self.causal_window_logits(S)  # (B, W, V)
            last = self.last_logits(S)  # (B, W, V)
            ce_window = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
            ce_last = F.cross_entropy(last.flatten(0, 1), targets.flatten())
        else:
            target = tokens[:, -1]  # (B,)
            ce_window = F.cross_entropy(self.window_logits(S), target)
            ce_last = F.cross_entropy(self.last_logits(S[:, -1]), target)
        loss = (cfg.traj_weight * out.traj + cfg.window_ce_weight * ce_window
                + cfg.last_ce_weight * ce_last + cfg.energy_weight * out.energy_sq)
        metrics = {
            "ce": ce_window.detach(), "ce_last": ce_last.detach(), "traj": out.traj.detach(),
            "energy_sq": out.energy_sq.detach(), "tension": out.tension.mean(),
            "breaks_per_window": out.breaks / tokens.shape[0],
            "relax_steps": ce_window.new_tensor(float(out.steps)),
            "tau": self.tau().detach(),
        }
        return loss, metrics, out.tension

    # ------------------------------------------------------------------ sleep
    def sleep(self, ctx: SleepContext) -> dict[str, float]:
        """Replay the highest-tension windows kept since the last sleep; log tension before/after."""
        t0 = time.perf_counter()
        windows = self.replay.take()  # (n, W+1), most tense first
        n = windows.shape[0]
        if n == 0:
            return {"windows_replayed": 0.0, "seconds": time.perf_counter() - t0}
        device = self.tau_raw.device
        windows = windows.to(device)
        before = self._mean_tension(windows)
        updates = 0
        if ctx.optimize is not None and self.cfg.replay_steps:
            was_training, self._replaying = self.training, True
            self.train()
            try:
                bs = self.cfg.replay_batch
                for i in range(self.cfg.replay_steps):
                    idx = torch.arange(i * bs, (i + 1) * bs, device=device) % n  # cycle through the buffer
                    loss, _, _ = self._loss(windows[idx])
                    ctx.optimize(loss)
                    updates += 1
            finally:
                self._replaying = False
                self.train(was_training)
        after = self._mean_tension(windows)
        metrics = {"tension_before": before, "tension_after": after, "windows_replayed": float(n),
                   "updates": float(updates), "seconds": time.perf_counter() - t0}
        log.info("attractor sleep: %d windows, tension %.4f -> %.4f", n, before, after)
        return metrics

    @torch.no_grad()
    def _mean_tension(self, windows: Tensor) -> float:
        out, _ = self.relax_ids(windows[:, :-1], with_loss=False)
        return float(out.tension.mean())

    def train_flops_per_sample(self) -> float:
        """Forward + backward (x3) of: the W*D -> V and D -> V readouts, and K relaxation steps per
        window, each an energy MLP and its input gradient per wave (~3 d x d matmuls per position)
        plus the W x W positional coupling."""
        cfg, V = self.cfg, self.vocab.size
        D, W, K, d = cfg.d_model, cfg.window, cfg.steps, cfg.wave_dim
        predicted = W if cfg.readout == "all_positions" else 1
        readout = 2 * (W * D * V if cfg.readout == "last" else D * V * W) + 2 * D * V * predicted
        relax = K * W * (3 * 2 * D * d + 2 * W * D)
        return float(3 * (readout + relax))

    def get_extra_state(self) -> dict[str, Tensor]:
        return self.replay.state()

    def set_extra_state(self, state: dict[str, Tensor]) -> None:
        self.replay.load(state)

    # ------------------------------------------------------------- evaluation
    def _windows(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) -> (B, T, W): the W tokens ending at each position, left-padded with eot."""
        W = self.cfg.window
        pad = tokens.new_full((tokens.shape[0], W - 1), self.vocab.eot_id)  # (B, W-1)
        return torch.cat([pad, tokens], 1).unfold(1, W, 1)  # (B, T, W)

    def _chunks(self, n: int) -> int:
        """Windows per scoring chunk: logits (rows, V) and a few relaxation states (rows, W*D) stay bounded."""
        per_row = max(self.vocab.size, 4 * self.cfg.window * self.cfg.d_model)
        return max(1, min(n, self.cfg.eval_chunk_floats // per_row))

    @torch.no_grad()
    def next_logits(self, windows: Tensor) -> Tensor:
        """windows (N, W) -> logits (N, V) of the token after each window (the window readout)."""
        _, S = self.relax_ids(windows, with_loss=False)
        return self.window_logits(S)

    def log_probs(self, tokens: Tensor) -> Tensor:
        """tokens (B, T) -> (B, T, V). Position t relaxes the window of the W tokens ending at t.

        Where fewer than W tokens lie to the left, the window is left-padded with eot (the token that
        separates documents in training, so the model has seen it in every position). Each position
        depends only on tokens[:, : t + 1].
        """
        B, T = tokens.shape
        flat = self._windows(tokens).reshape(B * T, -1)  # (B*T, W)
        step = self._chunks(B * T)
        out = [F.log_softmax(self.next_logits(flat[i : i + step]).float(), -1) for i in range(0, B * T, step)]
        return torch.cat(out).view(B, T, -1)  # (B, T, V)

    @torch.no_grad()
    @float32
    def score(self, tokens: Tensor) -> Tensor:
        """tokens (B, T+1) -> (B, T) log p of each next token, one relaxed W-window per position
        (left-padded with eot near the start, see `log_probs`), in chunks to bound memory."""
        B, T1 = tokens.shape
        flat = self._windows(tokens[:, :-1]).reshape(B * (T1 - 1), -1)  # (B*T, W)
        targets = tokens[:, 1:].reshape(-1)  # (B*T,)
        step = self._chunks(flat.shape[0])
        out = []
        for i in range(0, flat.shape[0], step):
            logits = self.next_logits(flat[i : i + step]).float()  # (n, V)
            out.append(-F.cross_entropy(logits, targets[i : i + step], reduction="none"))  # (n,)
        return torch.cat(out).view(B, T1 - 1)  # (B, T)

    # ------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(
        self,
        prompt: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        repeat_penalty: float | None = None,
    ) -> Tensor:
        """prompt (T,) -> (T + max_new_tokens,). Each new token relaxes the last W ids from scratch
        (left-padded with eot), then samples with top-k (default the original's 28) and a penalty
        subtracted from the logits of the last `gen_repeat_last` ids (default 1.35)."""
        cfg = self.cfg
        top_k = cfg.gen_top_k if top_k is None else top_k
        penalty = cfg.gen_repeat_penalty if repeat_penalty is None else repeat_penalty
        out = prompt.clone()
        for _ in range(max_new_tokens):
            ctx = out[-cfg.window :]
            if ctx.numel() < cfg.window:
                ctx = torch.cat([ctx.new_full((cfg.window - ctx.numel(),), self.vocab.eot_id), ctx])
            logits = self.next_logits(ctx.unsqueeze(0))[0].float()  # (V,)
            if penalty and out.numel() > 0:
                recent = out[-cfg.gen_repeat_last :].unique()
                logits[recent] -= penalty
            logits = logits / max(temperature, 1e-6)
            if top_k and top_k < logits.numel():
                kth = torch.topk(logits, top_k).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            out = torch.cat([out, nxt.to(out.dtype)])
        return out
