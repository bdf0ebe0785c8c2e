"""Complete, atomic checkpoints on any store.

The trail (trail.py), content-addressed chunks of large tensors (chunks.py), one writer per trail
(lease.py).
"""
