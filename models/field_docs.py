"""One-line docs of config dataclass fields, read from where they already are: the source's comments.

Every config class documents its fields with a trailing comment
(`n_layer: int = 4  # transformer blocks`) or a comment block just above the
field; `field(metadata={"doc": ...})` wins where a class prefers it. Reading
them back (ast for the fields' lines, tokenize for the comments) keeps one
source of truth: `nightshift models FAMILY --fields` shows what the code says,
and no class had to be rewritten for it.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import textwrap
import tokenize

NO_DOC = "-"
_NOT_DOCS = ("noqa", "type:", "pragma")  # comments for tools, not for people


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """{field name: its doc} for a dataclass; a field without one maps to NO_DOC."""
    names = [f.name for f in dataclasses.fields(cls)]
    docs = dict.fromkeys(names, NO_DOC) | _comment_docs(cls)
    for f in dataclasses.fields(cls):
        doc = f.metadata.get("doc") or f.metadata.get("help")
        if doc:
            docs[f.name] = " ".join(str(doc).split())
    return {name: docs[name] for name in names}


def _comment_docs(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a frozen app, a class made at run time): no docs
        return {}
    tree = ast.parse(source)
    body = next((node.body for node in tree.body if isinstance(node, ast.ClassDef)), [])
    trailing: dict[int, str] = {}  # line -> comment after code on that line
    full_line: dict[int, str] = {}  # line -> a comment alone on its line
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string.lstrip("#").strip()
            if text.startswith(_NOT_DOCS):
                continue
            (full_line if not tok.line[: tok.start[1]].strip() else trailing)[tok.start[0]] = text
    docs: dict[str, str] = {}
    for node in body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        doc = trailing.get(node.end_lineno or node.lineno)
        if doc is None:  # the comment block right above the field
            above, line = [], node.lineno - 1
            while line in full_line:
                above.insert(0, full_line[line])
                line -= 1
            doc = " ".join(above) or None
        if doc:
            docs[node.target.id] = doc
    return docs
