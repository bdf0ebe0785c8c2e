"""Data only: sources, split, tokenizers, the Arrow shard writer (Ray actors) and reader.

Knows nothing of models or tracking: everything here can be used to build a
dataset for any other trainer.
"""
