"""The ``retransmit`` expectation (the tracer's retransmission records, sockets/retransmits.jsonl) and the
``rto-backoff`` pattern (the retransmission timer's doubling, from the RTO a run shows), on run directories built
as in test_expectations (labs/closewait.yaml: win retransmits from port 49000 to the server)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcplab.analysis.kernel_timers import rto_backoff
from tcplab.model import LabError
from tcplab.model.loader import validate

from .test_expectations import IPS, ROOT, T0, WIN_ISN, Pkt, make_run, story, verdicts
from .test_sequences import with_sysctls

START = T0 + 1.5  # after the handshake (T0 + 1), before win's FIN (T0 + 3)


def rec(t: float, sport: int = 49000, state: str | None = "ESTABLISHED", host: str = "win") -> dict[str, Any]:
    r: dict[str, Any] = {"ts": t, "event": "tcp_retransmit_skb", "saddr": IPS[host], "sport": sport,
                         "daddr": IPS["server"], "dport": 8000, "err": 0, "host": host, "peer": "server"}
    if state is not None:
        r["state"] = state
    return r


def backoff(first: float, n: int, start: float = START) -> list[float]:
    """``n`` retransmission times from ``start``: gaps of ``first``, doubling."""
    out, t = [start], start
    for i in range(n - 1):
        t += first * 2 ** i
        out.append(t)
    return out


def rtx_run(tmp_path: Path, rule: dict[str, Any], records: list[dict[str, Any]] | None,
            packets: list[Pkt] | None = None) -> Path:
    run = make_run(tmp_path, expect=[{"name": "first-data", "packet": {"from": "win", "flags": "."}},
                                     {"name": "x", "about": "retransmissions", "retransmit": rule}],
                   packets=packets)
    if records is not None:
        with open(run / "sockets" / "retransmits.jsonl", "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    return run


def judge(tmp_path: Path, rule: dict[str, Any], records: list[dict[str, Any]] | None,
          packets: list[Pkt] | None = None) -> Any:
    return verdicts(rtx_run(tmp_path, rule, records, packets))["x"]


# --- the pattern ------------------------------------------------------------------------------

def test_rto_backoff_doubles_from_the_first_gap_up_to_tcp_rto_max() -> None:
    assert rto_backoff(0.204, 4).gaps == pytest.approx([0.204, 0.408, 0.816, 1.632])
    assert rto_backoff(50.0, 3).gaps == [50.0, 100.0, 120.0]


# --- counts, the n-th, a moment --------------------------------------------------------------

def test_a_count_of_one_sockets_retransmissions_holds_and_cites_the_file(tmp_path: Path) -> None:
    records = [rec(START), rec(START + 0.2, sport=50000), rec(START + 0.4)]
    v = judge(tmp_path, {"host": "win", "port": 49000, "count": 2}, records)
    assert v.held, v.message
    assert v.where == "sockets/retransmits.jsonl line 1" and v.seen.startswith("2: win:49000→server:8000 ESTABLISHED")
    v = judge(tmp_path / "b", {"host": "win", "port": 49000, "count": 3}, records)
    assert v.status == "failed" and v.expected.startswith("exactly 3 × win:49000 retransmits")


def test_count_zero_holds_on_an_empty_file_and_is_an_error_without_one(tmp_path: Path) -> None:
    assert judge(tmp_path, {"host": "win", "count": 0}, []).held
    v = judge(tmp_path / "b", {"host": "win", "count": 0}, None)
    assert v.status == "error"
    assert "no sockets/retransmits.jsonl: the tracer did not watch retransmissions" in v.message


def test_a_miss_without_the_file_is_an_error_not_a_failure(tmp_path: Path) -> None:
    v = judge(tmp_path, {"host": "win", "port": 49000}, None)
    assert v.status == "error" and "retransmits.jsonl" in v.missing


def test_the_nth_after_an_anchor_at_a_delay(tmp_path: Path) -> None:
    # first-data: win's ACK of the handshake at T0 + 1.0002
    records = [rec(T0 + 1.01), rec(T0 + 1.21)]
    v = judge(tmp_path, {"host": "win", "after": "first-data", "nth": 2, "delay": "210ms", "tolerance": "5ms"},
              records)
    assert v.held, v.message
    assert v.time == pytest.approx(T0 + 1.21) and "at first-data+0.210s" in v.seen
    v = judge(tmp_path / "b", {"host": "win", "after": "first-data", "delay": "210ms", "tolerance": "5ms"}, records)
    assert v.status == "failed" and "differs in time" in v.message


def test_state_and_peer_narrow_the_records(tmp_path: Path) -> None:
    records = [rec(START, state="SYN_SENT"), rec(START + 1)]
    assert judge(tmp_path, {"host": "win", "state": "ESTABLISHED", "peer": "server", "count": 1}, records).held
    v = judge(tmp_path / "b", {"host": "linux", "port": 49000}, records)
    assert v.status == "failed" and "none of the 2 recorded fits (theirs: win:49000 (ESTABLISHED)" in v.seen


# --- sequences ----------------------------------------------------------------------------------

def test_rto_backoff_over_the_records_holds_when_each_gap_doubles(tmp_path: Path) -> None:
    v = judge(tmp_path, {"host": "win", "port": 49000, "intervals": "rto-backoff"},
              [rec(t) for t in backoff(0.208, 5)])
    assert v.held, v.message
    assert v.seen.startswith("5: the first win:49000→server:8000 ESTABLISHED") and "0.208s, 0.416s, 0.832s, 1.664s" in v.seen


def test_rto_backoff_fails_on_gaps_that_do_not_double_or_a_first_below_tcp_rto_min(tmp_path: Path) -> None:
    v = judge(tmp_path, {"host": "win", "intervals": "rto-backoff"}, [rec(START + 0.3 * i) for i in range(4)])
    assert v.status == "failed" and "gap 2 (0.600s expected, 0.300s seen)" in v.message
    v = judge(tmp_path / "b", {"host": "win", "intervals": "rto-backoff"}, [rec(t) for t in backoff(0.1, 4)])
    assert v.status == "failed" and "gap 1 (0.100s seen: below TCP_RTO_MIN, 0.200s)" in v.message
    v = judge(tmp_path / "c", {"host": "win", "intervals": "rto-backoff"}, [rec(START)])
    assert v.status == "failed" and "differs in count" in v.message  # one retransmission is no backoff


def test_a_kernel_pattern_over_the_records_leaves_out_the_original(tmp_path: Path) -> None:
    # syn-backoff for tcp_syn_retries 2, no linear timeouts: SYNs 1 and 2 s apart; the records are the two
    # retransmissions, 2 s apart
    rule = {"host": "win", "state": "SYN_SENT", "intervals": "syn-backoff"}
    run = rtx_run(tmp_path, rule, [rec(START, state="SYN_SENT"), rec(START + 2.02, state="SYN_SENT")])
    with_sysctls(run, "win", {"net.ipv4.tcp_syn_retries": "2", "net.ipv4.tcp_syn_linear_timeouts": "0"})
    v = verdicts(run)["x"]
    assert v.held, v.message
    assert "2.000s apart" in v.expected


def test_rto_backoff_of_packets_starts_at_the_original(tmp_path: Path) -> None:
    head = [Pkt(t, "win", "server", "PA", WIN_ISN + 1, 7_000_001, payload=b"head") for t in backoff(0.214, 4)]
    pk = story() + head
    v = judge(tmp_path, {"host": "win", "count": 0}, [], packets=pk)
    assert v.held
    run = make_run(tmp_path / "p", packets=pk, expect=[
        {"name": "x", "packet": {"from": "win", "payload": "head", "intervals": "rto-backoff"}}])
    v = verdicts(run)["x"]
    assert v.held, v.message
    assert "each gap twice the one before, the first (the RTO) at least 0.200s" in v.expected


# --- the lab file --------------------------------------------------------------------------------

def lab_with(rule: dict[str, Any]) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "labs" / "closewait.yaml").read_text())
    data["expect"] = [{"name": "x", "retransmit": rule}]
    data.pop("reference", None)
    return data


@pytest.mark.parametrize("rule, field, words", [
    ({"host": "win", "intervals": "rto-backoff", "count": 3}, "expect.0.retransmit.count", "intervals give the count"),
    ({"host": "win", "intervals": "keepalive"}, "expect.0.retransmit.intervals", "keepalive probes are no"),
    ({"host": "win", "delay": "1s"}, "expect.0.retransmit.delay", "needs 'after'"),
    ({"host": "win", "count": 1, "nth": 2}, "expect.0.retransmit.nth", "count takes every"),
    ({"host": "nobody"}, "expect.0.retransmit.host", "unknown host 'nobody'"),
    ({"host": "win", "peer": "win"}, "expect.0.retransmit.peer", "is the retransmitting host"),
    ({"host": "win", "after": "nowhere"}, "expect.0.retransmit.after", "'nowhere' is not an earlier expectation"),
    ({"host": "win", "before": "nowhere"}, "expect.0.retransmit.before", "'nowhere' is not an earlier expectation"),
])
def test_a_retransmit_rule_that_cannot_be_placed_is_refused_with_its_field(rule: dict[str, Any], field: str,
                                                                          words: str) -> None:
    with pytest.raises(LabError) as info:
        validate(lab_with(rule), "lab.yaml")
    assert f"lab.yaml: {field}: " in str(info.value) and words in str(info.value)


def test_a_pattern_of_the_kernel_makes_the_run_read_its_sysctls_on_the_host() -> None:
    lab = validate(lab_with({"host": "win", "intervals": "syn-backoff"}), "lab.yaml")
    assert "net.ipv4.tcp_syn_retries" in lab.expectation_sysctls()["win"]
