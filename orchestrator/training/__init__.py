"""The trainer loop and what it is made of.

Optimizer and schedule, budget accounting, divergence rollback, FLOP/s, signals, fault drills,
samples, the rank runtime.
"""
