"""`lab new --from-pcap` on real captures: the field report's packets and a closewait run's merged pcapng
are drafted, the drafts run, and each connection of the run shows the capture's flags in order."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tcplab.analysis.packets import load_traffic
from tcplab.draft import read_capture_file
from tcplab.draft.from_pcap import flag_sequences

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


SYNS = ["S", "..."]  # SYNs only, as many as the kernel's tcp_syn_retries and tcp_syn_linear_timeouts make


def _shows(seen: dict[str, list[list[str]]], expected: dict[str, list[list[str]]]) -> bool:
    if seen.keys() != expected.keys():
        return False
    for host, conns in expected.items():
        if len(seen[host]) != len(conns):
            return False
        for got, want in zip(seen[host], conns):
            if want is SYNS and not (len(got) >= 2 and set(got) == {"S"}) or want is not SYNS and got != want:
                return False
    return True


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
}

# The shipped labs no draft replays yet, and why (each is a behaviour the draft's programs cannot play from what the
# capture shows); test_every_shipped_lab_round_trips_or_says_why keeps this list and ROUND_TRIPS whole.
NOT_ROUND_TRIPPED = {
    "backlog": "a listener that never accepts, with a backlog of 1 or 2, and a burst of connections at once: the "
               "capture shows neither the backlog (the SYN-ACK retransmits and the dropped SYNs are the kernel's) nor "
               "that accept() was never called, and the draft opens connections one step at a time",
    "keepalive": "two connections open at once to an echo server (tcpctl acts on the last one it accepted) and the "
                 "client's keepalive probes: tcpctl has no SO_KEEPALIVE (the draft only comments the timers the probes' gaps "
                 "show), and a server that vanishes (drops every "
                 "packet) is not told apart from one that stopped answering",
    "nagle": "writes without a newline (tcpctl and telnet send lines) and segment boundaries made by Nagle's "
             "algorithm and the delayed-ACK timer within milliseconds, which steps a few milliseconds apart cannot "
             "reproduce",
    "pmtu-blackhole": "a router between two networks with a smaller MTU toward the server and a firewall that drops "
                      "its ICMP: a draft is one network of two hosts, and one host's capture shows neither the router "
                      "nor the ICMP it never sent",
    "idle-timeout": "a NAT box between two networks that forgets an idle connection and answers for the server: the "
                    "capture shows the box's RST in the server's name, but neither the box nor its flow table, and a "
                    "draft is one network of two hosts",
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
    before = _flags_by_client(first)
    assert _shows(before, ROUND_TRIPS[lab][2]), before
    assert _flags_by_client(second) == before
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
