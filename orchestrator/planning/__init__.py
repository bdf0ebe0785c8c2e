"""The pre-flight plan of a run: memory, disk, throughput and hours on a named device.

What `nightshift plan` and the giant run's --dry-run print before any GPU is paid for.
"""
