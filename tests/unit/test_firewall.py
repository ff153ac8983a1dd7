"""The firewall and lift steps: the model's rules, the iptables argv each rule is, the sidecar the plan gives
only to hosts whose steps need it, what a person types, and the record steps.jsonl keeps."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tcplab.backend.base import ExecResult
from tcplab.model import LabError
from tcplab.model.lab import FirewallStep, LiftStep, step_name, step_title
from tcplab.model.loader import check_references, validate
from tcplab.plan import RunNames, plan_lab
from tcplab.play.errors import StepFailure
from tcplab.play.steps import InHost, Note, player_for
from tcplab.play.steps.firewall import rule_specs
from tcplab.rundir import RunDir

HOSTS = {"server": {"image": "tcplab/server"}, "client": {"image": "tcplab/client"}}


def lab_of(steps: list[dict[str, Any]]) -> Any:
    lab = validate({"name": "fw", "network": {"subnet": "10.9.0.0/24"}, "hosts": HOSTS, "steps": steps}, "fw.yaml")
    check_references(lab, "fw.yaml")
    return lab


def refused(steps: list[dict[str, Any]]) -> str:
    with pytest.raises(LabError) as info:
        lab_of(steps)
    return str(info.value)


def test_each_rule_is_one_iptables_argv_on_the_hosts_side() -> None:
    lab = lab_of([{"host": "server", "firewall": "drop", "from": "client", "port": 8000, "as": "blackhole"},
                  {"host": "client", "firewall": "reject", "to": "server"},
                  {"host": "client", "firewall": "reject", "with": "icmp-port-unreachable", "as": "all"}])
    drop, reject, both = lab.steps
    assert rule_specs(drop, lab, 0) == [["INPUT", "-s", "10.9.0.3", "-p", "tcp", "-m", "multiport", "--ports", "8000",
                                         "-m", "comment", "--comment", "tcplab:blackhole", "-j", "DROP"]]
    assert rule_specs(reject, lab, 1) == [["OUTPUT", "-d", "10.9.0.2", "-p", "tcp", "-m", "comment", "--comment",
                                           "tcplab:firewall-1", "-j", "REJECT", "--reject-with", "tcp-reset"]]
    assert [r[0] for r in rule_specs(both, lab, 2)] == ["INPUT", "OUTPUT"]
    assert rule_specs(both, lab, 2)[1][-1] == "icmp-port-unreachable"
    assert (step_name(drop, 0), step_title(drop)) == (
        "firewall-blackhole", "server's firewall drops packets from client on port 8000")
    assert (step_name(reject, 1), step_title(reject)) == (
        "firewall-1", "client's firewall rejects (with tcp-reset) its packets to server")


@pytest.mark.parametrize("steps,line", [
    ([{"host": "server", "firewall": "drop", "from": "client", "to": "client"}],
     "fw.yaml: steps.0.to: give from (the host's incoming packets) or to (its outgoing ones), not both; "
     "neither: both ways"),
    ([{"host": "server", "firewall": "drop", "from": "nobody"}],
     "fw.yaml: steps.0.from: unknown host 'nobody' (hosts: server, client)"),
    ([{"host": "server", "firewall": "drop", "to": "server"}],
     "fw.yaml: steps.0.to: server is the host whose firewall this is: name its peer"),
    ([{"host": "server", "firewall": "drop", "with": "tcp-reset"}],
     "fw.yaml: steps.0.with: only a reject answers with something: a drop is silent"),
    ([{"host": "server", "firewall": "drop", "as": "b"}, {"host": "server", "firewall": "reject", "as": "b"}],
     "fw.yaml: steps.1.as: a rule 'b' is already in force on server (steps.0): lift it first or choose another "
     "name"),
    ([{"host": "server", "firewall": "drop", "as": "b"}, {"host": "client", "lift": "b"}],
     "fw.yaml: steps.1.lift: no firewall rule or impairment 'b' is in force on client (none is)"),
    ([{"host": "server", "firewall": "drop", "as": "b"}, {"host": "server", "lift": "b"},
      {"host": "server", "lift": "b"}],
     "fw.yaml: steps.2.lift: no firewall rule or impairment 'b' is in force on server (none is)"),
])
def test_a_rule_that_does_not_fit_the_story_is_refused(steps: list[dict[str, Any]], line: str) -> None:
    assert refused(steps) == line


def test_the_icmp_frag_needed_drop_and_the_mss_clamp_are_each_their_iptables_rules() -> None:
    lab = lab_of([{"host": "server", "firewall": "drop", "icmp": "frag-needed", "as": "hole"}])
    comment = ["-m", "comment", "--comment", "tcplab:hole"]
    # what leaves the host, its own ICMP (a router's) and what it forwards for others: one rule
    assert rule_specs(lab.steps[0], lab, 0) == [
        ["POSTROUTING", "-t", "mangle", "-p", "icmp", "--icmp-type", "fragmentation-needed", *comment, "-j", "DROP"]]
    assert step_title(lab.steps[0]) == "server's firewall drops the ICMP 'fragmentation needed' it sends or forwards"
    routed = validate({"name": "fw", "networks": {"a": {"subnet": "10.9.1.0/24"}, "b": {"subnet": "10.9.2.0/24"}},
                       "hosts": {"r": {"image": "tcplab/client", "router": True, "networks": {"a": {}, "b": {}}}},
                       "steps": [{"host": "r", "firewall": "clamp-mss", "port": 8001, "as": "clamp"}]}, "fw.yaml")
    assert rule_specs(routed.steps[0], routed, 0) == [
        ["FORWARD", "-t", "mangle", "-p", "tcp", "--tcp-flags", "SYN,RST", "SYN", "-m", "multiport", "--ports", "8001",
         "-m", "comment", "--comment", "tcplab:clamp", "-j", "TCPMSS", "--clamp-mss-to-pmtu"]]
    assert step_title(routed.steps[0]) == "r clamps the MSS of the SYNs it forwards to the path's MTU on port 8001"


@pytest.mark.parametrize("step,line", [
    ({"host": "server", "firewall": "reject", "icmp": "frag-needed"},
     "fw.yaml: steps.0.icmp: only a drop takes icmp: the ICMP messages are dropped, not answered"),
    ({"host": "server", "firewall": "drop", "icmp": "frag-needed", "to": "client"},
     "fw.yaml: steps.0.to: an ICMP rule is about every peer's packets: leave to out"),
    ({"host": "server", "firewall": "drop", "icmp": "frag-needed", "port": 80},
     "fw.yaml: steps.0.port: an ICMP message has no port: leave port out"),
    ({"host": "server", "firewall": "drop", "icmp": "echo"},
     "fw.yaml: steps.0.icmp: 'echo' is not one of 'frag-needed'"),
    ({"host": "server", "firewall": "clamp-mss", "with": "tcp-reset"},
     "fw.yaml: steps.0.with: only a reject answers with something: a clamp-mss is silent"),
    ({"host": "server", "firewall": "clamp-mss", "from": "client"},
     "fw.yaml: steps.0.from: a clamp is about every peer's packets: leave from out"),
    ({"host": "server", "firewall": "clamp-mss"},
     "fw.yaml: steps.0.firewall: server forwards no packets: clamp the MSS on a router: true host"),
])
def test_an_icmp_rule_or_a_clamp_that_does_not_fit_is_refused(step: dict[str, Any], line: str) -> None:
    assert refused([step]) == line


def test_a_lifted_rule_may_be_set_again() -> None:
    lab = lab_of([{"host": "server", "firewall": "drop", "as": "b"}, {"host": "server", "lift": "b"},
                  {"host": "server", "firewall": "reject", "as": "b"}])
    assert [step_name(s, i) for i, s in enumerate(lab.steps)] == ["firewall-b", "lift-b", "firewall-b"]


def test_only_a_host_with_firewall_steps_gets_the_sidecar_and_only_it_gets_net_admin(tmp_path: Path) -> None:
    lab = lab_of([{"host": "server", "firewall": "drop", "from": "client"}])
    plan = plan_lab(lab, RunNames("fw", "r1", str(tmp_path)), RunDir(tmp_path))
    roles = {h.name: [s.role for s in h.sidecars] for h in plan.hosts}
    assert roles == {"server": ["capture", "firewall"], "client": ["capture"]}
    fw = plan.host("server").sidecars[1]
    assert fw.spec.cap_add == ("NET_ADMIN",) and fw.spec.joins == plan.host("server").spec.name
    assert fw.spec.image == "tcplab/tools"
    assert all("NET_ADMIN" not in h.spec.cap_add for h in plan.hosts)
    plain = plan_lab(lab_of([]), RunNames("fw", "r1", str(tmp_path)), RunDir(tmp_path))
    assert all(s.role != "firewall" for s in plain.sidecars())


class FakeBackend:
    def __init__(self, results: list[ExecResult]) -> None:
        self.results = results
        self.ran: list[tuple[str, list[str]]] = []

    def exec(self, container: str, argv: list[str]) -> ExecResult:
        self.ran.append((container, argv))
        return self.results.pop(0)


class FakeRun:
    def __init__(self, lab: Any, results: list[ExecResult]) -> None:
        self.lab = lab
        self.backend = FakeBackend(results)
        self.names = RunNames("fw", "r1", "/tmp")
        self.commands: list[tuple[list[str], int]] = []

    def record_command(self, argv: list[str], exit_code: int) -> None:
        self.commands.append((argv, exit_code))


def test_the_rule_is_set_and_lifted_in_the_hosts_firewall_sidecar() -> None:
    lab = lab_of([{"host": "server", "firewall": "drop", "to": "client", "as": "bh"}, {"host": "server", "lift": "bh"}])
    run = FakeRun(lab, [ExecResult(0, "", ""), ExecResult(0, "", "")])
    fw, lift = lab.steps
    assert player_for(fw).play(run, fw, 0).startswith("-I OUTPUT -d 10.9.0.3 -p tcp")
    assert player_for(lift).play(run, lift, 1).startswith("-D OUTPUT -d 10.9.0.3 -p tcp")
    (c1, set_argv), (c2, del_argv) = run.backend.ran
    assert c1 == c2 == "tcplab-fw-server-firewall"
    assert set_argv[:4] == ["iptables", "-w", "5", "-I"] and del_argv[:4] == ["iptables", "-w", "5", "-D"]
    assert set_argv[4:] == del_argv[4:]
    assert run.commands == [(set_argv, 0), (del_argv, 0)]


def test_a_rule_iptables_refuses_fails_the_step_naming_why() -> None:
    lab = lab_of([{"host": "server", "firewall": "drop"}])
    run = FakeRun(lab, [ExecResult(4, "", "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id\n")])
    with pytest.raises(StepFailure, match=r"server: iptables -w 5 -I INPUT .* failed: iptables v1.8.9 \(nf_tables\)"):
        player_for(lab.steps[0]).play(run, lab.steps[0], 0)


def test_by_hand_the_rule_is_typed_into_the_firewall_service() -> None:
    lab = lab_of([{"host": "server", "firewall": "reject", "from": "client", "as": "r"}, {"host": "server", "lift": "r"}])
    fw, lift = lab.steps
    lines = player_for(fw).by_hand(fw, lab, "./runs/fw")
    assert isinstance(lines[0], Note) and "NET_ADMIN" in lines[0].text
    assert lines[1] == InHost("server-firewall", ["iptables", "-w", "5", "-I", *rule_specs(fw, lab, 0)[0]])
    assert player_for(lift).by_hand(lift, lab, "./runs/fw") == [
        InHost("server-firewall", ["iptables", "-w", "5", "-D", *rule_specs(fw, lab, 0)[0]])]
    assert isinstance(lift, LiftStep) and isinstance(fw, FirewallStep)


def test_the_compose_export_has_the_firewall_service_and_each_rule_as_typed(tmp_path: Path) -> None:
    import yaml

    from tcplab.export import export_to
    from tcplab.model import load_lab
    from tcplab.paths import COMPOSE_DIR

    path = tmp_path / "fw.yaml"
    path.write_text(yaml.safe_dump({
        "name": "fw", "network": {"subnet": "10.9.0.0/24"}, "hosts": HOSTS,
        "steps": [{"host": "server", "firewall": "drop", "to": "client", "as": "silence"},
                  {"host": "server", "lift": "silence"}]}, sort_keys=False))
    lab, resolved = load_lab(path)
    text = export_to(COMPOSE_DIR / "fw.yml", lab, resolved, path, ()).text
    services = yaml.safe_load(text)["services"]
    assert services["server-firewall"]["cap_add"] == ["NET_ADMIN"]
    assert services["server-firewall"]["network_mode"] == "service:server"
    assert "client-firewall" not in services and "cap_add" not in services["server"]
    assert ("docker-compose exec -T server-firewall iptables -w 5 -I OUTPUT -d 10.9.0.3 -p tcp -m comment "
            "--comment tcplab:silence -j DROP") in text
    assert "docker-compose exec -T server-firewall iptables -w 5 -D OUTPUT -d 10.9.0.3" in text


def test_by_hand_two_equal_rules_keep_their_own_names() -> None:
    lab = lab_of([{"host": "server", "firewall": "drop"}, {"host": "server", "firewall": "drop"}])
    first, second = (player_for(s).by_hand(s, lab, "./runs/fw")[1] for s in lab.steps)
    assert isinstance(first, InHost) and isinstance(second, InHost)
    assert "tcplab:firewall-0" in first.argv and "tcplab:firewall-1" in second.argv
