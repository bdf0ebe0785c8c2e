"""Model families behind one protocol (`nightshift.models.protocol`) and a registry (`nightshift.models.registry`).

Single-device, readable code: no orchestration, no tracking, no Ray here.
"""

if __name__ != "nightshift.models":  # the folder is on sys.path (a checkout's root): one name per module
    raise ImportError(f"import nightshift.models, not {__name__}: nightshift's packages live under one namespace")
