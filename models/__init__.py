"""Model families behind one protocol (`models.protocol`) and a registry (`models.registry`).

Single-device, readable code: no orchestration, no tracking, no Ray here.
"""
