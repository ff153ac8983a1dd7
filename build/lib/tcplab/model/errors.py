"""Lab file errors: one line, naming the file and the field."""
from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
        # one line whatever the file name or the data held: control characters are shown escaped
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", ": ".join(parts))
