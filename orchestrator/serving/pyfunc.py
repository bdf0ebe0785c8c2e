"""The MLflow pyfunc wrapper every family's logged model uses: prompts in, completions (or scores) out.

    import mlflow
    model = mlflow.pyfunc.load_model("runs:/<mlflow run id>/model")
    model.predict(pd.DataFrame({"prompt": ["Once upon a time"]}), params={"max_tokens": 32})
    #   -> DataFrame: completion, finish_reason
    model.predict(pd.DataFrame({"prompt": ["some text"]}), params={"task": "score"})
    #   -> DataFrame: bits_per_byte, bytes  (the metric nightshift compares models by)

The same request on `mlflow models serve -m runs:/<id>/model` is
`POST /invocations {"dataframe_records": [{"prompt": "..."}], "params": {...}}`.
Predictions are deterministic for a given `seed` (default 0).
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import mlflow.pyfunc
import pandas as pd  # MLflow reads predict's hints at runtime: the annotation must resolve

PARAM_DEFAULTS: dict[str, Any] = {"max_tokens": 32, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 0,
                                  "stop": "", "task": "generate"}
TASKS = ("generate", "score")


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    params = ParamSchema([ParamSpec("max_tokens", "long", 32), ParamSpec("temperature", "double", 1.0),
                          ParamSpec("top_k", "long", 0), ParamSpec("top_p", "double", 1.0),
                          ParamSpec("seed", "long", 0), ParamSpec("stop", "string", ""),
                          ParamSpec("task", "string", "generate")])
    return ModelSignature(inputs=Schema([ColSpec("string", "prompt")]),
                          outputs=Schema([ColSpec("string", "completion"), ColSpec("string", "finish_reason")]),
                          params=params)


def input_example() -> Any:
    import pandas as pd

    return pd.DataFrame({"prompt": ["Once upon a time"]}), {"max_tokens": 8}


def score_text(bundle: Any, text: str) -> dict[str, float]:
    """Bits per byte of `text` as one document, exactly as validation is scored."""
    import numpy as np

    from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte

    doc = SimpleNamespace(tokens=np.asarray(bundle.tokenizer.encode_batch([text])[0], dtype=np.int64),
                          n_bytes=len(text.encode("utf-8")))
    result = bits_per_byte(bundle.model, [doc], batch_size=4)
    return {"bits_per_byte": result.bits_per_byte, "bytes": float(result.n_bytes)}


class NightshiftModel(mlflow.pyfunc.PythonModel):
    """Loads `checkpoint.pt` + `tokenizer/` from the model's artifacts; one prediction at a time."""

    def load_context(self, context: Any) -> None:
        from nightshift.orchestrator.serving.bundle import load_bundle

        self._bundle = load_bundle(context.artifacts["checkpoint"], context.artifacts["tokenizer"])
        self._lock = threading.Lock()  # families keep caches: concurrent predicts must not interleave

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """`model_input`: a DataFrame with a `prompt` column (what the signature says; a list or a string also
        work). Hinted as a DataFrame, the one input type MLflow validates against the signature instead of
        inferring a schema from the hint (and without the 'add type hints' warning at every log)."""
        from nightshift.orchestrator.serving.complete import Sampling, complete

        p = {**PARAM_DEFAULTS, **(params or {})}
        if p["task"] not in TASKS:
            raise ValueError(f"task {p['task']!r}: accepted {', '.join(TASKS)}")
        prompts = _prompts(model_input)
        with self._lock:
            if p["task"] == "score":
                return pd.DataFrame([score_text(self._bundle, text) for text in prompts])
            s = Sampling(max_tokens=int(p["max_tokens"]), temperature=float(p["temperature"]),
                         top_k=int(p["top_k"]) or None, top_p=float(p["top_p"]),
                         stop=(p["stop"],) if p["stop"] else (), seed=int(p["seed"]))
            if not 1 <= s.max_tokens <= 4096:
                raise ValueError(f"max_tokens={s.max_tokens}: accepted 1..4096")
            rows = []
            for i, text in enumerate(prompts):
                done = complete(self._bundle, text, s, seed=int(p["seed"]) + i)
                rows.append({"completion": done.text, "finish_reason": done.finish_reason})
        return pd.DataFrame(rows, columns=["completion", "finish_reason"])


def _prompts(model_input: Any) -> list[str]:
    """A DataFrame with a `prompt` column (or one column), a list of strings, or one string."""
    import pandas as pd

    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, pd.DataFrame):
        column = "prompt" if "prompt" in model_input.columns else model_input.columns[0]
        return [str(v) for v in model_input[column].tolist()]
    if isinstance(model_input, dict) and "prompt" in model_input:
        value = model_input["prompt"]
        return [value] if isinstance(value, str) else [str(v) for v in value]
    return [str(v) for v in model_input]
