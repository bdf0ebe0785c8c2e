"""A progress bar for people running prepare: MB of text done, docs, tokens/s (stderr, tqdm)."""

from __future__ import annotations

import sys
import time


class PrepareProgress:
    def __init__(self, label: str, *, total_bytes: int, enabled: bool) -> None:
        self.start = time.perf_counter()
        self.docs = 0
        self.tokens = 0
        self.reused = 0
        self.bar = None
        if enabled and sys.stderr.isatty():  # a bar is for people; in logs and pipes it is noise
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc=label[:40], leave=False,
                            dynamic_ncols=True)

    def update(self, entry: dict) -> None:
        self.docs += entry["docs"]
        self.tokens += entry["tokens"]
        if self.bar is not None:
            elapsed = max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix(docs=self.docs, tok_s=f"{self.tokens / elapsed:,.0f}", reused=self.reused,
                                 refresh=False)
            self.bar.update(entry["bytes"])

    def update_reused(self, entry: dict) -> None:
        self.reused += 1
        if self.bar is not None:
            self.bar.update(entry["bytes"])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
