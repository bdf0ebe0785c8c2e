"""Which document goes where: train/validation split, byte caps and the shard plan.

The validation split depends only on the source, the split rule, `valid_bytes`
and `valid_docs`, never on `max_bytes`, so every size of one source is scored
on the same bytes, and no document id lands in both splits (an id's split is a
pure function of the id, or the source's own).

Validation spans many documents, never one document's prefix (a book's first
64 KB is one author's voice and a title page): each validation document
contributes at most a *share* of `valid_bytes`, a contiguous slice from its
middle starting at a line (shorter documents whole). The share is
valid_bytes / valid_docs; with the source's own split, when it has fewer
documents than that, the share grows so the fewer documents still fill
`valid_bytes` (water-filling over the documents' sizes, found by a first pass
over the validation split). `valid_docs=0` takes whole documents in stream
order (the old rule). The manifest records how the split was drawn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.shards import ShardTask
from nightshift.pipelines.sources import Document, Source

SPLIT_RULES = ("auto", "source", "hash")
SPLITS = ("train", "validation")
DRAW = "spread-middle/1"  # how a validation document's slice is chosen (recorded in the manifest)


def hash_to_validation(doc_id: str, *, seed: int, permille: int) -> bool:
    """Stable across machines and Python versions: sha256, not hash()."""
    h = hashlib.sha256(f"{seed}:{doc_id}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(h[:8], "big") % 1000 < permille


def resolve_rule(rule: str, source: Source) -> str:
    if rule not in SPLIT_RULES:
        raise DataError(f"unknown split rule {rule!r}; accepted: {', '.join(SPLIT_RULES)}")
    if rule == "auto":
        return "source" if source.has_splits else "hash"
    if rule == "source" and not source.has_splits:
        raise DataError(f"split rule 'source' needs a source with its own train/validation split; "
                        f"{source.spec} has none (use --split-rule hash)")
    return rule


@dataclass(slots=True)
class SplitStats:
    docs: int = 0
    bytes: int = 0
    truncated_docs: int = 0
    shards: int = 0


@dataclass(slots=True)
class PlanStats:
    """Counts the manifest records about how the plan was made."""

    splits: dict[str, SplitStats] = field(default_factory=lambda: {s: SplitStats() for s in SPLITS})
    seen_docs: int = 0
    skipped_empty_docs: int = 0
    invalid_utf8_replacements: int = 0
    source_exhausted: bool = False
    validation_text_sha256: str = ""
    validation_draw: dict = field(default_factory=dict)


def water_fill(sizes: list[int], total: int) -> int:
    """The smallest cap c with sum(min(s, c)) >= total (every document if they hold less than `total`)."""
    if sum(sizes) <= total:
        return max(sizes, default=0)
    lo, hi = 1, max(sizes)
    while lo < hi:
        mid = (lo + hi) // 2
        if sum(min(s, mid) for s in sizes) >= total:
            hi = mid
        else:
            lo = mid + 1
    return lo


def middle_slice(text: str, share: int) -> str:
    """At most `share` UTF-8 bytes from the middle of `text`, starting at a line where one is near."""
    data = text.encode("utf-8")
    if len(data) <= share:
        return text
    start = (len(data) - share) // 2
    newline = data.find(b"\n", start, start + min(share // 4, 4096))
    if newline >= 0:
        start = newline + 1
    return data[start:start + share].decode("utf-8", errors="ignore")


def validation_share(source: Source, rule: str, valid_bytes: int, valid_docs: int) -> int:
    """Bytes each validation document may contribute (0: whole documents, the old rule)."""
    if not valid_docs:
        return 0
    share = -(-valid_bytes // valid_docs)
    if rule != "source":  # hash rule: validation documents arrive among the training ones; the plain share
        return share
    sizes: list[int] = []
    for doc in source.documents("validation"):  # a first pass, only as far as the share fills the cap
        if doc.text.strip():
            sizes.append(len(doc.text.encode("utf-8")))
            if sum(min(s, share) for s in sizes) >= valid_bytes:
                return share
    return max(share, water_fill(sizes, valid_bytes)) if sizes else share


@dataclass(slots=True)
class _Pending:
    split: str
    index: int = 0
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    total: int = 0

    def take(self) -> ShardTask:
        task = ShardTask(split=self.split, index=self.index, doc_ids=self.ids, texts=self.texts, n_bytes=self.sizes)
        self.index += 1
        self.ids, self.texts, self.sizes, self.total = [], [], [], 0
        return task


def plan_shards(source: Source, *, rule: str, max_bytes: int, valid_bytes: int, shard_bytes: int,
                valid_permille: int, split_seed: int, stats: PlanStats, valid_docs: int = 0) -> Iterator[ShardTask]:
    """Stream documents into shard tasks, in a deterministic order (the same on every re-run)."""
    caps = {"train": max_bytes, "validation": valid_bytes}
    share = validation_share(source, rule, valid_bytes, valid_docs)
    pending = {s: _Pending(s) for s in SPLITS}
    vhash = hashlib.sha256()

    def add(doc: Document, split: str) -> Iterator[ShardTask]:
        st = stats.splits[split]
        room = caps[split] - st.bytes
        if room <= 0:
            return
        text = middle_slice(doc.text, share) if split == "validation" and share else doc.text
        size = len(text.encode("utf-8"))
        if size > room:  # the last document is cut at a character boundary so sizes are exact
            text = text.encode("utf-8")[:room].decode("utf-8", errors="ignore")
            size = len(text.encode("utf-8"))
            st.truncated_docs += 1
            if not text.strip():
                caps[split] = st.bytes
                return
        p = pending[split]
        p.ids.append(doc.doc_id)
        p.texts.append(text)
        p.sizes.append(size)
        p.total += size
        st.docs += 1
        st.bytes += size
        if split == "validation":
            vhash.update(doc.doc_id.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8") + b"\0")
        if p.total >= shard_bytes or st.bytes >= caps[split]:
            st.shards += 1
            yield p.take()

    def full(split: str) -> bool:
        return stats.splits[split].bytes >= caps[split]

    def usable(doc: Document) -> bool:
        stats.seen_docs += 1
        stats.invalid_utf8_replacements += doc.replaced
        if not doc.text.strip():
            stats.skipped_empty_docs += 1
            return False
        return True

    if rule == "source":
        for split in ("validation", "train"):
            for doc in source.documents(split):
                if usable(doc):
                    yield from add(doc, split)
                if full(split):
                    break
            else:
                stats.source_exhausted = stats.source_exhausted or split == "train"
    else:
        docs = source.documents("train" if source.has_splits else None)  # held-out source splits stay out
        for doc in docs:
            if usable(doc):
                to_valid = hash_to_validation(doc.doc_id, seed=split_seed, permille=valid_permille)
                yield from add(doc, "validation" if to_valid else "train")
            if full("train") and full("validation"):
                break
        else:
            stats.source_exhausted = True
    for split in SPLITS:
        if pending[split].ids:
            stats.splits[split].shards += 1
            yield pending[split].take()
    stats.validation_text_sha256 = vhash.hexdigest()
    stats.validation_draw = {"draw": DRAW if share else "whole-documents", "target_docs": valid_docs,
                             "share_bytes": share, "docs": stats.splits["validation"].docs, "rule": rule}
    _check_nonempty(source, stats)


def _check_nonempty(source: Source, stats: PlanStats) -> None:
    if stats.splits["train"].docs == 0 and stats.splits["validation"].docs == 0:
        raise DataError(f"source {source.spec} has no text: {stats.seen_docs} documents, all empty or whitespace "
                        f"(text field {source.text_field!r}); expected at least one non-empty document")
    if stats.splits["validation"].docs == 0:
        raise DataError(f"source {source.spec} gave no validation documents ({stats.splits['train'].docs} train docs); "
                        "use a larger corpus, a larger --valid-permille, or a source with a validation split")
    if stats.splits["train"].docs == 0:
        raise DataError(f"source {source.spec} gave no training documents "
                        f"({stats.splits['validation'].docs} validation docs); use a larger corpus")
