"""Loaded at start-up by every process whose PYTHONPATH leads here (tests/backends/test_collectives.py).

With NIGHTSHIFT_PROBE_COLLECTIVES=DIR it wraps each torch.distributed
collective so that every call is appended to DIR/<pid>.jsonl with the file
and line that made it: the test then holds every caller to
nightshift/collectives.py. Without the variable it does nothing.
"""

from __future__ import annotations

import os

OUT = os.environ.get("NIGHTSHIFT_PROBE_COLLECTIVES")
COLLECTIVES = ("all_reduce", "all_gather", "all_gather_object", "all_gather_into_tensor", "broadcast",
               "broadcast_object_list", "barrier", "reduce", "reduce_scatter", "reduce_scatter_tensor", "gather",
               "gather_object", "scatter", "scatter_object_list", "all_to_all", "all_to_all_single", "send",
               "recv", "isend", "irecv", "monitored_barrier", "init_process_group")


def _install(out: str) -> None:
    import json
    import sys

    import torch
    import torch.distributed as dist

    def wrap(name: str, fn):
        def probed(*args, **kwargs):
            frame = sys._getframe(1)
            devices = sorted({str(a.device) for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)})
            record = {"op": name, "file": frame.f_code.co_filename, "line": frame.f_lineno, "devices": devices,
                      "backend": args[0] if name == "init_process_group" and args else kwargs.get("backend")}
            with open(os.path.join(out, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            return fn(*args, **kwargs)

        return probed

    for name in COLLECTIVES:
        if hasattr(dist, name):
            setattr(dist, name, wrap(name, getattr(dist, name)))


if OUT:
    _install(OUT)
