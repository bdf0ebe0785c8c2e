"""`nightshift prepare`: build a tokenized, sharded dataset from a source (a no-op if it exists)."""

from __future__ import annotations

import argparse
import json
import sys

from nightshift.pipelines.sizes import format_size, parse_size
from nightshift.pipelines.source_spec import SOURCES_HELP
from nightshift.pipelines.store import default_store_url


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare", help="tokenize a source into Arrow shards + manifest in the store",
        description="Stream a source, split train/validation (the source's own split, else by byte offset for "
                    "one document, else a hash of the doc id), tokenize on Ray actors and write Arrow shards and a "
                    "manifest. Re-running a finished prepare is a no-op; a killed one resumes.")
    p.add_argument("--source", required=True, help=SOURCES_HELP)
    p.add_argument("--text-field", default="text", help="column holding the text (default: text)")
    p.add_argument("--id-field", default=None, help="column holding a document id (default: id, else url, "
                                                    "else a sha256 of the text)")
    p.add_argument("--hf-config", default=None, metavar="NAME",
                   help="HF dataset config of an alias (fineweb/fineweb-edu default: sample-10BT); "
                        "an hf: source names its own: hf:OWNER/REPO:CONFIG")
    p.add_argument("--revision", default=None,
                   help="HF dataset revision (branch, tag or commit); an hf: source may name it: hf:OWNER/REPO@REV")
    p.add_argument("--max-bytes", default="10MB", help="training text to keep, e.g. 10MB, 1GB, 123456 (default 10MB)")
    p.add_argument("--valid-bytes", default="1MB", help="validation text, the same for every --max-bytes (default 1MB)")
    p.add_argument("--tokenizer", default="gpt2", help="gpt2 | r50k_base | cl100k_base | o200k_base | bytes")
    p.add_argument("--split-rule", default="auto",
                   help="auto | source | hash | offset (validation from the end of the text; auto picks it for "
                        "a one-document source) (default auto)")
    p.add_argument("--valid-docs", type=int, default=32,
                   help="validation spans this many documents, a slice of each (0: whole documents in order)")
    p.add_argument("--valid-permille", type=int, default=50, help="hash rule: doc ids per 1000 sent to validation")
    p.add_argument("--shard-bytes", default="4MB", help="target text bytes per shard (default 4MB)")
    p.add_argument("--store", default=None,
                   help="fsspec URL of the store (default: $NIGHTSHIFT_STORE or ./.nightshift)")
    p.add_argument("--actors", type=int, default=1, help="Ray actors tokenizing in parallel; 0 = in this process")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nightshift.pipelines.prepare import PrepareConfig, prepare
    from nightshift.pipelines.store import Store

    config = PrepareConfig(
        source=args.source, text_field=args.text_field, id_field=args.id_field, config=args.hf_config,
        revision=args.revision, max_bytes=parse_size(args.max_bytes, what="--max-bytes"),
        valid_bytes=parse_size(args.valid_bytes, what="--valid-bytes"), tokenizer=args.tokenizer,
        split_rule=args.split_rule, valid_permille=args.valid_permille, valid_docs=args.valid_docs,
        shard_bytes=parse_size(args.shard_bytes, what="--shard-bytes"),
    )
    store = Store.open(args.store or default_store_url())
    store.check_access()  # credentials, endpoint, bucket: one line each, before any work
    manifest = prepare(config, store, actors=args.actors, progress=not (args.no_progress or args.json))
    summary = manifest.summary()
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    verb = "already prepared" if manifest.status == "exists" else "prepared"
    print(f"{verb} {summary['dataset_id']} in {summary['seconds']:.1f}s "
          f"({summary['written_shards']} shards written, {summary['reused_shards']} reused)")
    print(f"  source      {summary['source']}  (split rule: {summary['split_rule']})")
    print(f"  tokenizer   {summary['tokenizer']}  vocab {summary['vocab_size']}  {summary['token_dtype']}")
    for split, t in summary["splits"].items():
        print(f"  {split:<11} {t['docs']:,} docs  {t['tokens']:,} tokens  {format_size(t['bytes'])}  "
              f"{t['shards']} shard{'s' if t['shards'] != 1 else ''}")
    print(f"  path        {summary['path']}")
    return 0
