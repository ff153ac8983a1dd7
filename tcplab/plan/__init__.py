"""The plan: what to create for a lab, pure (no engine, no file written). See :mod:`tcplab.plan.lab_plan`."""
from .lab_plan import TOOLS_IMAGE, ArtifactDir, FollowedFile, HostPlan, LabPlan, NetworkPlan, SidecarPlan, plan_lab
from .names import RunNames

__all__ = ["ArtifactDir", "FollowedFile", "HostPlan", "LabPlan", "NetworkPlan", "RunNames", "SidecarPlan",
           "TOOLS_IMAGE", "plan_lab"]
