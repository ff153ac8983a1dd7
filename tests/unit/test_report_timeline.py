"""Socket timelines from kernel transitions and snapshots (tcplab.analysis.timeline), and the folded time axis."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcplab.analysis.timeline import build_timelines, snapshot_sockets
from tcplab.report.timechart import TimeAxis

from .test_report_synth import HOSTS, T0, write_closewait_run


def _load(rd: Path) -> tuple[list[dict], dict]:
    trans = [json.loads(line) for line in (rd / "sockets" / "transitions.jsonl").read_text().splitlines()]
    return trans, json.loads((rd / "sockets" / "snapshots.json").read_text())


def test_close_wait_interval_ends_with_the_received_reset(tmp_path: Path) -> None:
    trans, snaps = _load(write_closewait_run(tmp_path, windows=True))
    tl = build_timelines(trans, snaps, HOSTS)
    srv = tl.of("server", 8000, HOSTS["win"])
    assert len(srv) == 1
    states = [iv.state for iv in srv[0].intervals]
    assert states == ["SYN_RECV", "ESTABLISHED", "CLOSE_WAIT"]
    cw = srv[0].first("CLOSE_WAIT")
    assert cw.end is not None and cw.end - cw.start == pytest.approx(120.002, abs=1e-4)
    assert cw.ended_by == "reset received"


def test_connect_before_port_is_chosen_is_joined_to_its_socket(tmp_path: Path) -> None:
    trans, snaps = _load(write_closewait_run(tmp_path))
    tl = build_timelines(trans, snaps, HOSTS)
    linux = tl.of("linux")
    assert len(linux) == 1  # no separate socket with port 0
    assert linux[0].sock.local_port == 40000
    assert [iv.state for iv in linux[0].intervals][:2] == ["SYN_SENT", "ESTABLISHED"]
    assert linux[0].intervals[0].start == pytest.approx(T0 - 0.0001)


def test_orphaned_fin_wait2_lives_on_as_timewait_socket_until_the_end(tmp_path: Path) -> None:
    """Linux peer: the tracepoint says FIN_WAIT2 -> CLOSE at once, the snapshots still list FIN_WAIT2."""
    trans, snaps = _load(write_closewait_run(tmp_path, windows=False))
    tl = build_timelines(trans, snaps, HOSTS)
    win = tl.of("win")[0]
    fw2 = win.first("FIN_WAIT2")
    assert fw2 is not None
    assert fw2.end is None  # the last snapshot still lists it
    assert fw2.source == "timewait"
    assert "orphaned" in fw2.note and "timewait,58sec" in fw2.note
    assert tl.of("server", 8000, HOSTS["win"])[0].intervals[-1].end is None  # CLOSE_WAIT to the end


def test_timewait_socket_gone_by_the_next_snapshot_ends_there_inexactly(tmp_path: Path) -> None:
    trans, snaps = _load(write_closewait_run(tmp_path, windows=False))
    last = max(snaps, key=lambda n: snaps[n]["time"])
    later = dict(snaps[last], time=snaps[last]["time"] + 10.0)
    # both tools ran and listed nothing: the socket is gone
    later["hosts"] = {"win": {"netstat": {"raw": "", "records": [], "ok": True},
                              "ss": {"raw": "", "records": [], "ok": True}}}
    snaps["later"] = later
    fw2 = build_timelines(trans, snaps, HOSTS).of("win")[0].first("FIN_WAIT2")
    assert fw2.end == pytest.approx(later["time"])
    assert fw2.end_exact is False and fw2.ended_by == "timewait socket gone"


def test_a_table_the_tools_could_not_take_is_no_evidence_of_a_socket_gone(tmp_path: Path) -> None:
    trans, snaps = _load(write_closewait_run(tmp_path, windows=False))
    last = max(snaps, key=lambda n: snaps[n]["time"])
    later = dict(snaps[last], time=snaps[last]["time"] + 10.0)
    later["hosts"] = {"win": {"netstat": {"raw": "", "records": [], "ok": False, "error": "netstat is not in the image"},
                              "ss": {"raw": "", "records": [], "ok": False, "error": "ss is not in the image"}}}
    snaps["later"] = later
    fw2 = build_timelines(trans, snaps, HOSTS).of("win")[0].first("FIN_WAIT2")
    assert fw2.ended_by != "timewait socket gone"
    assert fw2.end != pytest.approx(later["time"])


def test_without_tracer_the_snapshots_give_the_states(tmp_path: Path) -> None:
    _, snaps = _load(write_closewait_run(tmp_path, windows=True))
    tl = build_timelines([], snaps, HOSTS)
    assert tl.source == "snapshots"
    srv = tl.of("server", 8000, HOSTS["win"])[0]
    assert [iv.state for iv in srv.intervals] == ["ESTABLISHED", "CLOSE_WAIT"]
    assert all(iv.source == "snapshot" for iv in srv.intervals)
    cw = srv.first("CLOSE_WAIT")
    assert cw.end == pytest.approx(snaps["after_rst"]["time"]) and not cw.end_exact


def test_host_field_of_newer_tracer_records_is_used(tmp_path: Path) -> None:
    rec = {"ts": 1.0, "event": "inet_sock_set_state", "saddr": "192.0.2.9", "sport": 5, "daddr": "192.0.2.8",
           "dport": 6, "old": "SYN_SENT", "new": "ESTABLISHED", "host": "elsewhere"}
    tl = build_timelines([rec], {}, {})
    assert [s.sock.host for s in tl.sockets] == ["elsewhere"]
    # and a socket that existed before the tracer started gets its earlier state
    assert [iv.state for iv in tl.sockets[0].intervals] == ["SYN_SENT", "ESTABLISHED"]


def test_snapshot_sockets_merge_owner_from_netstat_and_timer_from_ss(tmp_path: Path) -> None:
    _, snaps = _load(write_closewait_run(tmp_path, windows=False))
    rows = [s for s in snapshot_sockets(snaps) if s.snapshot == "close_wait"]
    fw2 = next(s for s in rows if s.host == "win")
    assert (fw2.state, fw2.timer) == ("FIN_WAIT2", "timewait,58sec,0")
    lin = next(s for s in rows if s.host == "server" and s.peer_port == 40000)
    assert (lin.pid, lin.program) == (7, "server")


# --- the time axis ---------------------------------------------------------------------

def test_axis_is_linear_so_durations_compare() -> None:
    ax = TimeAxis(0.0, 122.0, x0=100, width=800)
    assert ax.x(0.0) == pytest.approx(100) and ax.x(122.0) == pytest.approx(900)
    # a 120 s CLOSE_WAIT is 120 times as wide as a 1 s ESTABLISHED
    assert (ax.x(121.0) - ax.x(1.0)) == pytest.approx(120 * (ax.x(1.0) - ax.x(0.0)))
    assert ax.x(-5) == ax.x(0.0) and ax.x(500) == ax.x(122.0)  # clamped


def test_axis_ticks_are_round_and_inside() -> None:
    ax = TimeAxis(1000.0, 1122.0, x0=0, width=800)
    ticks = [round(t - 1000.0, 6) for t in ax.ticks(1000.0)]
    assert ticks == [0, 20, 40, 60, 80, 100, 120]
    ax = TimeAxis(999.99, 1007.3, x0=0, width=800)
    assert [round(t - 1000.0, 6) for t in ax.ticks(1000.0)] == [0, 1, 2, 3, 4, 5, 6, 7]


def test_axis_without_activity_does_not_divide_by_zero() -> None:
    ax = TimeAxis(5.0, 5.0, x0=10, width=100)
    assert ax.x(5.0) == 10 and ax.ticks(5.0) == [5.0]


@pytest.mark.parametrize("timer, left", [("timewait,58sec,0", 58.0), ("timewait,1.252ms,0", 1.252),
                                         ("timewait,252ms,0", 0.252), ("keepalive,1min30sec,0", 90.0),
                                         ("on,12min,0", 720.0), ("garbage", None), (None, None)])
def test_ss_timer_left(timer: str | None, left: float | None) -> None:
    from tcplab.analysis.timeline import timer_left

    got = timer_left(timer)
    assert (got[1] if got else None) == (pytest.approx(left) if left is not None else None)


def test_timewait_socket_ends_when_its_timer_says(tmp_path: Path) -> None:
    from tcplab.observe.sockets import parse_ss

    trans, snaps = _load(write_closewait_run(tmp_path, windows=False))
    ss = snaps["close_wait"]["hosts"]["win"]["ss"]
    ss["raw"] = ss["raw"].replace("timewait,58sec,0", "timewait,1.500ms,0")
    ss["records"] = [r.to_dict() for r in parse_ss(ss["raw"])]
    snaps["end"]["hosts"]["win"] = {"netstat": {"raw": "", "records": [], "ok": True},
                                    "ss": {"raw": "", "records": [], "ok": True}}
    fw2 = build_timelines(trans, snaps, HOSTS).of("win")[0].first("FIN_WAIT2")
    assert fw2.end == pytest.approx(snaps["close_wait"]["time"] + 1.5)
    assert fw2.ended_by == "timewait timer expired" and not fw2.end_exact


def test_timewait_socket_ends_at_the_reset_its_host_sent(tmp_path: Path) -> None:
    """The Windows peer resets and removes its own FIN_WAIT2 socket: the captured RST is where it ended."""
    trans, snaps = _load(write_closewait_run(tmp_path, windows=True))
    trans = [t for t in trans if not (t.get("saddr") == HOSTS["win"] and t.get("new") == "CLOSE")]
    trans.append({"ts": T0 + 0.80032, "event": "inet_sock_set_state", "saddr": HOSTS["win"], "sport": 52552,
                  "daddr": HOSTS["server"], "dport": 8000, "old": "FIN_WAIT2", "new": "CLOSE"})  # orphaned at once
    rst = (T0 + 0.8 + 120.002, HOSTS["win"], 52552, HOSTS["server"], 8000)
    without = build_timelines(trans, snaps, HOSTS).of("win")[0].first("FIN_WAIT2")
    assert without.end == pytest.approx(snaps["after_rst"]["time"]) and not without.end_exact
    fw2 = build_timelines(trans, snaps, HOSTS, sent_resets=[rst]).of("win")[0].first("FIN_WAIT2")
    assert fw2.end == pytest.approx(rst[0]) and fw2.end_exact and fw2.ended_by == "reset sent"


def test_orphan_freed_between_snapshots_lasts_until_its_hosts_reset(tmp_path: Path) -> None:
    """tcp_fin_timeout > 60 s: the full FIN_WAIT2 socket is freed (-> CLOSE) 63 s in, no snapshot sees the
    mini-socket that lives on, and the Windows peer's RST at 120 s is where the socket really ended."""
    trans, snaps = _load(write_closewait_run(tmp_path, windows=True))
    trans = [t for t in trans if not (t.get("saddr") == HOSTS["win"] and t.get("new") == "CLOSE")]
    trans.append({"ts": T0 + 0.8 + 63.0, "event": "inet_sock_set_state", "saddr": HOSTS["win"], "sport": 52552,
                  "daddr": HOSTS["server"], "dport": 8000, "old": "FIN_WAIT2", "new": "CLOSE"})
    # only snapshots from before the orphan was freed, or after the RST
    snaps = {k: v for k, v in snaps.items() if v["time"] < T0 + 0.8 + 63.0 or v["time"] > T0 + 0.8 + 120.002}
    rst = (T0 + 0.8 + 120.002, HOSTS["win"], 52552, HOSTS["server"], 8000)
    without = build_timelines(trans, snaps, HOSTS).of("win")[0].first("FIN_WAIT2")
    assert without.end == pytest.approx(T0 + 0.8 + 63.0)
    fw2 = build_timelines(trans, snaps, HOSTS, sent_resets=[rst]).of("win")[0].first("FIN_WAIT2")
    assert fw2.end == pytest.approx(rst[0]) and fw2.end_exact and fw2.ended_by == "reset sent"
