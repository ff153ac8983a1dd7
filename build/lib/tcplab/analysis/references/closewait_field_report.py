"""The closewait field report (../shared/SCENARIO.md): CentOS 7, kernel 3.10, a Windows 7 telnet client.

:data:`FIELD_REPORT` holds what that report observed; :func:`compare` lines
up this run's connection of the same part (the client whose FIN left the
server's socket in CLOSE_WAIT) and says, from this run's evidence, why each
observation is the same or differs: the kernel of run.json, the sysctls the
run recorded, the lab's peer settings, the snapshots' ss details, the packets.
"""
from __future__ import annotations

import re
from typing import Any

from ...peers.windows import DEFAULT_FIN_WAIT2_TIMEOUT as WINDOWS_DEFAULT
from ...peers.windows import syn_profile
from ...wire import ACK
from ..explainers.base import (Finding, RunEvidence, find_connection, fmt_span, is_fin, is_rst, is_syn, is_synack,
                               kernel_hz, kernel_version, option_shape)
from ..packets import Connection, Packet
from ..timeline import SocketId
from .base import Difference, Reference, register_reference

FIELD_REPORT: dict[str, Any] = {
    "kernel": "3.10 (CentOS 7)",
    "hz": 1000,  # CONFIG_HZ of CentOS 7's kernel-3.10.0 (RHEL 7 builds with HZ=1000); the report itself does not say
    "rmem_max_default": 6 << 20,  # tcp_rmem[2] of 3.10 on a machine with enough memory: 6 MiB
    "syn": {"win": 8192, "options": "[mss 1460,nop,wscale 8,nop,nop,sackOK]", "ttl": 128},
    "synack": {"win": 29200, "options": "[mss 1460,nop,nop,sackOK,nop,wscale 7]", "wscale": 7, "mss": 1460},
    "ack": {"ack": 1, "win": 256, "wscale": 8},
    "fin_ack": {"ack": 2, "win": 229, "delay": 0.0003},
    "rst": {"label": "[R.] seq 2, ack 1, win 0", "after_fin": 120.002},
}
_TS_BYTES = 12  # the timestamp option, padded, comes off every segment's payload
_ATO = re.compile(r"\bato:(\d+(?:\.\d+)?)")


# --- why a window or a scale is what it is ------------------------------------------

def window_reason(win: int, mss: int | None, ts: bool, role: str, rule: bool = True, kernel: str = "") -> str:
    """Why a SYN or SYN-ACK offers ``win``: which multiple of which MSS it is, and which kernel rule gives it
    (``rule``: say the rule in full, else refer to it; ``kernel``: this run's kernel release)."""
    if not mss:
        return f"{win}: no MSS option to relate it to."
    eff = mss - _TS_BYTES if ts else mss
    n, rest = divmod(win, eff)
    less = f" ({mss} less the {_TS_BYTES} bytes of timestamps)" if ts else ""
    if rest == 0 and win == 65535 // eff * eff:
        text = f"{win} = {n} × {eff}{less}: the largest multiple of the MSS that fits 64 KB"
        if not rule:
            return text + ", as Linux 4.19 and later offer (see the SYN-ACK window)."
        text += (". Linux 4.19 and later offer about 64 KB in the first window (commit a337531b942b, “tcp: up "
                 "initial rmem to 128KB and SYN rwin to around 64KB”)")
        v = kernel_version(kernel)
        if v is not None:
            text += f"; this run's kernel, {kernel}, is {'4.19 or later' if v >= (4, 19) else 'older than 4.19'}"
        return text + ("; kernel 3.10 capped it at 20 segments (twice the initial cwnd of 10): "
                       "20 × 1460 = 29200.")
    if rest == 0:
        return f"{win} = {n} × {eff}{less}: the {role} offered a first window of {n} segments."
    return f"{win} is not a multiple of the MSS ({eff}{less}): the window comes from the {role}'s receive buffer."


def wscale_for(space: int) -> int:
    """The window scale Linux offers for a receive buffer of ``space`` bytes (tcp_select_initial_window:
    halve until it fits 16 bits, at most 14)."""
    ws = 0
    while space > 0xFFFF and ws < 14:
        space >>= 1
        ws += 1
    return ws


def wscale_reason(ws: int, rmem: str | None = None, rmem_max: str | None = None, source: str = "") -> str:
    lo, hi = (1 << (ws + 15)), (1 << (ws + 16))
    text = (f"wscale {ws} is the shift that fits the largest receive buffer (max of net.ipv4.tcp_rmem[2] and "
            f"net.core.rmem_max) into 16 bits: {ws} means {_mib(lo)}–{_mib(hi)}")
    sizes = []
    try:
        if rmem:
            sizes.append(("net.ipv4.tcp_rmem[2]", int(rmem.split()[2])))
        if rmem_max:
            sizes.append(("net.core.rmem_max", int(rmem_max)))
    except (IndexError, ValueError):
        sizes = []
    if sizes:
        name, space = max(sizes, key=lambda kv: kv[1])
        got = wscale_for(space)
        text += (f". Here {' and '.join(f'{n} = {v}' for n, v in sizes)} ({source}): {name}, {_mib(space)}, "
                 f"gives {got}" + ("" if got == ws else f", not {ws}: the socket's buffer was set otherwise"))
    else:
        text += " (this run does not record the server's tcp_rmem or rmem_max)"
    return text + f"; CentOS 7's default tcp_rmem[2], 6 MiB, gives {wscale_for(FIELD_REPORT['rmem_max_default'])}."


def _mib(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def _mss(p: Packet) -> int | None:
    v = p.tcp.option("mss")
    return v if isinstance(v, int) else None


# --- why the FIN's ACK took as long as it did ------------------------------------------

def _ato(info: str) -> float | None:
    m = _ATO.search(info)
    return float(m.group(1)) if m else None


def fin_ack_reason(run: RunEvidence, sock: SocketId | None, fin: Packet, ack: Packet) -> str:
    """Why the server's kernel acked the peer's FIN after the delay it did, from this run's evidence: the
    measured delay, the socket's ``ato`` in ss before the FIN and after the ACK, and the kernel's HZ."""
    ref = FIELD_REPORT
    d = ack.ts - fin.ts
    before = after = None
    if sock is not None:
        infos = run.ss_info(sock)
        before = next(((n, _ato(i)) for n, t, i in reversed(infos) if t < fin.ts), None)
        after = next(((n, _ato(i)) for n, t, i in infos if t > ack.ts), None)
    hz = kernel_hz(run.info)
    tick = 1.0 / hz[0] if hz else None
    field_tick = 1.0 / ref["hz"]
    if (after is not None and after[1] is None) or (after is None and d < 100e-6):
        text = f"Measured {fmt_span(d)}: an immediate ACK, not the delayed-ACK timer"
        if after is not None:
            text += f" (ss shows no ato on this socket at snapshot {after[0]}: the timer never ran)"
        return text + (". The socket was in quick-ACK mode despite the FIN, e.g. because its route has `quickack 1`: "
                       "then the kernel acks at once instead of waiting for the next timer tick.")
    parts = [("A FIN that arrives in ESTABLISHED switches the socket to delayed-ACK (“pingpong”) mode: tcp_fin() "
              "calls "
              "inet_csk_enter_pingpong_mode(), so the ACK is not sent at once but left to the delayed-ACK timer "
              "(tcp_send_delayed_ack()), due ato after the FIN.")]
    if before is not None and before[1] is None:
        parts.append(f"This socket had received no data, so its ato was 0 (ss showed no ato for it at snapshot "
                     f"{before[0]}, before the FIN): the timer was due at once and fires at the next timer tick.")
    elif before is not None and before[1] is not None:
        parts.append(f"ss showed ato:{before[1]:g} for this socket at snapshot {before[0]}, before the FIN: the timer "
                     f"was due about {before[1]:g} ms after it.")
    else:
        parts.append("The snapshots do not show this socket's ato before the FIN; on a connection that received no "
                     "data it is 0, and the timer fires at the next timer tick.")
    if after is not None and after[1] is not None:
        parts.append(f"When the timer ran, tcp_delack_timer_handler() left pingpong mode and set ato to TCP_ATO_MIN: "
                     f"ss shows ato:{after[1]:g} on this socket at snapshot {after[0]}.")
    if tick is not None and hz is not None:
        text = (f"The wait for a tick is up to 1/HZ; this kernel's HZ is {hz[0]} ({hz[1]}), a tick every "
                f"{fmt_span(tick)}. Measured here: {fmt_span(d)}")
        if d <= tick + 200e-6:
            text += ", within one tick."
        else:
            text += (f", {d / tick:.1f} ticks: the timer ran late (its softirq waited for a busy CPU, or the tick "
                     "that was due was skipped).")
        parts.append(text)
    else:
        parts.append(f"The wait for a tick is up to 1/HZ (4 ms at HZ 250, 1 ms at HZ 1000); this run does not record "
                     f"the kernel's HZ. Measured here: {fmt_span(d)}.")
    parts.append(f"CentOS 7's kernel 3.10 does the same (pingpong on the FIN, delayed-ACK timer due at once) with HZ "
                 f"{ref['hz']}, a tick every {fmt_span(field_tick)}: the field report's "
                 f"{fmt_span(ref['fin_ack']['delay'])} "
                 "is within one of its ticks.")
    if d <= field_tick:
        parts.append(f"Like the field report's, this run's delay is under {fmt_span(field_tick)}: the FIN arrived "
                     f"{fmt_span(d)} before a tick.")
    return " ".join(parts)


# --- the comparison -------------------------------------------------------------

def part_played(run: RunEvidence, findings: list[Finding]) -> Connection | None:
    """The connection that plays the field report's: the first one whose server socket a CLOSE_WAIT finding is
    about; failing that, one where the client sent a FIN and the server never did."""
    for f in findings:
        if f.kind == "close_wait":
            conn = find_connection(run.traffic, f.socket)
            if conn is not None:
                return conn
    for c in run.traffic.connections:
        fins = {p.tcp.src for p in c.packets if is_fin(p)}
        if c.key[0] in fins and c.key[2] not in fins:
            return c
    return None


def compare(run: RunEvidence, findings: list[Finding]) -> list[Difference]:
    conn = part_played(run, findings)
    if conn is None:
        return []
    return compare_connection(run, conn)


def compare_connection(run: RunEvidence, conn: Connection) -> list[Difference]:
    """Where this connection's packets differ from the field report's, and why (computed from the run)."""
    ref = FIELD_REPORT
    client_ip, server_ip = conn.key[0], conn.key[2]
    rows: list[Difference] = []
    kernel = str(run.engine.get("kernel") or "unknown")
    rows.append(Difference("kernel", ref["kernel"], kernel,
                           f"Containers share the Docker host's kernel: every lab host runs this kernel's TCP "
                           f"({kernel}, from run.json)."))
    syn = next((p for p in conn.packets if is_syn(p) and not p.tcp.flags & ACK), None)
    synack = next((p for p in conn.packets if is_synack(p)), None)
    client = conn.client or client_ip
    server = conn.server or server_ip
    peer = run.peer(client)
    peer_os = peer.os
    if syn is not None:
        mine = f"win {syn.tcp.win}, {option_shape(syn.tcp.options)}, ttl {syn.tcp.ttl}"
        r = ref["syn"]
        theirs = f"win {r['win']}, {r['options']}, ttl {r['ttl']}"
        if mine == theirs:
            why = "The same: this run's client SYN matches the Windows 7 fingerprint."
        elif peer_os == "windows":
            prof = syn_profile(peer)
            why = (f"{client} emulates Windows with the SYN profile '{prof}' (lab.yaml); "
                   + window_reason(syn.tcp.win, _mss(syn), False, "client", rule=False))
        else:
            why = (f"{client} is a Linux client in this lab (lab.yaml): Linux offers timestamps and TTL 64. "
                   + window_reason(syn.tcp.win, _mss(syn), False, "client", rule=False))
        rows.append(Difference(f"{client}'s SYN", theirs, mine, why))
    if synack is not None:
        r = ref["synack"]
        ts = synack.tcp.option("TS") is not None
        rows.append(Difference(f"{server}'s SYN-ACK window", f"win {r['win']}", f"win {synack.tcp.win}",
                               window_reason(synack.tcp.win, _mss(synack), ts, "server", kernel=kernel)))
        shape = option_shape(synack.tcp.options)
        whys = []
        if ts:
            whys.append(f"{client}'s SYN offered timestamps (the Windows 7 SYN did not), so the SYN-ACK carries TS "
                        "too, and Linux writes sackOK next to TS instead of padding it with nop,nop.")
        elif shape.replace(f"wscale {synack.tcp.option('wscale')}", "wscale 7") == r["options"]:
            whys.append("The same options in the same order: without timestamps Linux writes "
                        "mss, nop,nop,sackOK, nop,wscale.")
        ws = synack.tcp.option("wscale")
        if isinstance(ws, int) and ws != r["wscale"]:
            rmem = run.sysctl(server, "net.ipv4.tcp_rmem")
            rmax = run.sysctl(server, "net.core.rmem_max")
            src = run.sysctl_source(server, "net.ipv4.tcp_rmem" if rmem else "net.core.rmem_max")
            whys.append(wscale_reason(ws, rmem, rmax, src))
        rows.append(Difference(f"{server}'s SYN-ACK options", r["options"], shape, " ".join(whys) or "The same."))
    hs_ack = next((p for p in conn.packets if syn and p.tcp.src == client_ip and not is_syn(p)
                   and p.n > (synack.n if synack else 0)), None)
    if hs_ack is not None:
        r = ref["ack"]
        cws = syn.tcp.option("wscale") if syn else None
        why = (f"The window field is scaled by the sender's wscale: {r['win']} × 2^{r['wscale']} = "
               f"{r['win'] << r['wscale']} bytes")
        if isinstance(cws, int):
            why += f"; here {hs_ack.tcp.win} × 2^{cws} = {hs_ack.tcp.win << cws} bytes."
            mss = _mss(synack) if synack is not None else None
            if mss and hs_ack.tcp.win != r["win"]:
                first = 65535 // mss * mss
                unit = 1 << cws
                if hs_ack.tcp.win << cws == -(-first // unit) * unit:
                    why += (f" That is a Linux kernel's first receive window, {65535 // mss} × {mss} = {first} bytes "
                            f"(the largest multiple of the MSS under 64 KB), rounded up to a multiple of 2^{cws}"
                            + (f": {client}'s Windows emulation rewrites its SYN, not the window its Linux kernel "
                               "then advertises." if peer_os == "windows" else ".")
                            + f" Windows 7 advertised {r['win']} × 2^{r['wscale']}.")
        rows.append(Difference(f"{client}'s ACK", f"ack {r['ack']}, win {r['win']}",
                               f"ack {hs_ack.rel_ack}, win {hs_ack.tcp.win}", why))
    fin = next((p for p in conn.packets if p.tcp.src == client_ip and is_fin(p)), None)
    if fin is None:
        return rows
    ack = next((p for p in conn.packets if p.n > fin.n and p.tcp.src != client_ip and p.rel_ack >= fin.rel_seq + 1),
               None)
    r = ref["fin_ack"]
    if ack is not None:
        sws = synack.tcp.option("wscale") if synack else None
        why = f"The window: {r['win']} × 2^7 = {r['win'] << 7} bytes"
        if isinstance(sws, int):
            why += f", here {ack.tcp.win} × 2^{sws} = {ack.tcp.win << sws} bytes (the larger first window)"
        sock = SocketId(server, server_ip, conn.key[3], client_ip, conn.key[1])
        why += ". The delay: " + fin_ack_reason(run, sock, fin, ack)
        rows.append(Difference(f"{server}'s ACK of the FIN", f"[.] ack {r['ack']}, win {r['win']}, "
                               f"{fmt_span(r['delay'])} after the FIN",
                               f"[{ack.flags}] ack {ack.rel_ack}, win {ack.tcp.win}, {fmt_span(ack.ts - fin.ts)} after "
                               "the FIN", why))
    rst = next((p for p in conn.packets if p.n > fin.n and p.tcp.src == client_ip and is_rst(p)), None)
    r = ref["rst"]
    theirs = f"{r['label']}, {r['after_fin']:.3f} s after the FIN"
    if rst is not None:
        mine = f"{rst.label()}, {rst.ts - fin.ts:.3f} s after the FIN"
        timeout = peer.fin_wait2_timeout  # as the lab set it (None: Windows' own)
        why = ("Windows' FIN_WAIT_2 timer" + (f", set to {fmt_span(timeout)} in this run's lab.yaml "
                                              f"({WINDOWS_DEFAULT:g} s in Windows)" if timeout is not None else ""))
        rows.append(Difference(f"{client}'s RST", theirs, mine, why + "."))
    else:
        fto = run.sysctl(client, "net.ipv4.tcp_fin_timeout")
        rows.append(Difference(f"{client}'s RST", theirs, "none",
                               f"{client} is a Linux peer: its orphaned FIN_WAIT2 socket expires silently"
                               + (f" after net.ipv4.tcp_fin_timeout ({fto} s, "
                                  f"{run.sysctl_source(client, 'net.ipv4.tcp_fin_timeout')})"
                                  if fto else "") + "."
                               if peer_os != "windows" else
                               "The Windows peer's timer did not fire within the run."))
    return rows


CLOSEWAIT_FIELD_REPORT = register_reference(Reference(
    name="closewait-field-report",
    title="the closewait field report (CentOS 7, kernel 3.10, Windows 7 telnet)",
    source="../shared/SCENARIO.md",
    compare=compare,
))
