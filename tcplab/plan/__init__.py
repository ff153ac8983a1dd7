"""The plan: what to create for a lab, pure (no engine, no file written). See :mod:`tcplab.plan.lab_plan`."""
from .lab_plan import (ArtifactDir, FollowedFile, HostPlan, LabPlan, NetworkPlan, SidecarPlan, followed_capture,
                       plan_lab)
from .images import TOOLS_IMAGE, built_repository, host_image, image_requests, project_images
from .names import RunNames

__all__ = ["ArtifactDir", "FollowedFile", "HostPlan", "LabPlan", "NetworkPlan", "RunNames", "SidecarPlan",
           "TOOLS_IMAGE", "built_repository", "followed_capture", "host_image", "image_requests", "plan_lab",
           "project_images"]
