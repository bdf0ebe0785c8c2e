"""Sleep for the attractor family: replay the windows that relaxed worst since the last sleep.

The original kept "high-tension windows" for later; here that is a bounded
buffer of the training windows whose final tension was highest. A sleep
measures their tension, runs a few optimizer updates on them through the
trainer's `ctx.optimize` (so DDP, clipping and the LR schedule stay the
trainer's), measures again, logs both, and empties the buffer.
"""

from __future__ import annotations

import torch
from torch import Tensor


class TensionBuffer:
    """The `capacity` highest-tension windows (B, W+1) seen since the last `take()`.

    Plain tensors (their size changes), saved through the model's extra state, on the device of
    the windows last added. Ties keep the earlier window, so the content is deterministic.
    """

    def __init__(self, capacity: int, width: int) -> None:
        self.capacity = capacity
        self.tokens = torch.zeros(0, width, dtype=torch.long)  # (n, W+1)
        self.tension = torch.zeros(0)  # (n,)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def add(self, tokens: Tensor, tension: Tensor) -> None:
        """tokens (B, W+1), tension (B,): keep the top `capacity` of buffer + batch."""
        if self.capacity == 0:
            return
        device = tokens.device  # the buffer follows the training windows' device: no host copy per step
        tokens = torch.cat([self.tokens.to(device), tokens.detach().long()])  # (n+B, W+1)
        tension = torch.cat([self.tension.to(device), tension.detach().to(device, torch.float32)])  # (n+B,)
        if tension.shape[0] > self.capacity:
            order = torch.sort(tension, descending=True, stable=True).indices[: self.capacity]
            tokens, tension = tokens[order], tension[order]
        self.tokens, self.tension = tokens, tension

    def take(self) -> Tensor:
        """Return the kept windows (highest tension first) and empty the buffer."""
        order = torch.sort(self.tension, descending=True, stable=True).indices
        out = self.tokens[order]
        self.tokens, self.tension = self.tokens[:0], self.tension[:0]
        return out

    def state(self) -> dict[str, Tensor]:
        return {"tokens": self.tokens.clone(), "tension": self.tension.clone()}

    def load(self, state: dict[str, Tensor]) -> None:
        self.tokens = state["tokens"].to(torch.long)
        self.tension = state["tension"].to(torch.float32)
