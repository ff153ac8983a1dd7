"""One explainer per phenomenon, each in its own module, registered in report order.

A new phenomenon is a new module here: a subclass of :class:`Explainer`
decorated with :func:`register`, imported below, plus its tests. Each one
reads :class:`RunEvidence` and speaks only when its phenomenon is in the run.
"""
from .base import (EXPLAINERS, LINGER, MAX_FINDINGS, Explainer, Fact, Finding, Result, RunEvidence, fmt_span, fmt_t,
                   option_shape, register)
from . import (close_wait, fin_wait2, port_exhaustion, nagle, time_wait, rst_after_close, half_open,  # noqa: F401 - each
               accept_queue, connect_failed, keepalive, pmtu_blackhole, syn_flood,  # registers itself
               middlebox_reset, retransmission, zero_window)

__all__ = ["EXPLAINERS", "LINGER", "MAX_FINDINGS", "Explainer", "Fact", "Finding", "Result", "RunEvidence",
           "fmt_span", "fmt_t", "option_shape", "register"]
