"""The `offset` split rule: a corpus cut by byte position, validation its last bytes (the enwik8 convention).

Why: a corpus of one document (text8, enwik8, a novel) or of a few cannot be
split by document: the hash rule puts the document in one split and leaves
the other empty. So the cut goes inside the documents: validation is the last
`valid_bytes` bytes of the source's text in stream order, training its first
`max_bytes` and never past where validation starts, so every training size of
one source is scored on the same bytes.

Two streaming passes over `Source.parts()`: the first measures the documents
(UTF-8 bytes, and the text hash of those without an id); the second gives out
pieces of at most PIECE_BYTES, each its own shard row (`<doc id>@<byte offset
in the document>`), so no more than one piece and one reader block are held
however long the document is. Cuts fall on character boundaries: training may
stop up to 3 bytes short of its cap and validation start up to 3 bytes late.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.sources import Document, Part, hash_id

PIECE_BYTES = 1 << 20  # the longest shard row the rule makes: bounded tokenizer calls and memory
DRAW = "tail-bytes/1"  # how validation is chosen (recorded in the manifest)


@dataclass(frozen=True, slots=True)
class Measure:
    """The first pass: each non-blank document's id, in order, and the bytes of them all."""

    ids: tuple[str, ...]
    total: int


def _blank(part: Part, fresh: bool) -> bool:
    """A blank document: only rows can be (text files give none), and a row is one whole part."""
    return fresh and part.last and part.doc_id is not None and not part.text.strip()


def measure(parts: Iterable[Part]) -> Measure:
    ids: list[str] = []
    total, fresh, doc_id, h = 0, True, None, None
    for part in parts:
        if _blank(part, fresh):
            continue
        data = part.text.encode("utf-8")
        if fresh:
            doc_id, fresh = part.doc_id, False
            h = hashlib.sha256() if doc_id is None else None
        if h is not None:
            h.update(data)
        total += len(data)
        if part.last:
            ids.append(doc_id if doc_id is not None else hash_id(h))
            fresh = True
    return Measure(tuple(ids), total)


def _align(data: bytes, j: int, lo: int, *, forward: bool) -> int:
    """`j` moved off UTF-8 continuation bytes (forward, or back no further than `lo`)."""
    step = 1 if forward else -1
    while lo < j < len(data) and data[j] & 0xC0 == 0x80:
        j += step
    return j


@dataclass(slots=True)
class OffsetCut:
    """The second pass, and where its cuts fell (the manifest records them)."""

    measured: Measure
    max_bytes: int
    valid_bytes: int
    seen_docs: int = 0
    skipped_empty_docs: int = 0
    invalid_utf8_replacements: int = 0
    train_end: int = -1  # where training stopped (-1: not reached yet)
    valid_start: int = -1
    _phase: str = "train"  # train -> gap -> validation
    _pos: int = 0  # bytes of the stream passed so far
    _doc: int = -1
    _doc_start: int = 0
    _piece: list[bytes] = field(default_factory=list)
    _piece_start: int = 0
    _out: list[tuple[Document, str]] = field(default_factory=list)

    @property
    def valid_target(self) -> int:
        return self.measured.total - self.valid_bytes

    def pieces(self, parts: Iterable[Part], spec: str) -> Iterator[tuple[Document, str]]:
        """(piece, split) in stream order: training pieces, then validation pieces."""
        if self.valid_target <= 0:
            raise DataError(f"source {spec} holds {self.measured.total:,} bytes of text, no more than --valid-bytes "
                            f"({self.valid_bytes:,}): the offset split takes validation from its end and leaves "
                            "nothing to train on; use a smaller --valid-bytes")
        fresh = True
        for part in parts:
            if fresh:
                self.seen_docs += 1
                if _blank(part, fresh):
                    self.skipped_empty_docs += 1
                    continue
                self._doc, self._doc_start, fresh = self._doc + 1, self._pos, False
            self.invalid_utf8_replacements += part.replaced
            self._advance(part.text.encode("utf-8"))
            if part.last:
                self._flush()
                fresh = True
            yield from self._out
            self._out.clear()
        if self._doc + 1 != len(self.measured.ids) or self._pos != self.measured.total:
            raise DataError(f"source {spec} changed while it was read ({self._pos:,} bytes in {self._doc + 1} "
                            f"documents, {self.measured.total:,} in {len(self.measured.ids)} before); run it again")

    def _advance(self, data: bytes) -> None:
        base, i = self._pos, 0
        while i < len(data):
            if self._phase == "gap" and base + i >= self.valid_target:  # validation starts on a boundary here
                self._phase, self.valid_start = "validation", base + i
            end, reached = self._phase_end(data, base, i)
            if self._phase != "gap":
                if not self._piece:
                    self._piece_start = base + i
                piece_end = _align(data, self._piece_start + PIECE_BYTES - base, i, forward=False)
                stop = min(end, piece_end)
                self._piece.append(data[i:stop])
                if stop == piece_end < end:
                    self._flush()
                i = stop
            else:
                i = end
            if reached and i == end:
                self._next_phase(base + end)
        self._pos = base + len(data)

    def _phase_end(self, data: bytes, base: int, i: int) -> tuple[int, bool]:
        """Where in `data` the current phase ends, and whether it ends inside `data` (or at its end)."""
        if self._phase == "validation":
            return len(data), False
        target = min(self.max_bytes, self.valid_target) if self._phase == "train" else self.valid_target
        j = target - base
        if j > len(data):
            return len(data), False
        if self._phase == "gap":
            return _align(data, j, i, forward=True), True
        forward = _align(data, j, i, forward=True)  # no gap when training takes all it may: end where validation starts
        if target == self.valid_target and base + forward <= self.max_bytes:
            return forward, True
        return _align(data, j, i, forward=False), True

    def _next_phase(self, at: int) -> None:
        self._flush()
        if self._phase == "train":
            self._phase, self.train_end = "gap", at
        elif self._phase == "gap":
            self._phase, self.valid_start = "validation", at

    def _flush(self) -> None:
        text = b"".join(self._piece)
        self._piece = []
        if not text or self._phase == "gap":
            return
        split = "train" if self.train_end < 0 else "validation"
        doc_id = f"{self.measured.ids[self._doc]}@{self._piece_start - self._doc_start}"
        self._out.append((Document(doc_id=doc_id, text=text.decode("utf-8")), split))

    def draw(self, valid_docs: int, docs: int) -> dict:
        return {"draw": DRAW, "target_docs": valid_docs, "share_bytes": 0, "docs": docs, "rule": "offset",
                "total_bytes": self.measured.total, "valid_start": self.valid_start, "train_end": self.train_end,
                "piece_bytes": PIECE_BYTES}
