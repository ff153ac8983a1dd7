"""Step players, one module per kind of step; each registers itself when imported (the lines below).

To add a kind of step: its model class in tcplab/model/lab.py (with its line in STEP_KINDS), its player
in a module here, and that module's import below.
"""
from . import firewall, impair, lift, send, snapshot, start, stop, wait  # noqa: F401 - each registers its player
from .base import PLAYERS, HandLine, InHost, Note, OnMachine, StepPlayer, player_for

__all__ = ["PLAYERS", "HandLine", "InHost", "Note", "OnMachine", "StepPlayer", "player_for"]
