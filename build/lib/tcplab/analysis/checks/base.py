"""What a check of one kind of expectation is, and the registry the evaluation loop looks it up in."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from ...model.lab import EXPECTATION_KINDS, Expectation

if TYPE_CHECKING:
    from ..runview import RunView
    from ..verdicts import Verdict

M = TypeVar("M", bound=BaseModel)


class Check(Generic[M]):
    """One kind of expectation (``M``: its body in the model, e.g. PacketMatch).

    :meth:`judge` matches what the run recorded: held, or failed with what came closest. Whether the run
    could decide at all is its evidence rule (:func:`tcplab.analysis.evidence.missing_evidence`), given
    by :meth:`negative` and :meth:`missing`: a check never makes an error itself."""
    kind: ClassVar[str] = ""  # the key a lab file writes: packet, state, transition, program

    def judge(self, exp: Expectation, m: M, view: "RunView") -> "Verdict":
        raise NotImplementedError

    def negative(self, m: M) -> bool:
        """Holds because something was not seen (a count, an absence): it needs a witness even when it holds."""
        return False

    def missing(self, exp: Expectation, m: M, view: "RunView") -> str | None:
        """Why the run cannot decide ``exp``: what it would read was not recorded, or not across the window."""
        return None


CHECKS: dict[type[BaseModel], Check[Any]] = {}


def register(match: type[M]) -> Callable[[type[Check[M]]], type[Check[M]]]:
    """Class decorator: the check of the expectations whose body is ``match``; one per kind."""
    kinds: dict[type, str] = {cls: kind for kind, cls in EXPECTATION_KINDS.items()}
    if match not in kinds:
        raise ValueError(f"{match.__name__} is no kind of expectation (model/lab.py EXPECTATION_KINDS)")

    def add(cls: type[Check[M]]) -> type[Check[M]]:
        if match in CHECKS:
            raise ValueError(f"two checks of {kinds[match]} expectations")
        cls.kind = kinds[match]
        CHECKS[match] = cls()
        return cls
    return add


def check_for(exp: Expectation) -> Check[Any]:
    """The check of ``exp``'s kind."""
    return CHECKS[type(exp.match)]
