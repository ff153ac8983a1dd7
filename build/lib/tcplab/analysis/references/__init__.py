"""Field reports a lab can compare itself with, by name (``reference:`` in the lab file).

A reference is the published observations of one war story and a function
that lines this run's evidence up against them: one :class:`Difference` per
observation, each with its why computed from the run. A lab that names no
reference gets no comparison.
"""
from __future__ import annotations

from .base import REFERENCES, Difference, Reference, reference_named, register_reference
from . import closewait_field_report  # noqa: F401 - it registers itself

__all__ = ["REFERENCES", "Difference", "Reference", "reference_named", "register_reference"]
