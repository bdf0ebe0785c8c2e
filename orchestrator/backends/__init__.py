"""Backends: how many processes run the trainer loop and with which Env (local gloo, Ray Train, Modal)."""
