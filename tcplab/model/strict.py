"""What every model of the lab file shares: refusing unknown fields, and the rule for names."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

# Names become container names, file names and DNS names: keep them boring.
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,30}$")]


class Strict(BaseModel):
    """Unknown fields are refused (a typo is an error, not a silent default); a value never changes once read.

    Validators are built when a lab is first validated, not as each class is defined: pydantic then builds
    the lab's once, where at import it built one per class, in every command that imports the model."""
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)
