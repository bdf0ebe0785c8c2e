"""What a run is and where it lives.

Its config and content id, its folder in the store, tags and name, vocab, the giant run's flags,
fork and loading.
"""
