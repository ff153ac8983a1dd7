"""Linux's own timers, as patterns of packets: what the kernel of a run does for the sysctls the run read.

Each pattern is the gaps between successive packets the timer sends, from the first one, and says in words
where its numbers come from. A pattern is computed for the values one host's network namespace held
(run.json ``sysctls``); a value the run did not read makes no pattern (the expectation is then an error).

SYN retransmissions (tcp_write_timeout, tcp_retransmit_timer): the initial RTO is 1 s; for the first
``tcp_syn_linear_timeouts`` retransmissions (kernels >= 6.5) the RTO stays 1 s, after that it doubles
(so with 4: 1, 1, 1, 1, 1, 2, 4 ... s apart; with 0: 1, 2, 4, 8 ...). The connection gives up at the first
expiry of the timer at least (2^(r+1) - 1) s after the first SYN (r = tcp_syn_retries, up to 6; beyond,
each retry adds TCP_RTO_MAX, 120 s): connect() fails then with ETIMEDOUT. With r = 6 and no linear
timeouts that is the classic 1, 3, 7, 15, 31, 63 s and the error at 127 s.

SYN-ACK retransmissions (the request socket's timer): 1 s, doubling, ``tcp_synack_retries`` of them.

The retransmission timer (tcp_retransmit_timer): the RTO is at least TCP_RTO_MIN (200 ms) above the smoothed
round trip, and each expiry without an ACK doubles it, up to TCP_RTO_MAX (120 s); a zero-window probe's timer
backs off the same way. Its first gap is the RTO this run's connection had, which no sysctl gives: the pattern is
computed from the first gap seen.

Keepalive: after ``tcp_keepalive_time`` of idleness a probe, then one every ``tcp_keepalive_intvl``;
``tcp_keepalive_probes`` unanswered probes and the connection is dropped with ETIMEDOUT one interval after
the last.
"""
from __future__ import annotations

from dataclasses import dataclass

RTO_INIT = 1.0  # TCP_TIMEOUT_INIT: the first RTO of a handshake
RTO_MAX = 120.0  # TCP_RTO_MAX
RTO_MIN = 0.2  # TCP_RTO_MIN: no RTO is shorter


@dataclass(frozen=True)
class TimerPattern:
    gaps: list[float]  # seconds between successive packets, from the first one
    gives_up: float | None  # seconds after the first packet at which the socket gives up (None: not modelled)
    why: str  # where the numbers come from: "tcp_syn_retries=3, tcp_syn_linear_timeouts=4"


def syn_backoff(retries: int, linear: int) -> TimerPattern:
    """The SYN and its retransmissions of one connect() with ``tcp_syn_retries`` = ``retries`` and
    ``tcp_syn_linear_timeouts`` = ``linear``."""
    thresh = 6  # ilog2(TCP_RTO_MAX / RTO_INIT)
    if retries <= thresh:
        limit = ((2 << retries) - 1) * RTO_INIT
    else:
        limit = ((2 << thresh) - 1) * RTO_INIT + (retries - thresh) * RTO_MAX
    gaps: list[float] = []
    t, rto, sent = 0.0, RTO_INIT, 0
    while True:
        t += rto  # the timer fires
        if sent and t >= limit:
            return TimerPattern(gaps, t, f"tcp_syn_retries={retries}, tcp_syn_linear_timeouts={linear}")
        gaps.append(rto)
        sent += 1
        if sent > linear:
            rto = min(rto * 2, RTO_MAX)
        if len(gaps) > 64:  # no sysctl value makes this many; a guard against a nonsense reading
            return TimerPattern(gaps, None, f"tcp_syn_retries={retries}, tcp_syn_linear_timeouts={linear}")


def synack_backoff(retries: int) -> TimerPattern:
    """A SYN-ACK and its retransmissions: 1 s, doubling, ``tcp_synack_retries`` of them."""
    gaps = [min(RTO_INIT * 2 ** i, RTO_MAX) for i in range(min(retries, 64))]
    return TimerPattern(gaps, sum(gaps) + min(RTO_INIT * 2 ** retries, RTO_MAX), f"tcp_synack_retries={retries}")


def rto_backoff(first: float, gaps: int) -> TimerPattern:
    """``gaps`` gaps of the retransmission timer's backoff whose first is ``first`` (the RTO seen): each next one
    twice the one before, up to TCP_RTO_MAX."""
    return TimerPattern([min(first * 2 ** i, RTO_MAX) for i in range(max(0, min(gaps, 64)))], None,
                        f"an RTO of {first * 1000:.0f} ms")


def retries_timeout(retries: int) -> float:
    """The seconds after its first retransmission at which an established connection gives up, at the first timer
    expiry from then on, for ``tcp_retries2`` = ``retries`` (tcp_model_timeout: a backoff from TCP_RTO_MIN, linear
    at TCP_RTO_MAX once it gets there): 924.6 s for the default 15."""
    thresh = 9  # ilog2(TCP_RTO_MAX / TCP_RTO_MIN)
    if retries <= thresh:
        return round(((2 << retries) - 1) * RTO_MIN, 6)
    return round(((2 << thresh) - 1) * RTO_MIN + (retries - thresh) * RTO_MAX, 6)


def keepalive(intvl: int, probes: int) -> TimerPattern:
    """The probes of keepalive once the connection has been idle ``tcp_keepalive_time``: ``probes`` of them,
    ``intvl`` s apart; the socket is dropped one interval after the last."""
    n = max(1, min(probes, 64))
    return TimerPattern([float(intvl)] * (n - 1), float(intvl) * n,
                        f"tcp_keepalive_intvl={intvl}, tcp_keepalive_probes={probes}")


def pattern(name: str, values: dict[str, int]) -> TimerPattern:
    """The pattern ``name`` (model/lab.py INTERVAL_PATTERNS) for the sysctls in ``values`` (short names)."""
    if name == "syn-backoff":
        return syn_backoff(values["tcp_syn_retries"], values["tcp_syn_linear_timeouts"])
    if name == "synack-backoff":
        return synack_backoff(values["tcp_synack_retries"])
    if name == "keepalive":
        return keepalive(values["tcp_keepalive_intvl"], values["tcp_keepalive_probes"])
    raise KeyError(name)


def recorded(sysctls: object, host: str, name: str) -> tuple[int | None, str]:
    """A sysctl of ``host`` as the run read it (run.json ``sysctls``), as a number; or None and why not."""
    per_host = sysctls.get(host) if isinstance(sysctls, dict) else None
    value = per_host.get(name) if isinstance(per_host, dict) else None
    if value is None:
        return None, f"the run did not read {name} on {host} (run.json has no such sysctl of {host})"
    try:
        return int(str(value).split()[0]), ""
    except (ValueError, IndexError):
        return None, f"{name} on {host} reads {str(value)[:40]!r}, not a number"


def recorded_pattern(name: str, needs: tuple[str, ...], sysctls: object, host: str) -> tuple[TimerPattern | None, str]:
    """The pattern ``name`` for ``host``'s sysctls as the run read them (``needs``: their full names)."""
    values: dict[str, int] = {}
    for full in needs:
        value, why = recorded(sysctls, host, full)
        if value is None:
            return None, why
        values[full.rsplit(".", 1)[-1]] = value
    return pattern(name, values), ""
