"""Trained models as MLflow models and as an OpenAI-compatible HTTP server.

`bundle` (checkpoint + tokenizer files), `complete` (sampling: top-p, stop,
n, streaming), `pyfunc` (the MLflow wrapper), `package` (the model folder a
run logs), `server` (`nightshift serve`). Nothing here is imported by the
training loop unless a tracker wants a model.
"""
