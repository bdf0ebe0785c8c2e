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

Rules are registered in `RULES`: `source`, `hash`, and `offset` (offset_split.py)
for a corpus of one long document or a few, cut inside its documents by byte
position with validation from the end (the enwik8 convention); its pieces get
ids `<doc id>@<offset>`, so a document can give pieces to both splits but no
id is in both.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.offset_split import DRAW as OFFSET_DRAW
from nightshift.pipelines.offset_split import OffsetCut, measure
from nightshift.pipelines.shards import ShardTask
from nightshift.pipelines.sources import Document, Source

log = logging.getLogger(__name__)

SPLITS = ("train", "validation")
DRAW = "spread-middle/1"  # how a validation document's slice is chosen (recorded in the manifest)


def hash_to_validation(doc_id: str, *, seed: int, permille: int) -> bool:
    """Stable across machines and Python versions: sha256, not hash()."""
    h = hashlib.sha256(f"{seed}:{doc_id}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(h[:8], "big") % 1000 < permille


def resolve_rule(rule: str, source: Source) -> str:
    """`auto`: the source's own split, else by offset for one document (said in a log line), else by hash."""
    if rule not in SPLIT_RULES:
        raise DataError(f"unknown split rule {rule!r}; accepted: {', '.join(SPLIT_RULES)}")
    if rule == "auto":
        if source.has_splits:
            return "source"
        if len(source.files) != 1:  # one document is one file; hub repos (millions of rows) are never counted
            return "hash"
        source.check()  # a missing text column gets its own error before any document is counted
        if source.count_documents(2) != 1:
            return "hash"
        log.warning("%s is one document: splitting it by byte offset, validation from its end "
                    "(split rule 'offset')", source.spec)
        return "offset"
    problem = RULES[rule].needs(source)
    if problem:
        raise DataError(problem)
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


class _Plan:
    """The shards being filled: exact byte caps per split, and what the manifest records of the split."""

    def __init__(self, *, max_bytes: int, valid_bytes: int, shard_bytes: int, valid_permille: int, split_seed: int,
                 valid_docs: int, share: int, stats: PlanStats) -> None:
        self.caps = {"train": max_bytes, "validation": valid_bytes}
        self.shard_bytes, self.valid_permille, self.split_seed = shard_bytes, valid_permille, split_seed
        self.valid_docs, self.share, self.stats = valid_docs, share, stats
        self.pending = {s: _Pending(s) for s in SPLITS}
        self.vhash = hashlib.sha256()
        self.draw: dict = {}  # a rule that draws validation its own way records how here

    def add(self, doc: Document, split: str) -> Iterator[ShardTask]:
        st = self.stats.splits[split]
        room = self.caps[split] - st.bytes
        if room <= 0:
            return
        text = middle_slice(doc.text, self.share) if split == "validation" and self.share else doc.text
        size = len(text.encode("utf-8"))
        if size > room:  # the last document is cut at a character boundary so sizes are exact
            text = text.encode("utf-8")[:room].decode("utf-8", errors="ignore")
            size = len(text.encode("utf-8"))
            st.truncated_docs += 1
            if not text.strip():
                self.caps[split] = st.bytes
                return
        p = self.pending[split]
        p.ids.append(doc.doc_id)
        p.texts.append(text)
        p.sizes.append(size)
        p.total += size
        st.docs += 1
        st.bytes += size
        if split == "validation":
            self.vhash.update(doc.doc_id.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8") + b"\0")
        if p.total >= self.shard_bytes or st.bytes >= self.caps[split]:
            st.shards += 1
            yield p.take()

    def full(self, split: str) -> bool:
        return self.stats.splits[split].bytes >= self.caps[split]

    def usable(self, doc: Document) -> bool:
        self.stats.seen_docs += 1
        self.stats.invalid_utf8_replacements += doc.replaced
        if not doc.text.strip():
            self.stats.skipped_empty_docs += 1
            return False
        return True


Route = Callable[[Source, _Plan], Iterator[tuple[Document, str]]]


def _by_source(source: Source, plan: _Plan) -> Iterator[tuple[Document, str]]:
    """Validation from the source's own validation split, training from its train split."""
    for split in ("validation", "train"):
        for doc in source.documents(split):
            if plan.usable(doc):
                yield doc, split
            if plan.full(split):
                break
        else:
            plan.stats.source_exhausted = plan.stats.source_exhausted or split == "train"


def _by_hash(source: Source, plan: _Plan) -> Iterator[tuple[Document, str]]:
    """Each document by a hash of its id; a source's own held-out splits stay out."""
    for doc in source.documents("train" if source.has_splits else None):
        if plan.usable(doc):
            to_valid = hash_to_validation(doc.doc_id, seed=plan.split_seed, permille=plan.valid_permille)
            yield doc, "validation" if to_valid else "train"
        if plan.full("train") and plan.full("validation"):
            break
    else:
        plan.stats.source_exhausted = True


def _by_offset(source: Source, plan: _Plan) -> Iterator[tuple[Document, str]]:
    """Inside the documents by byte position, validation from the end (offset_split.py): two passes."""
    split = "train" if source.has_splits else None
    measured = measure(source.parts(split))
    if not measured.ids:  # nothing but blank rows: counted for the "no text" error
        plan.stats.seen_docs = plan.stats.skipped_empty_docs = sum(p.last for p in source.parts(split))
        return
    cut = OffsetCut(measured, plan.caps["train"], plan.caps["validation"])
    yield from cut.pieces(source.parts(split), source.spec)
    stats = plan.stats
    stats.seen_docs, stats.skipped_empty_docs = cut.seen_docs, cut.skipped_empty_docs
    stats.invalid_utf8_replacements = cut.invalid_utf8_replacements
    stats.source_exhausted = cut.train_end == cut.valid_start
    plan.draw = cut.draw(plan.valid_docs, stats.splits["validation"].docs)


@dataclass(frozen=True, slots=True)
class SplitRule:
    """One way to split: how documents are routed, and what validation draw it records."""

    route: Route
    draw: str
    sliced: bool  # validation documents give a middle slice (their share of valid_bytes), not their text whole
    needs: Callable[[Source], str | None] = lambda source: None  # why a source cannot use the rule (None: it can)


def _needs_own_split(source: Source) -> str | None:
    if source.has_splits:
        return None
    return (f"split rule 'source' needs a source with its own train/validation split; "
            f"{source.spec} has none (use --split-rule hash, or offset for one long document)")


RULES: dict[str, SplitRule] = {
    "source": SplitRule(_by_source, DRAW, True, _needs_own_split),
    "hash": SplitRule(_by_hash, DRAW, True),
    "offset": SplitRule(_by_offset, OFFSET_DRAW, False),
}
SPLIT_RULES = ("auto", *RULES)


def plan_shards(source: Source, *, rule: str, max_bytes: int, valid_bytes: int, shard_bytes: int,
                valid_permille: int, split_seed: int, stats: PlanStats, valid_docs: int = 0) -> Iterator[ShardTask]:
    """Stream documents into shard tasks, in a deterministic order (the same on every re-run)."""
    share = validation_share(source, rule, valid_bytes, valid_docs) if RULES[rule].sliced else 0
    plan = _Plan(max_bytes=max_bytes, valid_bytes=valid_bytes, shard_bytes=shard_bytes, valid_permille=valid_permille,
                 split_seed=split_seed, valid_docs=valid_docs, share=share, stats=stats)
    for doc, split in RULES[rule].route(source, plan):
        yield from plan.add(doc, split)
    for split in SPLITS:
        if plan.pending[split].ids:
            stats.splits[split].shards += 1
            yield plan.pending[split].take()
    stats.validation_text_sha256 = plan.vhash.hexdigest()
    stats.validation_draw = plan.draw or {"draw": DRAW if share else "whole-documents", "target_docs": valid_docs,
                                          "share_bytes": share, "docs": stats.splits["validation"].docs,
                                          "rule": rule}
    _check_nonempty(source, stats)


def _check_nonempty(source: Source, stats: PlanStats) -> None:
    if stats.splits["train"].docs == 0 and stats.splits["validation"].docs == 0:
        raise DataError(f"source {source.spec} has no text: {stats.seen_docs} documents, all empty or whitespace "
                        f"(text field {source.text_field!r}); expected at least one non-empty document")
    if stats.splits["validation"].docs == 0:
        raise DataError(f"source {source.spec} gave no validation documents ({stats.splits['train'].docs} train docs); "
                        "use a larger corpus, a larger --valid-permille, a source with a validation split, or "
                        "--split-rule offset (validation from the end of the text)")
    if stats.splits["train"].docs == 0:
        raise DataError(f"source {source.spec} gave no training documents "
                        f"({stats.splits['validation'].docs} validation docs); use a larger corpus or "
                        "--split-rule offset (validation from the end of the text)")
