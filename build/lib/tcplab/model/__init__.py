"""The domain model: labs, hosts, steps, expectations. Knows nothing of Docker or Typer."""
from .duration import format_duration, parse_duration
from .errors import LabError
from .lab import (Expectation, Host, Lab, Network, PacketMatch, Peer, Program, SendStep, SnapshotStep,
                  StartStep, StateMatch, Step, StopStep, TransitionMatch, WaitStep, step_kind, step_name,
                  step_title)
from .loader import apply_set, load_lab, parse_yaml, validate

__all__ = [
    "Expectation", "Host", "Lab", "LabError", "Network", "PacketMatch", "Peer", "Program", "SendStep",
    "SnapshotStep", "StartStep", "StateMatch", "Step", "StopStep", "TransitionMatch", "WaitStep",
    "apply_set", "format_duration", "load_lab", "parse_duration", "parse_yaml", "step_kind", "step_name",
    "step_title", "validate",
]
