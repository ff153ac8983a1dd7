"""The plan: what to create for a lab, pure (no engine, no file written). See :mod:`tcplab.plan.lab_plan`."""
from .lab_plan import ArtifactDir, FollowedFile, HostPlan, LabPlan, NetworkPlan, SidecarPlan, plan_lab
from .names import RunNames

__all__ = ["ArtifactDir", "FollowedFile", "HostPlan", "LabPlan", "NetworkPlan", "RunNames", "SidecarPlan",
           "plan_lab"]
