"""`lab new --from-pcap` on real captures: the field report's packets and every shipped lab's run's merged pcapng
are drafted, the drafts run, and each connection of the run shows the capture's flags in order (and, where the
story is within milliseconds or about a kernel timer, the same directions, segment sizes and timer gaps; where the
machine's pace cuts the segments, a bulk transfer's or an answered request's shape)."""
from __future__ import annotations

import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tcplab.analysis.packets import load_traffic
from tcplab.draft import read_capture_file
from tcplab.draft.from_pcap import flag_sequences
from tcplab.wire import SYN

from ..conftest import isolated, lab_cmd, labeled_objects, remove_built_images

pytestmark = pytest.mark.integration

FIELD_REPORT = Path("/work/shared/captures/fieldreport.pcap")
if not FIELD_REPORT.is_file():
    FIELD_REPORT = Path(__file__).resolve().parents[3] / "shared" / "captures" / "fieldreport.pcap"


def _run(lab: str, out: Path, sets: list[str]) -> subprocess.CompletedProcess[str]:

    args = ["run", lab, *(a for s in sets for a in ("--set", s)), "--out", str(out)]
    proc = lab_cmd(*args, timeout=300)
    name = sets[0].split("=", 1)[1]
    if labeled_objects(name):
        lab_cmd("down", name, timeout=120)
    remove_built_images(name)  # a draft's tcpctl hosts build images under its run's name
    return proc


def _flags_by_client(run: Path, skip: str = "holder") -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for c in load_traffic(run).connections:
        if c.client != skip:
            out.setdefault(str(c.client), []).append([p.flags for p in c.packets])
    return out


def _sent_once(run: Path, sizes: bool = False) -> dict[str, list[list[str]]]:
    """Each client's connections as what each end sent once: SYNs, FINs, resets and data segments (with sizes:
    ``>P.6``), without bare ACKs or a segment sent again. Where both ends answer at once (the TCP_NODELAY half of
    nagle), whether an ACK goes alone or rides on the next segment, and whether a loss probe fires before a
    starved end's ACK, are the machine's pace: seen in CI with the machine short of CPU 79% of the story. The
    waits between the data segments are compared on their own (_timers)."""
    out: dict[str, list[list[str]]] = {}
    for c in load_traffic(run).connections:
        sent: set[tuple[bool, int]] = set()
        conn = []
        for p in c.packets:
            out_bound = p.tcp.src == c.key[0]
            if p.tcp.payload:
                if (out_bound, p.rel_seq) in sent:
                    continue
                sent.add((out_bound, p.rel_seq))
            elif p.flags == ".":
                continue
            conn.append(f"{'>' if out_bound else '<'}{p.flags}{len(p.tcp.payload)}" if sizes else p.flags)
        out.setdefault(str(c.client), []).append(conn)
    return out


SYNS = ["S", "..."]  # SYNs only, as many as the kernel's tcp_syn_retries and tcp_syn_linear_timeouts make
SYNACK_AGAIN = ["S", "S.", ".", "S.", ".", "..."]  # a handshake whose last ACK was dropped: the SYN-ACK and the re-ACK
# again, as often as the kernel's tcp_synack_retries timer fires within the run


def _matches(got: list[str], want: list[str]) -> bool:
    if want is SYNS:
        return len(got) >= 2 and set(got) == {"S"}
    if want is SYNACK_AGAIN:
        tail = got[3:]
        return got[:3] == want[:3] and len(tail) >= 2 and len(tail) % 2 == 0 and tail == ["S.", "."] * (len(tail) // 2)
    return got == want


def _shows(seen: dict[str, list[list[str]]], expected: dict[str, list[list[str]]]) -> bool:
    if seen.keys() != expected.keys():
        return False
    for host, conns in expected.items():
        if len(seen[host]) != len(conns):
            return False
        if not all(_matches(got, want) for got, want in zip(seen[host], conns)):
            return False
    return True


def _repeats_cut(seen: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
    """Each connection with its kernel's repetitions after the first cut to "...": a SYN retried, a SYN-ACK sent again
    and re-ACKed. How often the timer fires depends on how long the run goes on, not on what the programs did."""
    out: dict[str, list[list[str]]] = {}
    for host, conns in seen.items():
        for conn in conns:
            flags = [x.lstrip("<>").rstrip("0123456789") for x in conn]
            if len(flags) >= 2 and set(flags) == {"S"}:
                conn = conn[:1] + ["..."]
            elif flags[:3] == ["S", "S.", "."] and len(flags) >= 5 and flags[3:] == ["S.", "."] * (len(flags[3:]) // 2):
                conn = conn[:5] + ["..."]
            out.setdefault(host, []).append(conn)
    return out


def _segments_by_client(run: Path) -> dict[str, list[list[str]]]:
    """Each packet's direction, flags and payload size (``>P.6``), by client and connection."""
    out: dict[str, list[list[str]]] = {}
    for c in load_traffic(run).connections:
        out.setdefault(str(c.client), []).append(
            [f"{'>' if p.tcp.src == c.key[0] else '<'}{p.flags}{len(p.tcp.payload)}" for p in c.packets])
    return out


def _bulk_by_client(run: Path) -> dict[str, list[list[str]]]:
    """Each connection as a bulk transfer shows it, by client: its segments' cut and the ACKs between them are the
    machine's pace, not the programs', so what is kept is the handshake's flags, the bytes each way (``>200000``,
    ``<0``), the server's window closing (``win 0``) and opening again (``win open``) with the client's probes
    between (``probes``, their timing is _timers'), each side's first FIN in order (``>F``, ``<F``) and any RST
    (``>R``)."""
    out: dict[str, list[list[str]]] = {}
    for c in load_traffic(run).connections:
        ps = c.packets
        mine = [p for p in ps if p.tcp.src == c.key[0]]
        theirs = [p for p in ps if p.tcp.src == c.key[2]]
        shape = [p.flags for p in ps[:3]]
        shape += [f">{max((p.rel_seq + len(p.tcp.payload) - 1 for p in mine if p.tcp.payload), default=0)}",
                  f"<{max((p.rel_seq + len(p.tcp.payload) - 1 for p in theirs if p.tcp.payload), default=0)}"]
        closed = next((p for p in theirs if p.tcp.win == 0 and not p.tcp.flags & SYN), None)
        if closed is not None:
            opened = next((p for p in theirs if p.ts > closed.ts and p.tcp.win > 0), None)
            shape += ["win 0"] + (["probes"] if any(p.probe and p.ts > closed.ts for p in mine) else [])
            shape += ["win open"] if opened is not None and any(p.tcp.payload and p.ts > opened.ts for p in mine) else []
        ends = [f"{'>' if p.tcp.src == c.key[0] else '<'}{x}" for p in ps for x in "FR" if x in p.flags]
        shape += list(dict.fromkeys(ends))  # a FIN sent again (its ACK late on a loaded machine) is the kernel's
        out.setdefault(str(c.client), []).append(shape)
    return out


def _lost_by_client(run: Path) -> dict[str, list[list[str]]]:
    """Each connection by client: one the server never answered with data as its segments (direction, flags, size:
    the losses and the kernel's retransmissions); one it answered as the handshake's flags and the bytes each way (how
    a request and its echo are cut and acknowledged is the loaded machine's pace: TCP autocorking holds a small write
    while the one before is still in the host's queue, in the lab's run as in the draft's)."""
    out: dict[str, list[list[str]]] = {}
    bulk = _bulk_by_client(run)
    for host, conns in _segments_by_client(run).items():
        for i, conn in enumerate(conns):
            answered = any(x.startswith("<") and int(x.lstrip("<").lstrip("SFRPUEC.")) > 0 for x in conn)
            out.setdefault(host, []).append(bulk[host][i] if answered else conn)
    return out


def _timers(lab: str, run: Path) -> list[Any]:
    """What the story's timing is, per connection, rounded as a run on a shared machine can keep it: keepalive's
    idle time and probe intervals (0.1 s), the SYN-ACK's retransmission timer and a delayed handshake ACK
    (0.1 s), and whether most of the client's writes right behind another waited for an ACK (Nagle's algorithm and
    the delayed-ACK timer: more than 20 ms after the one before; on a loaded machine a request now and then gets
    its ACK at once, in the lab's run as in the draft's)."""
    out: list[Any] = []
    for c in load_traffic(run).connections:
        ps = c.packets
        if lab == "keepalive":
            probes = [i for i, p in enumerate(ps) if p.probe]
            if probes:
                marks = [ps[probes[0] - 1]] + [ps[i] for i in probes] + ps[probes[-1] + 1:]
                out.append([round(b.ts - a.ts, 1) for a, b in zip(marks, marks[1:])])
        elif lab == "backlog":
            synacks = [p for p in ps if p.flags == "S."]
            acks = [p for p in ps if p.flags == "." and p.tcp.src == c.key[0]]
            if synacks and acks:
                out.append([round(acks[0].ts - synacks[0].ts, 1)]  # the first two timeouts: 1 s, then 2 s
                           + [round(b.ts - a.ts, 1) for a, b in zip(synacks, synacks[1:3])])
        elif lab == "retransmit":  # the first segment's retransmission timer: each gap twice the one before
            again = [p.ts for p in ps if p.tcp.src == c.key[0] and p.tcp.payload and p.rel_seq == 1]
            if len(again) > 1:
                out.append([round(b - a, 1) for a, b in zip(again, again[1:])])
        elif lab == "nagle":  # a write right behind the one before (no answer between): did most of them wait?
            data = [p for p in ps if p.tcp.payload]
            waits = [b.ts - a.ts > 0.02 for a, b in zip(data, data[1:]) if a.tcp.src == b.tcp.src == c.key[0]]
            out.append([2 * sum(waits) > len(waits)])
    return out


# The shipped labs a draft replays: what CI sets for the lab, what the draft's comments say to set for the
# same kernel settings (a sysctl no capture shows), and the flags of each client's connections.
ROUND_TRIPS = {
    "closewait": (["peers.win.fin_wait2_timeout=2s"], [],  # the timer as tests/data/library_faults.yaml sets it
                  {"linux": [["S", "S.", "."]], "win": [["S", "S.", ".", "F.", ".", "R."]]}),
    "closewait-linux": ([], [], {"linux": [["S", "S.", "."]], "win": [["S", "S.", ".", "F.", "."]]}),
    "refused": ([], ["hosts.client.sysctls.net.ipv4.tcp_syn_retries=2"],
                {"client": [["S", "R."], SYNS]}),
    # tcpctl plays both sides (the draft builds a copy of labs/programs): two resets by close(), a clean close
    "abortive-close": ([], [], {"client": [["S", "S.", ".", "P.", ".", "R."]] * 2
                                + [["S", "S.", ".", "P.", ".", "F.", ".", "F.", "."]]}),
    # tcpctl: the bare RST answering data is a server that forgot the connection behind a firewall that dropped its
    # reset; the draft's 3.6 s silence shortened as its comment says
    "half-open": ([], ["steps.4.wait.seconds=0.5"], {"client": [["S", "S.", ".", "P.", ".", "P.", "R"]]}),
    # telnet and tcplab/server play it; the four-port range is a comment (and the failed connect() sent nothing)
    "timewait": ([], [], {"tight": [["S", "S.", ".", "P.", ".", "F.", "F.", "."]] * 4,
                          "reuse": [["S", "S.", ".", "P.", ".", "F.", "F.", "."]] * 5}),
    # tcpctl with each side's calls typed ahead (tcplab/draft/script.py): a listener that never accepts, with the
    # backlog its completed connections show; bursts from the capture's ports, the third's handshake ACK delayed;
    # strict's RST is tcp_abort_on_overflow; the fifth connection's SYNs dropped
    "backlog": ([], [], {"client": [["S", "S.", "."]] * 2 + [SYNACK_AGAIN] + [["S", "S.", "."]] * 3
                         + [["S", "S.", ".", "R"]] + [["S", "S.", "."], SYNS]}),
    # the echo typed ahead, SO_KEEPALIVE with the probes' timers as the client's sysctls, a server that falls silent
    "keepalive": ([], [], {"client": [["S", "S.", ".", "P.", ".", "P.", ".", ".", ".", ".", "R."],
                                      ["S", "S.", ".", "P.", ".", "P.", "."]]}),
    # each request's two writes typed back to back: Nagle holds the body for the delayed ACK, TCP_NODELAY does not;
    # request 1 is quick-ACKed, the client's ACK of each reply rides on its next header
    # tcpctl with each side's calls typed ahead: listeners with the small SO_RCVBUF their windows show, one bulk write
    # each; the slow reader accepts and reads nothing until the capture's window opened again, so the client's
    # kernel probes the zero window meanwhile
    # tcpctl: the lost connections from the capture's ports, the server's link dropping their data from the first
    # write on (head, tail, the tail's loss probe, four RTO retransmissions of both), tcp_retries2 4 standing in for
    # what ended them; control's echo typed ahead
    "retransmit": ([], [], {"client": [[">S0", "<S.0", ">.0", ">P.18", ">P.18", ">P.18"] + [">P.36"] * 4] * 2
                            + [["S", "S.", ".", ">36", "<36"]]}),
    # (what each end sent once: _sent_once; the Nagle stall is in _timers)
    "nagle": ([], [], {"client": [["S", "S.", "P.", "P.", "P."] + ["P.", "P.", "P."] * 9 + ["F.", "F."]] * 2}),
}
# where the story is within milliseconds or a kernel timer, the draft's run matches more than the flags: each
# packet's direction and payload size, and the timers' gaps (_timers); a timer's repetitions after the first are
# as many as the run is long (_repeats_cut)
SEGMENTS = {"backlog", "keepalive", "nagle"}
# where segments are cut as the machine's pace lets the window and the ACKs come, a connection's shape is compared
# (an answered request's beside lost ones' segments, _lost_by_client), and the timers
VIEWS = {"retransmit": _lost_by_client, "nagle": _sent_once}
# the segments compared for a lab of SEGMENTS, where the default's every packet is the machine's pace
SEGMENT_VIEWS = {"nagle": partial(_sent_once, sizes=True)}

# The shipped labs no draft replays yet, and why (each is a behaviour the draft's programs cannot play from what the
# capture shows); test_every_shipped_lab_round_trips_or_says_why keeps this list and ROUND_TRIPS whole.
NOT_ROUND_TRIPPED = {
    "pmtu-blackhole": "a router between two networks with a smaller MTU toward the server and a firewall that drops "
                      "its ICMP: a draft is one network of two hosts, and one host's capture shows neither the router "
                      "nor the ICMP it never sent",
    "idle-timeout": "a NAT box between two networks that forgets an idle connection and answers for the server: the "
                    "capture shows the box's RST in the server's name, but neither the box nor its flow table, and a "
                    "draft is one network of two hosts",
    "zero-window": "not yet: its draft (a small SO_RCVBUF reader, a bulk write, the window closing, probes, the "
                   "window opening) replays the shape, but since the captures keep one frame per packet the "
                   "drafted writes come out a few hundred bytes short of the lab's 200000 (seen in CI, not yet "
                   "explained)",
    "syn-flood": "hundreds of SYNs from a raw socket, with no socket behind them, against servers with SYN cookies on "
                 "and off: a draft replays connections made by programs, one step each, and one host's capture does "
                 "not show the servers' tcp_syncookies",
}


def test_every_shipped_lab_round_trips_or_says_why() -> None:
    from ..conftest import shipped_labs

    assert set(ROUND_TRIPS) | set(NOT_ROUND_TRIPPED) == set(shipped_labs())
    assert not set(ROUND_TRIPS) & set(NOT_ROUND_TRIPPED)


@pytest.fixture(scope="module", params=list(ROUND_TRIPS))
def round_trip(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               shipped_run: Any) -> tuple[str, Path, Path, Path]:
    """A shipped lab's run (the session's one: tests/conftest.py ``shipped_run``, with the sets CI gives it);
    its draft from capture/all.pcapng (every connection); the draft's run."""
    lab: str = request.param
    tmp = tmp_path_factory.mktemp(f"from-pcap-{lab}")
    proc, first, _, _ = shipped_run(lab)
    # what is compared is the packets: an expectation of the shipped lab missing its timing by a hair (a loaded
    # machine) is the library test's business, not this one's
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    draft = tmp / "draft.yaml"
    proc = lab_cmd("new", "--from-pcap", str(first / "capture" / "all.pcapng"), "--connection", "all",
                   "--out", str(draft), cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    second = tmp / "replay"
    proc = _run(str(draft), second, isolated("from-cw") + ROUND_TRIPS[lab][1])
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return lab, first, draft, second


def test_a_drafted_shipped_lab_replays_every_connection_with_the_same_flags(
        round_trip: tuple[str, Path, Path, Path]) -> None:
    lab, first, draft, second = round_trip
    seen = VIEWS.get(lab, _flags_by_client)
    before = seen(first)
    assert _shows(before, ROUND_TRIPS[lab][2]), before
    after = seen(second)
    if lab not in SEGMENTS:
        assert after == before, (before, after)
    else:
        assert _repeats_cut(after) == _repeats_cut(before), (before, after)
        segments = SEGMENT_VIEWS.get(lab, _segments_by_client)
        want_segments, got_segments = segments(first), segments(second)
        assert _repeats_cut(got_segments) == _repeats_cut(want_segments), (want_segments, got_segments)
    if lab in SEGMENTS | set(VIEWS):
        want, got = _timers(lab, first), _timers(lab, second)
        # a kernel timer fires late by up to its timer wheel's granularity (256 ms for one of 2 to 16 s at HZ=250;
        # where it was armed decides by how much): 10 % of the gap, and at least 100 ms
        assert len(got) == len(want) and all(
            len(g) == len(w) and all(abs(x - y) <= max(0.1, y / 10) if isinstance(x, float) else x == y
                                     for x, y in zip(g, w))
            for g, w in zip(got, want)), (want, got)
    # the Windows timer is read off the capture (an RST 2 s after the FIN), a Linux peer stays Linux
    assert ('fin_wait2_timeout: "2s"' in draft.read_text()) == (lab == "closewait")


def test_the_field_report_drafted_and_run_shows_its_flag_sequence(tmp_path: Path) -> None:
    draft = tmp_path / "fr.yaml"
    proc = lab_cmd("new", "--from-pcap", str(FIELD_REPORT), "--out", str(draft), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "run"
    # the report's 52.5 s silence and 120 s timer, shortened as the draft's comments say
    proc = _run(str(draft), run, isolated("from-fr") + ["peers.win.fin_wait2_timeout=2s",
                                                         "steps.2.wait.seconds=0.5"])
    assert proc.returncode == 0, proc.stdout + proc.stderr  # every drafted expectation held
    assert _flags_by_client(run) == {"win": flag_sequences(read_capture_file(FIELD_REPORT))}


def test_a_drafted_conversation_types_its_bytes_and_both_sides_close(tmp_path: Path) -> None:
    """A Linux client's capture (made with scapy): connect, a line of text, close; the server closes too."""
    from scapy.utils import wrpcap

    from ..unit.test_from_pcap import _conversation

    capture = tmp_path / "talk.pcap"
    wrpcap(str(capture), _conversation(b'GET "x" \\ 1\r\n'))
    draft = tmp_path / "talk.yaml"
    proc = lab_cmd("new", "--from-pcap", str(capture), "--out", str(draft), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "run"
    # its two silences (3 s, 2 s) shortened as the draft's comments say
    proc = _run(str(draft), run, isolated("from-talk") + ["steps.1.wait.seconds=0.2", "steps.3.wait.seconds=0.2"])
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the payload, its seq, both FINs: every rule held
    (conn,) = load_traffic(run).connections
    assert b"".join(p.tcp.payload for p in conn.packets) == b'GET "x" \\ 1\r\n'
    assert [p.src_host for p in conn.packets if "F" in p.flags] == ["client", "server"]
