"""netstat/ss parsers on outputs recorded from real containers (Debian bookworm net-tools and iproute2).

The loopback recordings come from one network namespace holding every case at
once: IPv4 and IPv6 listeners (v6only and dual-stack), an IPv4-mapped
connection, a connection left in a listener's accept queue (no PID), one
closed by its client there (CLOSE_WAIT / FIN_WAIT2 without PID), a TIME_WAIT,
a SYN_SENT retransmitting into a DROP rule, a zero-window sender with a full
Send-Q, a keepalive socket, and a listener shared by a forked child. The lab
recordings are closewait-linux's ``close_wait`` snapshot. ss's multi-line
rows (``-i`` prints a tab-indented continuation line) are kept byte-exact.

The tracer that writes sockets/transitions.jsonl is tested on trace_pipe
lines recorded from this project's kernel (6.18): loopback connections over
IPv4 and IPv6, an orderly close, a RST to a closed port and an abortive
close (SO_LINGER 0).
"""
from __future__ import annotations

import json
from pathlib import Path

from tcplab.observe.sockets import SocketRecord, parse_netstat, parse_ss
from tcplab.observe.tracer import StateTracer, instance_name, remove_instance, tracefs_missing
from tcplab.runfiles.transitions import read_path as read_transitions

from ..conftest import load_module

ROOT = Path(__file__).resolve().parents[2]


def _row(r: SocketRecord) -> tuple[object, ...]:
    return (r.state, r.local_addr, r.local_port, r.peer_addr, r.peer_port, r.recv_q, r.send_q, r.pid, r.program)


def _find(records: list[SocketRecord], state: str, local_port: int | None = None,
          peer_port: int | None = None) -> SocketRecord:
    found = [r for r in records if r.state == state and local_port in (None, r.local_port)
             and peer_port in (None, r.peer_port)]
    assert len(found) == 1, found
    return found[0]


def test_netstat_every_row_of_the_loopback_recording() -> None:
    assert [_row(r) for r in parse_netstat(NETSTAT_LOOPBACK)] == [
        ("LISTEN", "0.0.0.0", 8000, "0.0.0.0", None, 0, 0, 7, "python3"),
        ("LISTEN", "127.0.0.1", 9000, "0.0.0.0", None, 2, 0, 7, "python3"),
        ("ESTABLISHED", "127.0.0.1", 52380, "127.0.0.1", 8081, 0, 0, 7, "python3"),
        ("ESTABLISHED", "127.0.0.1", 9000, "127.0.0.1", 40700, 0, 0, None, None),
        ("SYN_SENT", "127.0.0.1", 54642, "127.0.0.1", 9999, 0, 1, 7, "python3"),
        ("CLOSE_WAIT", "127.0.0.1", 9000, "127.0.0.1", 40704, 1, 0, None, None),
        ("TIME_WAIT", "127.0.0.1", 34026, "127.0.0.1", 8000, 0, 0, None, None),
        ("ESTABLISHED", "127.0.0.1", 34028, "127.0.0.1", 8000, 0, 3863438, 7, "python3"),
        ("ESTABLISHED", "127.0.0.1", 40700, "127.0.0.1", 9000, 0, 0, 7, "python3"),
        ("FIN_WAIT2", "127.0.0.1", 40704, "127.0.0.1", 9000, 0, 0, None, None),
        ("ESTABLISHED", "127.0.0.1", 8000, "127.0.0.1", 34028, 32741, 0, 7, "python3"),
        ("LISTEN", "::", 8081, "::", None, 0, 0, 7, "python3"),
        ("LISTEN", "::", 8080, "::", None, 0, 0, 7, "python3"),
        ("ESTABLISHED", "127.0.0.1", 8081, "127.0.0.1", 52380, 0, 0, 7, "python3"),
        ("ESTABLISHED", "::1", 8080, "::1", 49624, 0, 0, 7, "python3"),
        ("ESTABLISHED", "::1", 49624, "::1", 8080, 0, 0, 7, "python3"),
    ]
    assert all(r.source == "netstat" and r.timer is None for r in parse_netstat(NETSTAT_LOOPBACK))


def test_ss_continuation_lines_belong_to_their_row() -> None:
    records = parse_ss(SS_LOOPBACK)
    assert len(records) == 16, "one record per socket: the tab-indented -i lines are not rows"
    cw = _find(records, "CLOSE_WAIT", 9000)
    assert "ino:0" in cw.info and "bytes_received:1" in cw.info and "rcv_space:" in cw.info
    zero_window = _find(records, "ESTABLISHED", 34028)
    assert "bytes_retrans:130964" in zero_window.info and "backoff:3" in zero_window.info
    listen = _find(records, "LISTEN", 9000)
    assert listen.info.endswith("bbr cwnd:10 unacked:2"), listen.info


def test_ss_states_queues_and_timers() -> None:
    records = parse_ss(SS_LOOPBACK)
    assert _find(records, "SYN_SENT").timer == "on,324ms,1"
    assert _find(records, "TIME_WAIT").timer == "timewait,58sec,0"
    assert _find(records, "FIN_WAIT2").timer == "timewait,58sec,0"
    assert _find(records, "ESTABLISHED", 34028).timer == "on,1.628ms,0"
    assert _find(records, "ESTABLISHED", 49624).timer == "keepalive,119min,0"
    assert _find(records, "ESTABLISHED", 8080).timer is None
    full = _find(records, "ESTABLISHED", 34028)
    assert (full.recv_q, full.send_q) == (0, 3863438)
    assert _find(records, "ESTABLISHED", 8000).recv_q == 32741
    assert _find(records, "LISTEN", 9000).send_q == 5, "ss gives a listener's backlog as Send-Q"


def test_ipv6_rows_and_ipv4_mapped_addresses() -> None:
    records = parse_ss(SS_LOOPBACK)
    assert (_find(records, "LISTEN", 8080).local_addr, _find(records, "LISTEN", 8081).local_addr) == ("::", "::")
    v6 = _find(records, "ESTABLISHED", 8080)
    assert (v6.local_addr, v6.peer_addr, v6.peer_port) == ("::1", "::1", 49624)
    mapped = _find(records, "ESTABLISHED", 8081)  # ss: [::ffff:127.0.0.1]:8081, netstat: 127.0.0.1:8081
    assert (mapped.local_addr, mapped.peer_addr, mapped.peer_port) == ("127.0.0.1", "127.0.0.1", 52380)


def test_sockets_no_program_owns_have_no_pid() -> None:
    for records in (parse_netstat(NETSTAT_LOOPBACK), parse_ss(SS_LOOPBACK)):
        unowned = sorted((r.state, r.local_port) for r in records if r.pid is None)
        assert unowned == [("CLOSE_WAIT", 9000), ("ESTABLISHED", 9000), ("FIN_WAIT2", 40704),
                           ("TIME_WAIT", 34026)]
        assert all(r.program is None for r in records if r.pid is None)


def test_a_shared_socket_is_owned_by_its_lowest_pid() -> None:
    """The listener is shared by a forked child: ss lists pid 12 first, netstat names pid 7."""
    assert 'users:(("python3",pid=12,fd=3),("python3",pid=7,fd=3))' in SS_LOOPBACK
    listen = _find(parse_ss(SS_LOOPBACK), "LISTEN", 8000)
    assert (listen.pid, listen.program) == (7, "python3")


def test_netstat_and_ss_tell_the_same_table() -> None:
    def key(r: SocketRecord) -> tuple[object, ...]:
        return (r.state, r.local_addr, r.local_port, r.peer_addr, r.peer_port, r.pid, r.program)

    for netstat, ss in ((NETSTAT_LOOPBACK, SS_LOOPBACK), (NETSTAT_LAB_SERVER, SS_LAB_SERVER),
                        (NETSTAT_LAB_WIN, SS_LAB_WIN)):
        assert sorted(map(key, parse_netstat(netstat))) == sorted(map(key, parse_ss(ss)))


def test_the_labs_close_wait_snapshot() -> None:
    server, win = "10.200.135.2", "10.200.135.4"
    for records in (parse_netstat(NETSTAT_LAB_SERVER), parse_ss(SS_LAB_SERVER)):
        cw = _find(records, "CLOSE_WAIT")
        assert (cw.local_addr, cw.local_port, cw.peer_addr, cw.pid, cw.recv_q) == (server, 8000, win, None, 1)
        est = _find(records, "ESTABLISHED")
        assert (est.peer_addr, est.pid, est.program) == ("10.200.135.3", 19, "server")
        listen = _find(records, "LISTEN", 8000)
        assert (listen.local_addr, listen.recv_q, listen.pid) == ("0.0.0.0", 1, 19)
        dns = _find(records, "LISTEN", 35833)  # Docker's embedded DNS, owned by no process of the host
        assert (dns.local_addr, dns.pid) == ("127.0.0.11", None)
    for records in (parse_netstat(NETSTAT_LAB_WIN), parse_ss(SS_LAB_WIN)):
        fw = _find(records, "FIN_WAIT2")
        assert (fw.local_addr, fw.peer_addr, fw.peer_port, fw.pid) == (win, server, 8000, None)
    assert _find(parse_ss(SS_LAB_WIN), "FIN_WAIT2").timer == "timewait,59sec,0"


def test_lines_that_are_no_socket_are_skipped() -> None:
    noise = "Failed to find cgroup2 mount\nState Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
    assert parse_ss(noise) == []
    assert parse_ss(noise + SS_LAB_WIN) == parse_ss(SS_LAB_WIN)
    assert parse_netstat("Active Internet connections (servers and established)\n") == []
    assert parse_netstat("netstat: no support for `AF INET (tcp)' on this system.\n") == []
    assert parse_ss("") == [] and parse_netstat("") == []


def test_bound_device_and_wildcards() -> None:
    line = "LISTEN 0 5 0.0.0.0%lo:8000 0.0.0.0:* users:((\"server\",pid=3,fd=3))\n"
    (rec,) = parse_ss(line)
    assert (rec.local_addr, rec.local_port, rec.peer_addr, rec.peer_port, rec.pid) == ("0.0.0.0", 8000, "0.0.0.0",
                                                                                        None, 3)


def test_records_round_trip_through_json_dicts() -> None:
    for rec in parse_ss(SS_LOOPBACK) + parse_netstat(NETSTAT_LOOPBACK):
        assert SocketRecord.from_dict(rec.to_dict()) == rec



# --- sockets/transitions.jsonl: the kernel tracer ----------------------------------------

def _tracer():
    return load_module(ROOT / "images" / "tools" / "tracer.py", "tcplab_tools_tracer")


def _events() -> list[dict[str, object]]:
    tracer = _tracer()
    return [r for r in (tracer.parse_event(line, 1000.0) for line in TRACE_PIPE.splitlines()) if r is not None]


def test_tracer_reads_every_event_line_of_the_recorded_trace() -> None:
    events = _events()
    assert len(events) == sum(1 for line in TRACE_PIPE.splitlines() if not line.startswith("#"))
    cw = [e for e in events if e.get("new") == "CLOSE_WAIT"]
    assert cw[0] == {"ts": 2824.830543, "event": "inet_sock_set_state", "saddr": "127.0.0.1", "sport": 46463,
                     "daddr": "127.0.0.1", "dport": 60498, "old": "ESTABLISHED", "new": "CLOSE_WAIT"}
    states = [(e["old"], e["new"]) for e in events if e["event"] == "inet_sock_set_state" and e["sport"] == 60498]
    assert states == [("SYN_SENT", "ESTABLISHED"), ("ESTABLISHED", "FIN_WAIT1"), ("FIN_WAIT1", "FIN_WAIT2"),
                      ("FIN_WAIT2", "CLOSE")], "an orphaned FIN_WAIT2 socket closes at once (a timewait sock stays)"


def test_tracer_resets_name_the_local_end_first() -> None:
    sent = [e for e in _events() if e["event"] == "tcp_send_reset"]
    assert [(e["saddr"], e["sport"], e["dport"], e["state"], e["reason"]) for e in sent] == [
        ("127.0.0.1", 41557, 39700, "UNKNOWN", "NO_SOCKET"),  # no socket: the closed port answers
        ("127.0.0.1", 60508, 46463, "CLOSE", "TCP_STATE")]  # SO_LINGER 0: the closing socket resets
    got = [e for e in _events() if e["event"] == "tcp_receive_reset"]
    assert [(e["sport"], e["dport"]) for e in got] == [(39700, 41557), (46463, 60508)]
    assert all("old" not in e and "state" not in e for e in got)


def test_tracer_takes_ipv6_addresses_from_the_v6_fields() -> None:
    v6 = [e for e in _events() if e["saddr"] == "::1"]
    assert len(v6) == TRACE_PIPE.count("AF_INET6") == 11
    assert "saddr=127.0.0.6" in TRACE_PIPE, "AF_INET6 events carry junk in saddr: the v6 fields are the truth"
    assert not [e for e in _events() if "127.0.0.6" in (e["saddr"], e["daddr"])]


def test_tracer_skips_what_is_not_a_tcp_event() -> None:
    tracer = _tracer()
    line = next(x for x in TRACE_PIPE.splitlines() if "TCP_CLOSE_WAIT" in x and "AF_INET " in x)
    assert tracer.parse_event(line.replace("IPPROTO_TCP", "IPPROTO_MPTCP"), 0.0) is None
    assert tracer.parse_event(line.replace("saddrv6=", "x=").replace("saddr=127.0.0.1", "saddr=junk"), 0.0) is None
    assert tracer.parse_event("# tracer: nop", 0.0) is None
    assert tracer.parse_event("", 0.0) is None


def test_tracer_keeps_the_labs_addresses_and_names_their_hosts() -> None:
    import ipaddress

    tracer = _tracer()
    hosts = {"10.77.0.2": "server", "10.77.0.4": "win"}
    ev = {"saddr": "10.77.0.2", "sport": 8000, "daddr": "10.77.0.4", "dport": 43692}
    assert tracer.select(dict(ev), hosts, ipaddress.ip_network("10.77.0.0/24")) == {**ev, "host": "server",
                                                                                     "peer": "win"}
    outsider = {**ev, "saddr": "10.77.0.9"}
    assert tracer.select(dict(outsider), hosts, None)["host"] is None
    assert tracer.select({**ev, "saddr": "127.0.0.1", "daddr": "127.0.0.1"}, hosts, None) is None
    assert tracer.select({**ev, "saddr": "0.0.0.0", "daddr": "0.0.0.0"}, hosts, None) is None
    net = ipaddress.ip_network("10.77.0.0/24")
    assert tracer.select(dict(outsider), {}, net) == outsider
    assert tracer.select({**ev, "saddr": "10.78.0.2", "daddr": "10.78.0.3"}, {}, net) is None


def test_tracer_command_passes_the_host_table() -> None:
    argv = StateTracer("10.77.0.0/24", instance_name("cw-1"), {"win": "10.77.0.4", "server": "10.77.0.2"}).command()
    assert argv == ["python3", "-u", "/opt/lab/tracer.py", "/tracefs", "10.77.0.0/24", "/sockets/transitions.jsonl",
                    "tcplab-cw-1", "server=10.77.0.2", "win=10.77.0.4"]


def test_tracefs_missing_says_what_is_missing(tmp_path: Path) -> None:
    root = str(tmp_path)
    assert "not mounted" in (tracefs_missing(root) or "")
    (tmp_path / "trace_pipe").write_text("")
    assert tracefs_missing(root) == "this kernel has no tracepoint sock:inet_sock_set_state"
    for ev in ("sock/inet_sock_set_state", "tcp/tcp_send_reset", "tcp/tcp_receive_reset"):
        (tmp_path / "events" / ev).mkdir(parents=True)
    assert tracefs_missing(root) == "this kernel's tracefs has no instances/"
    (tmp_path / "instances" / "tcplab-cw-1").mkdir(parents=True)
    assert tracefs_missing(root) is None
    assert remove_instance("tcplab-cw-1", root) and not (tmp_path / "instances" / "tcplab-cw-1").exists()
    assert remove_instance("tcplab-never", root)


def test_read_transitions_skips_a_cut_line_and_fills_hosts(tmp_path: Path) -> None:
    path = tmp_path / "transitions.jsonl"
    done = {"ts": 1.5, "event": "inet_sock_set_state", "saddr": "10.77.0.2", "daddr": "10.77.0.4", "old": "ESTABLISHED",
            "new": "CLOSE_WAIT"}
    path.write_text(json.dumps(done) + "\n" + json.dumps({**done, "host": "x", "peer": "y"}) + "\n"
                    + '{"ts": 2.0, "event": "inet_so')
    got = list(read_transitions(path, {"server": "10.77.0.2", "win": "10.77.0.4"}))
    assert [(r["host"], r["peer"]) for r in got] == [("server", "win"), ("x", "y")]
    assert list(read_transitions(tmp_path / "none.jsonl")) == []


# --- recorded outputs -----------------------------------------------------------------

NETSTAT_LOOPBACK = (
    'Active Internet connections (servers and established)\n'
    'Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name    '
    '\n'
    'tcp        0      0 0.0.0.0:8000            0.0.0.0:*               LISTEN      7/python3           '
    '\n'
    'tcp        2      0 127.0.0.1:9000          0.0.0.0:*               LISTEN      7/python3           '
    '\n'
    'tcp        0      0 127.0.0.1:52380         127.0.0.1:8081          ESTABLISHED 7/python3           '
    '\n'
    'tcp        0      0 127.0.0.1:9000          127.0.0.1:40700         ESTABLISHED -                   '
    '\n'
    'tcp        0      1 127.0.0.1:54642         127.0.0.1:9999          SYN_SENT    7/python3           '
    '\n'
    'tcp        1      0 127.0.0.1:9000          127.0.0.1:40704         CLOSE_WAIT  -                   '
    '\n'
    'tcp        0      0 127.0.0.1:34026         127.0.0.1:8000          TIME_WAIT   -                   '
    '\n'
    'tcp        0 3863438 127.0.0.1:34028         127.0.0.1:8000          ESTABLISHED 7/python3          '
    ' \n'
    'tcp        0      0 127.0.0.1:40700         127.0.0.1:9000          ESTABLISHED 7/python3           '
    '\n'
    'tcp        0      0 127.0.0.1:40704         127.0.0.1:9000          FIN_WAIT2   -                   '
    '\n'
    'tcp    32741      0 127.0.0.1:8000          127.0.0.1:34028         ESTABLISHED 7/python3           '
    '\n'
    'tcp6       0      0 :::8081                 :::*                    LISTEN      7/python3           '
    '\n'
    'tcp6       0      0 :::8080                 :::*                    LISTEN      7/python3           '
    '\n'
    'tcp6       0      0 127.0.0.1:8081          127.0.0.1:52380         ESTABLISHED 7/python3           '
    '\n'
    'tcp6       0      0 ::1:8080                ::1:49624               ESTABLISHED 7/python3           '
    '\n'
    'tcp6       0      0 ::1:49624               ::1:8080                ESTABLISHED 7/python3           '
    '\n'
)

SS_LOOPBACK = (
    'State      Recv-Q Send-Q       Local Address:Port        Peer Address:Port Process                  '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                           \n'
    'LISTEN     0      5                  0.0.0.0:8000             0.0.0.0:*     users:(("python3",pid=12'
    ',fd=3),("python3",pid=7,fd=3)) ino:101137 sk:104d cgroup:unreachable:94d <->\n'
    '\t bbr cwnd:10                                                                                       '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                  \n'
    'LISTEN     2      5                127.0.0.1:9000             0.0.0.0:*     users:(("python3",pid=12'
    ',fd=6),("python3",pid=7,fd=6)) ino:101140 sk:104e cgroup:unreachable:94d <->\n'
    '\t bbr cwnd:10 unacked:2                                                                             '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                  \n'
    'ESTAB      0      0                127.0.0.1:52380          127.0.0.1:8081  users:(("python3",pid=12'
    ',fd=9),("python3",pid=7,fd=9)) ino:101143 sk:104f cgroup:unreachable:94d <->\n'
    '\t ts sack bbr wscale:10,10 rto:204 rtt:0.018/0.009 mss:32741 pmtu:65535 rcvmss:536 advmss:65483 cwnd'
    ':10 bytes_acked:1 segs_out:2 segs_in:1 bbr:(bw:0bps,mrtt:0.018,pacing_gain:1,cwnd_gain:1) send 14551'
    '5555556bps lastsnd:1844 lastrcv:1844 lastack:1844 pacing_rate 415861833024bps delivered:1 app_limite'
    'd rcv_space:65495 rcv_ssthresh:65495 minrtt:0.018 snd_wnd:65483                                     '
    '                                                                                                    '
    '                                                                  \n'
    'ESTAB      0      0                127.0.0.1:9000           127.0.0.1:40700 ino:0 sk:1050 cgroup:unr'
    'eachable:94d <->\n'
    '\t ts sack bbr wscale:10,10 rto:204 rtt:0.011/0.005 mss:32768 pmtu:65535 rcvmss:536 advmss:65483 cwnd'
    ':10 segs_in:2 bbr:(bw:0bps,mrtt:0.011) send 238312727273bps lastsnd:1844 lastrcv:1844 lastack:1844 p'
    'acing_rate 681062375640bps delivered:1 app_limited rcv_space:65483 rcv_ssthresh:65483 minrtt:0.011 s'
    'nd_wnd:65536                                                                                        '
    '                                                                                                    '
    '                                                                                                    '
    '                          \n'
    'SYN-SENT   0      1                127.0.0.1:54642          127.0.0.1:9999  users:(("python3",pid=12'
    ',fd=14),("python3",pid=7,fd=14)) timer:(on,324ms,1) ino:101583 sk:1051 cgroup:unreachable:94d <->\n'
    '\t bbr rto:1000 mss:524 pmtu:65535 rcvmss:88 advmss:65495 cwnd:1 segs_out:2 bbr:(bw:0bps,mrtt:0) last'
    'snd:792580 lastrcv:792580 lastack:792580 app_limited unacked:1 retrans:1/1 lost:1 rcv_ssthresh:65495'
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                             \n'
    'CLOSE-WAIT 1      0                127.0.0.1:9000           127.0.0.1:40704 ino:0 sk:1052 cgroup:unr'
    'eachable:94d -->\n'
    '\t ts sack bbr wscale:10,10 rto:204 rtt:0.01/0.005 ato:40 mss:32768 pmtu:65535 rcvmss:536 advmss:6548'
    '3 cwnd:10 bytes_received:1 segs_out:1 segs_in:3 send 262144000000bps lastsnd:1844 lastrcv:1844 lasta'
    'ck:1744 pacing_rate 749168640000bps delivered:1 app_limited rcv_space:65483 rcv_ssthresh:65483 minrt'
    't:0.01 snd_wnd:65536                                                                                '
    '                                                                                                    '
    '                                                                                                    '
    '                          \n'
    'TIME-WAIT  0      0                127.0.0.1:34026          127.0.0.1:8000  timer:(timewait,58sec,0)'
    ' ino:0 sk:1053\n'
    '\t                                                                                                   '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                            \n'
    'ESTAB      0      3863438          127.0.0.1:34028          127.0.0.1:8000  users:(("python3",pid=12'
    ',fd=12),("python3",pid=7,fd=12)) timer:(on,1.628ms,0) ino:101581 sk:1054 cgroup:unreachable:94d <->\n'
    '\t ts sack bbr wscale:10,10 rto:1632 backoff:3 rtt:0.022/0.014 mss:32741 pmtu:65535 rcvmss:536 advmss'
    ':65483 cwnd:1 bytes_sent:196446 bytes_retrans:130964 bytes_acked:32742 segs_out:8 segs_in:7 data_seg'
    's_out:6 bbr:(bw:5456828128bps,mrtt:0.019,pacing_gain:2.88672,cwnd_gain:2.88672) send 11905818182bps '
    'lastsnd:4 lastrcv:1692 lastack:4 pacing_rate 393974361080bps delivery_rate 5456833328bps delivered:2'
    ' app_limited busy:1692ms rwnd_limited:420ms(24.8%) unacked:1 retrans:1/4 lost:1 rcv_space:65495 rcv_'
    'ssthresh:65495 notsent:3830697 minrtt:0.019\n'
    'ESTAB      0      0                127.0.0.1:40700          127.0.0.1:9000  users:(("python3",pid=12'
    ',fd=11),("python3",pid=7,fd=11)) ino:101145 sk:1055 cgroup:unreachable:94d <->\n'
    '\t ts sack bbr wscale:10,10 rto:204 rtt:0.009/0.004 mss:32741 pmtu:65535 rcvmss:536 advmss:65483 cwnd'
    ':10 bytes_acked:1 segs_out:2 segs_in:1 bbr:(bw:0bps,mrtt:0.009,pacing_gain:1,cwnd_gain:1) send 29103'
    '1111111bps lastsnd:1844 lastrcv:1844 lastack:1844 pacing_rate 831723710664bps delivered:1 app_limite'
    'd rcv_space:65495 rcv_ssthresh:65495 minrtt:0.009 snd_wnd:65483                                     '
    '                                                                                                    '
    '                                                                \n'
    'FIN-WAIT-2 0      0                127.0.0.1:40704          127.0.0.1:9000  timer:(timewait,58sec,0)'
    ' ino:0 sk:1056\n'
    '\t                                                                                                   '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                            \n'
    'ESTAB      32741  0                127.0.0.1:8000           127.0.0.1:34028 users:(("python3",pid=12'
    ',fd=13),("python3",pid=7,fd=13)) ino:101582 sk:1057 cgroup:unreachable:94d <->\n'
    '\t ts sack bbr wscale:10,10 rto:200 rtt:0.023/0.011 ato:40 mss:32768 pmtu:65535 rcvmss:32741 advmss:6'
    '5483 cwnd:10 bytes_received:32741 segs_out:6 segs_in:8 data_segs_in:6 bbr:(bw:0bps,mrtt:0.023) send '
    '113975652174bps lastsnd:1692 lastrcv:1692 lastack:1692 pacing_rate 325725462640bps delivered:1 app_l'
    'imited rcv_rtt:1 rcv_space:7968 rcv_ssthresh:7968 minrtt:0.023 snd_wnd:65536                        '
    '                                                                                                    '
    '                                                                \n'
    'LISTEN     0      5                        *:8081                   *:*     users:(("python3",pid=12'
    ',fd=5),("python3",pid=7,fd=5)) ino:101139 sk:1058 cgroup:unreachable:94d v6only:0 <->\n'
    '\t bbr cwnd:10                                                                                       '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                         \n'
    'LISTEN     0      5                     [::]:8080                [::]:*     users:(("python3",pid=12'
    ',fd=4),("python3",pid=7,fd=4)) ino:101138 sk:1059 cgroup:unreachable:94d v6only:1 <->\n'
    '\t bbr cwnd:10                                                                                       '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                                         \n'
    'ESTAB      0      0       [::ffff:127.0.0.1]:8081  [::ffff:127.0.0.1]:52380 users:(("python3",pid=12'
    ',fd=10),("python3",pid=7,fd=10)) ino:101144 sk:105a cgroup:unreachable:94d <->\n'
    '\t ts sack bbr wscale:10,10 rto:204 rtt:0.052/0.026 mss:32768 pmtu:65535 rcvmss:536 advmss:65483 cwnd'
    ':10 segs_in:2 bbr:(bw:0bps,mrtt:0.052) send 50412307692bps lastsnd:1844 lastrcv:1844 lastack:1844 pa'
    'cing_rate 144070861392bps delivered:1 app_limited rcv_space:65483 rcv_ssthresh:65483 minrtt:0.052 sn'
    'd_wnd:65536                                                                                         '
    '                                                                                                    '
    '                                                                \n'
    'ESTAB      0      0                    [::1]:8080               [::1]:49624 users:(("python3",pid=12'
    ',fd=8),("python3",pid=7,fd=8)) ino:101142 sk:105b cgroup:unreachable:94d <->\n'
    '\t ts sack bbr wscale:10,10 rto:204 rtt:0.03/0.015 mss:32768 pmtu:65536 rcvmss:536 advmss:65464 cwnd:'
    '10 segs_in:2 bbr:(bw:0bps,mrtt:0.03) send 87381333333bps lastsnd:1844 lastrcv:1844 lastack:1844 paci'
    'ng_rate 249722865112bps delivered:1 app_limited rcv_space:65464 rcv_ssthresh:65464 minrtt:0.03 snd_w'
    'nd:65536                                                                                            '
    '                                                                                                    '
    '                                                                  \n'
    'ESTAB      0      0                    [::1]:49624              [::1]:8080  users:(("python3",pid=12'
    ',fd=7),("python3",pid=7,fd=7)) timer:(keepalive,119min,0) ino:101141 sk:105c cgroup:unreachable:94d '
    '<->\n'
    '\t ts sack bbr wscale:10,10 rto:204 rtt:0.028/0.014 mss:32732 pmtu:65536 rcvmss:536 advmss:65464 cwnd'
    ':10 bytes_acked:1 segs_out:2 segs_in:1 bbr:(bw:0bps,mrtt:0.028,pacing_gain:1,cwnd_gain:1) send 93520'
    '000000bps lastsnd:1844 lastrcv:1844 lastack:1844 pacing_rate 267266239888bps delivered:1 app_limited'
    ' rcv_space:65476 rcv_ssthresh:65476 minrtt:0.028 snd_wnd:65464                                      '
    '                                                                                                    '
    '                                       \n'
)

NETSTAT_LAB_SERVER = (
    'Active Internet connections (servers and established)\n'
    'Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name    '
    '\n'
    'tcp        0      0 127.0.0.11:35833        0.0.0.0:*               LISTEN      -                   '
    '\n'
    'tcp        1      0 0.0.0.0:8000            0.0.0.0:*               LISTEN      19/server           '
    '\n'
    'tcp        0      0 10.200.135.2:8000       10.200.135.3:36078      ESTABLISHED 19/server           '
    '\n'
    'tcp        1      0 10.200.135.2:8000       10.200.135.4:43692      CLOSE_WAIT  -                   '
    '\n'
)

SS_LAB_SERVER = (
    'State      Recv-Q Send-Q Local Address:Port  Peer Address:Port Process                              '
    '                                                                                                    '
    '                                                                                                    '
    '                                                                                                    '
    '                                          \n'
    'LISTEN     0      4096      127.0.0.11:35833      0.0.0.0:*     ino:47925 sk:1016 cgroup:unreachable'
    ':1 <->\n'
    '\t bbr cwnd:10                                                                                       '
    '                                                                                                    '
    '                                                                                                    '
    '                                   \n'
    'LISTEN     1      5            0.0.0.0:8000       0.0.0.0:*     users:(("server",pid=19,fd=3)) ino:4'
    '9576 sk:f cgroup:unreachable:3a9 <->\n'
    '\t bbr cwnd:10 unacked:1                                                                             '
    '                                                                                                    '
    '                                                                                                    '
    '     \n'
    'ESTAB      0      0       10.200.135.2:8000  10.200.135.3:36078 users:(("server",pid=19,fd=4)) ino:4'
    '9577 sk:1017 cgroup:unreachable:3a9 <->\n'
    '\t ts sack bbr wscale:10,10 rto:204 rtt:0.088/0.044 mss:1448 pmtu:1500 rcvmss:536 advmss:1448 cwnd:10'
    ' segs_in:2 bbr:(bw:0bps,mrtt:0.088) send 1316363636bps lastsnd:920 lastrcv:920 lastack:920 pacing_ra'
    'te 3761970256bps delivered:1 app_limited rcv_space:14480 rcv_ssthresh:64088 minrtt:0.088 snd_wnd:645'
    '12\n'
    'CLOSE-WAIT 1      0       10.200.135.2:8000  10.200.135.4:43692 ino:0 sk:1018 cgroup:unreachable:3a9'
    ' -->\n'
    '\t ts sack bbr wscale:10,10 rto:204 rtt:0.034/0.017 ato:40 mss:1448 pmtu:1500 rcvmss:536 advmss:1448 '
    'cwnd:10 bytes_received:1 segs_out:1 segs_in:3 send 3407058824bps lastsnd:744 lastrcv:744 lastack:312'
    ' pacing_rate 9736867800bps delivered:1 app_limited rcv_space:14480 rcv_ssthresh:64088 minrtt:0.034 s'
    'nd_wnd:64512                         \n'
)

NETSTAT_LAB_WIN = (
    'Active Internet connections (servers and established)\n'
    'Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name    '
    '\n'
    'tcp        0      0 127.0.0.11:35941        0.0.0.0:*               LISTEN      -                   '
    '\n'
    'tcp        0      0 10.200.135.4:43692      10.200.135.2:8000       FIN_WAIT2   -                   '
    '\n'
)

SS_LAB_WIN = (
    'State      Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess                               '
    '                   \n'
    'LISTEN     0      4096      127.0.0.11:35941      0.0.0.0:*    ino:47970 sk:1019 cgroup:unreachable:'
    '1 <->\n'
    '\t bbr cwnd:10\n'
    'FIN-WAIT-2 0      0       10.200.135.4:43692 10.200.135.2:8000 timer:(timewait,59sec,0) ino:0 sk:101'
    'a\n'
    '\t                \n'
)

TRACE_PIPE = (
    '# tracer: nop\n'
    '#\n'
    '# entries-in-buffer/entries-written: 41/41   #P:2\n'
    '         python3-28225   [001] .....  1824.828332: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=46463 dport=0 saddr=127.0.0.1 daddr=0.0.0.0 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:0.'
    '0.0.0 oldstate=TCP_CLOSE newstate=TCP_LISTEN\n'
    '         python3-28225   [001] .....  1824.830330: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=0 dport=46463 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:'
    '127.0.0.1 oldstate=TCP_CLOSE newstate=TCP_SYN_SENT\n'
    '         python3-28225   [001] .....  1824.830467: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=60498 dport=46463 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_SYN_SENT newstate=TCP_ESTABLISHED\n'
    '         python3-28225   [001] ..s2.  1824.830481: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=46463 dport=60498 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_LISTEN newstate=TCP_SYN_RECV\n'
    '         python3-28225   [001] ..s2.  1824.830488: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=46463 dport=60498 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_SYN_RECV newstate=TCP_ESTABLISHED\n'
    '         python3-28225   [001] .....  1824.830533: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=60498 dport=46463 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_ESTABLISHED newstate=TCP_FIN_WAIT1\n'
    '         python3-28225   [001] ..s2.  1824.830543: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=46463 dport=60498 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_ESTABLISHED newstate=TCP_CLOSE_WAIT\n'
    '     ksoftirqd/1-22      [001] ..s1.  1824.832069: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=60498 dport=46463 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_FIN_WAIT1 newstate=TCP_FIN_WAIT2\n'
    '     ksoftirqd/1-22      [001] ..s1.  1824.832073: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=60498 dport=46463 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_FIN_WAIT2 newstate=TCP_CLOSE\n'
    '         python3-28225   [001] .....  1824.880682: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=46463 dport=60498 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_CLOSE_WAIT newstate=TCP_LAST_ACK\n'
    '         python3-28225   [001] .....  1824.880754: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=46463 dport=60498 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_LAST_ACK newstate=TCP_CLOSE\n'
    '         python3-28225   [001] .....  1824.880878: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=0 dport=41557 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:'
    '127.0.0.1 oldstate=TCP_CLOSE newstate=TCP_SYN_SENT\n'
    '         python3-28225   [001] ..s1.  1824.880902: tcp_send_reset: skbaddr=000000002a4e3e26 skaddr=0'
    '000000000000000 src=127.0.0.1:41557 dest=127.0.0.1:39700 state=UNKNOWN reason=NO_SOCKET\n'
    '         python3-28225   [001] .....  1824.880911: tcp_receive_reset: family=AF_INET sport=39700 dpo'
    'rt=41557 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 sock_cook'
    'ie=208\n'
    '         python3-28225   [001] .....  1824.880913: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=39700 dport=41557 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_SYN_SENT newstate=TCP_CLOSE\n'
    '         python3-28225   [001] .....  1824.880963: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=0 dport=46463 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:'
    '127.0.0.1 oldstate=TCP_CLOSE newstate=TCP_SYN_SENT\n'
    '         python3-28225   [001] .....  1824.881000: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=60508 dport=46463 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_SYN_SENT newstate=TCP_ESTABLISHED\n'
    '         python3-28225   [001] ..s2.  1824.881006: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=46463 dport=60508 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_LISTEN newstate=TCP_SYN_RECV\n'
    '         python3-28225   [001] ..s2.  1824.881010: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=46463 dport=60508 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_SYN_RECV newstate=TCP_ESTABLISHED\n'
    '         python3-28225   [001] .....  1824.881060: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=60508 dport=46463 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_ESTABLISHED newstate=TCP_CLOSE\n'
    '         python3-28225   [001] ..s2.  1824.881065: tcp_receive_reset: family=AF_INET sport=46463 dpo'
    'rt=60508 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 sock_cook'
    'ie=209\n'
    '         python3-28225   [001] ..s2.  1824.881066: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=46463 dport=60508 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::f'
    'fff:127.0.0.1 oldstate=TCP_ESTABLISHED newstate=TCP_CLOSE\n'
    '         python3-28225   [001] .....  1824.881068: tcp_send_reset: skbaddr=0000000000000000 skaddr=0'
    '00000000d0e1c1e src=127.0.0.1:60508 dest=127.0.0.1:46463 state=TCP_CLOSE reason=TCP_STATE\n'
    '         python3-28225   [001] .....  1824.931603: inet_sock_set_state: family=AF_INET6 protocol=IPP'
    'ROTO_TCP sport=57279 dport=0 saddr=127.0.0.6 daddr=0.0.0.0 saddrv6=::1 daddrv6=:: oldstate=TCP_CLOSE'
    ' newstate=TCP_LISTEN\n'
    '         python3-28225   [001] .....  1824.931681: inet_sock_set_state: family=AF_INET6 protocol=IPP'
    'ROTO_TCP sport=0 dport=57279 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=::1 daddrv6=::1 oldstate=TCP_CLOSE '
    'newstate=TCP_SYN_SENT\n'
    '         python3-28225   [001] .....  1824.931746: inet_sock_set_state: family=AF_INET6 protocol=IPP'
    'ROTO_TCP sport=58970 dport=57279 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=::1 daddrv6=::1 oldstate=TCP_SY'
    'N_SENT newstate=TCP_ESTABLISHED\n'
    '         python3-28225   [001] ..s2.  1824.931753: inet_sock_set_state: family=AF_INET6 protocol=IPP'
    'ROTO_TCP sport=57279 dport=58970 saddr=127.0.0.6 daddr=127.0.0.6 saddrv6=::1 daddrv6=::1 oldstate=TC'
    'P_LISTEN newstate=TCP_SYN_RECV\n'
    '         python3-28225   [001] ..s2.  1824.931757: inet_sock_set_state: family=AF_INET6 protocol=IPP'
    'ROTO_TCP sport=57279 dport=58970 saddr=127.0.0.6 daddr=127.0.0.6 saddrv6=::1 daddrv6=::1 oldstate=TC'
    'P_SYN_RECV newstate=TCP_ESTABLISHED\n'
    '         python3-28225   [001] .....  1824.931785: inet_sock_set_state: family=AF_INET6 protocol=IPP'
    'ROTO_TCP sport=58970 dport=57279 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=::1 daddrv6=::1 oldstate=TCP_ES'
    'TABLISHED newstate=TCP_FIN_WAIT1\n'
    '         python3-28225   [001] ..s2.  1824.931791: inet_sock_set_state: family=AF_INET6 protocol=IPP'
    'ROTO_TCP sport=57279 dport=58970 saddr=127.0.0.6 daddr=127.0.0.6 saddrv6=::1 daddrv6=::1 oldstate=TC'
    'P_ESTABLISHED newstate=TCP_CLOSE_WAIT\n'
    '         python3-28225   [001] .....  1824.931801: inet_sock_set_state: family=AF_INET6 protocol=IPP'
    'ROTO_TCP sport=57279 dport=58970 saddr=127.0.0.6 daddr=127.0.0.6 saddrv6=::1 daddrv6=::1 oldstate=TC'
    'P_CLOSE_WAIT newstate=TCP_LAST_ACK\n'
    '         python3-28225   [001] ..s2.  1824.931806: inet_sock_set_state: family=AF_INET6 protocol=IPP'
    'ROTO_TCP sport=58970 dport=57279 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=::1 daddrv6=::1 oldstate=TCP_FI'
    'N_WAIT1 newstate=TCP_FIN_WAIT2\n'
    '         python3-28225   [001] ..s2.  1824.931811: inet_sock_set_state: family=AF_INET6 protocol=IPP'
    'ROTO_TCP sport=58970 dport=57279 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=::1 daddrv6=::1 oldstate=TCP_FI'
    'N_WAIT2 newstate=TCP_CLOSE\n'
    '         python3-28225   [001] .....  1824.931818: inet_sock_set_state: family=AF_INET6 protocol=IPP'
    'ROTO_TCP sport=57279 dport=58970 saddr=127.0.0.6 daddr=127.0.0.6 saddrv6=::1 daddrv6=::1 oldstate=TC'
    'P_LAST_ACK newstate=TCP_CLOSE\n'
    '          server-26822   [000] .....  1825.061891: inet_sock_set_state: family=AF_INET protocol=IPPR'
    'OTO_TCP sport=8000 dport=0 saddr=0.0.0.0 daddr=0.0.0.0 saddrv6=::ffff:0.0.0.0 daddrv6=::ffff:0.0.0.0'
    ' oldstate=TCP_LISTEN newstate=TCP_CLOSE\n'
)


# recorded on this kernel (6.18): a data segment whose ACKs were dropped, then a SYN whose SYN-ACK was dropped
RETRANSMIT_PIPE = """\
          python-6711    [001] ..s1. 20599.376075: tcp_retransmit_skb: skbaddr=0000000007a871d6 skaddr=00000000219c2a7b family=AF_INET sport=46708 dport=5555 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 state=TCP_ESTABLISHED err=0
          <idle>-0       [000] ..s1. 20601.180085: tcp_retransmit_synack: family=AF_INET sport=5556 dport=33452 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1
          <idle>-0       [000] ..s2. 20601.180098: tcp_retransmit_skb: skbaddr=00000000f1c6ce6a skaddr=000000008bf8e4ee family=AF_INET sport=33452 dport=5556 saddr=127.0.0.1 daddr=127.0.0.1 saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:127.0.0.1 state=TCP_SYN_SENT err=-11
"""


def test_tracer_reads_retransmissions_with_state_and_error() -> None:
    tracer = _tracer()
    recs = [tracer.parse_event(line, 1000.0) for line in RETRANSMIT_PIPE.splitlines()]
    assert recs[0] == {"ts": 21599.376075, "event": "tcp_retransmit_skb", "saddr": "127.0.0.1", "sport": 46708,
                       "daddr": "127.0.0.1", "dport": 5555, "state": "ESTABLISHED", "err": 0}
    assert recs[1] == {"ts": 21601.180085, "event": "tcp_retransmit_synack", "saddr": "127.0.0.1", "sport": 5556,
                       "daddr": "127.0.0.1", "dport": 33452}, "a SYN-ACK's record names the listener's end first"
    assert (recs[2]["state"], recs[2]["err"]) == ("SYN_SENT", -11)
    assert "tcp/tcp_retransmit_skb" in tracer.OPTIONAL_EVENTS and "tcp/tcp_retransmit_synack" in tracer.OPTIONAL_EVENTS
