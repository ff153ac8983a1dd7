"""Lab file errors: one line, naming the file and the field."""
from __future__ import annotations


class LabError(Exception):
    """A lab file (or an override of it) is wrong. ``str()`` is the one line users see."""

    def __init__(self, file: str, field: str, message: str) -> None:
        self.file = file
        self.field = field
        self.message = message
        super().__init__(self.line())

    def line(self) -> str:
        parts = [self.file]
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)
