"""One check per kind of expectation, each in its own module and registered for its model class.

A new kind is a model class in ``EXPECTATION_KINDS`` (tcplab/model/lab.py) and a module here whose
:class:`~.base.Check` is registered for it: it judges what the run recorded (:meth:`~.base.Check.judge`)
and says what it needs recorded to judge at all (:meth:`~.base.Check.missing`, see
:mod:`tcplab.analysis.evidence`).
"""
from __future__ import annotations

from . import counter, packet, program, retransmit, state, transition  # each registers its check
from .base import CHECKS, Check, check_for, register

__all__ = ["CHECKS", "Check", "check_for", "register", "counter", "packet", "program", "retransmit", "state",
           "transition"]
