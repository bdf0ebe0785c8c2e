"""Data only: sources, split, tokenizers, the Arrow shard writer (Ray actors) and reader.

Knows nothing of models or tracking: everything here can be used to build a
dataset for any other trainer.
"""

if __name__ != "nightshift.pipelines":  # the folder is on sys.path (a checkout's root): one name per module
    raise ImportError(f"import nightshift.pipelines, not {__name__}: nightshift's packages live under one namespace")
