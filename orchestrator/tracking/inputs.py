"""A run's training and validation data as MLflow dataset inputs (the UI's Dataset column and filters).

Plain dicts here (no mlflow import); `MlflowTracker.log_inputs` turns them
into `DatasetInput`s. Training: name = the dataset id, digest = its content
hash. Validation: the same name, digest = the validation split's id, which
every size of one source shares, so the run table shows at a glance that
two sizes were scored on the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

from nightshift.pipelines.store import Store

TRAINING, VALIDATION = "training", "validation"


def _source(store: Store, dataset_id: str) -> tuple[str, str]:
    """(source_type, source JSON) of the manifest's URL: `s3` for s3://, `local` for a path."""
    url = store.uri("datasets", dataset_id, "manifest.json")
    kind = "s3" if url.startswith("s3://") else "local" if "://" not in url or url.startswith("file://") else "uri"
    return kind, json.dumps({"uri": url})


def _profile(manifest: dict[str, Any], split: str) -> str:
    totals = manifest.get("splits", {}).get(split, {}).get("totals", {})
    tok = manifest.get("tokenizer", {})
    return json.dumps({"bytes": int(totals.get("bytes", 0)), "tokens": int(totals.get("tokens", 0)),
                       "docs": int(totals.get("docs", 0)), "shards": int(totals.get("shards", 0)),
                       "tokenizer": tok.get("name", ""), "vocab_size": int(tok.get("vocab_size", 0) or 0),
                       "source": manifest.get("config", {}).get("source", "")}, sort_keys=True)


def dataset_inputs(manifest: dict[str, Any], store: Store) -> list[dict[str, Any]]:
    """[{name, digest, source_type, source, schema, profile, context}] for the training and validation splits."""
    dataset_id = manifest["dataset_id"]
    source_type, source = _source(store, dataset_id)
    schema = json.dumps({"mlflow_colspec": [{"name": "doc_id", "type": "string"},
                                            {"name": "tokens", "type": "binary"}]})
    digest = dataset_id.rsplit("-", 1)[-1][:36]
    validation = manifest.get("splits", {}).get(VALIDATION, {})
    val_digest = str(validation.get("validation_id") or validation.get("text_sha256") or digest)[:36]
    common = {"name": dataset_id, "source_type": source_type, "source": source, "schema": schema}
    return [{**common, "digest": digest, "profile": _profile(manifest, "train"), "context": TRAINING},
            {**common, "digest": val_digest, "profile": _profile(manifest, VALIDATION), "context": VALIDATION}]
