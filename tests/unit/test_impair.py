"""The impair step: the model's rules, the NFQUEUE rule and the program's rule words, the impairment sidecar
and its image only for labs and hosts that impair, what a person types, the lift, and the log's reader."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tcplab.backend.base import ExecResult
from tcplab.model import LabError
from tcplab.model.lab import step_name, step_title
from tcplab.model.loader import check_references, validate
from tcplab.plan import RunNames, plan_lab
from tcplab.plan.images import project_images
from tcplab.plan.lab_plan import impair_rules
from tcplab.play.steps import InHost, Note, player_for
from tcplab.play.steps.impair import impair_specs
from tcplab.rundir import RunDir
from tcplab.runfiles import impaired

from .test_firewall import FakeRun

HOSTS = {"server": {"image": "tcplab/server"}, "client": {"image": "tcplab/client"}}
LOSS = {"host": "server", "impair": "drop", "nth": 3, "match": {"from": "client", "port": 8000, "data": True},
        "as": "loss"}


def lab_of(steps: list[dict[str, Any]]) -> Any:
    lab = validate({"name": "im", "network": {"subnet": "10.9.0.0/24"}, "hosts": HOSTS, "steps": steps}, "im.yaml")
    check_references(lab, "im.yaml")
    return lab


def refused(steps: list[dict[str, Any]]) -> str:
    with pytest.raises(LabError) as info:
        lab_of(steps)
    return str(info.value)


def test_the_step_is_an_nfqueue_rule_and_a_rule_word_of_the_program() -> None:
    lab = lab_of([LOSS, {"host": "server", "impair": "drop", "every": 10},
                  {"host": "client", "impair": "drop", "probability": 0.25, "seed": 7, "match": {"to": "server"}}])
    loss, every, prob = lab.steps
    assert impair_specs(loss, lab, 0) == [[
        "INPUT", "-s", "10.9.0.3", "-p", "tcp", "-m", "multiport", "--ports", "8000", "-m", "mark", "!", "--mark",
        "0x7a1", "-m", "comment", "--comment", "tcplab:loss", "-j", "NFQUEUE", "--queue-num", "100"]]
    assert impair_specs(every, lab, 1)[0][:4] == ["OUTPUT", "-p", "tcp", "-m"]
    assert impair_specs(prob, lab, 2)[0][:3] == ["OUTPUT", "-d", "10.9.0.2"]
    assert impair_rules(lab, "server") == ["100:loss:nth:3:1:1", "101:impair-1:every:10:1:0"]
    assert impair_rules(lab, "client") == ["102:impair-2:prob:250000:7:0"]
    assert (step_name(loss, 0), step_title(loss)) == (
        "impair-loss", "server's link drops #3 of its data segments from client on port 8000")
    assert step_title(prob) == "client's link drops its packets to server with probability 0.25 (seed 7)"


def test_a_flags_match_is_iptables_tcp_flags_over_the_five_tcpdump_shows() -> None:
    lab = lab_of([{"host": "client", "impair": "drop", "nth": 1, "match": {"to": "server", "flags": "S"}},
                  {"host": "client", "impair": "drop", "nth": 1, "match": {"flags": "P."}}])
    assert impair_specs(lab.steps[0], lab, 0)[0][5:8] == ["--tcp-flags", "SYN,ACK,FIN,RST,PSH", "SYN"]
    assert impair_specs(lab.steps[1], lab, 1)[0][3:6] == ["--tcp-flags", "SYN,ACK,FIN,RST,PSH", "PSH,ACK"]
    assert refused([{"host": "client", "impair": "drop", "nth": 1, "match": {"flags": "SS"}}]).startswith(
        "im.yaml: steps.0.match.flags: ")


def test_a_delay_holds_every_matching_packet_unless_told_which() -> None:
    lab = lab_of([{"host": "server", "impair": "delay", "delay": "100ms", "jitter": "20ms", "seed": 3},
                  {"host": "server", "impair": "delay", "delay": "1s", "every": 2, "match": {"to": "client"}}])
    assert impair_rules(lab, "server") == ["100:impair-0:all:0:3:0:100000:20000", "101:impair-1:every:2:1:0:1000000:0"]
    assert step_title(lab.steps[0]) == "server's link delays (100ms + up to 20ms) all its packets"
    assert step_title(lab.steps[1]) == "server's link delays (1s) 1 in 2 of its packets to client"


def test_a_duplicating_host_alone_gets_raw_sockets_for_the_copies(tmp_path: Path) -> None:
    lab = lab_of([{"host": "client", "impair": "duplicate", "nth": 2, "match": {"to": "server"}}, LOSS])
    assert impair_rules(lab, "client") == ["100:impair-0:nth:2:1:0:-2:0"]
    assert step_title(lab.steps[0]) == "client's link duplicates #2 of its packets to server"
    plan = plan_lab(lab, RunNames("im", "r1", str(tmp_path)), RunDir(tmp_path))
    assert plan.host("client").sidecars[1].spec.cap_add == ("NET_ADMIN", "NET_RAW")
    assert plan.host("server").sidecars[1].spec.cap_add == ("NET_ADMIN",)


@pytest.mark.parametrize("steps,line", [
    ([{"host": "server", "impair": "duplicate", "match": {"from": "client"}}],
     "im.yaml: steps.0.match.from: a duplicate is sent again from the host: only its outgoing packets (match.to, "
     "or neither) can be duplicated"),
    ([{"host": "server", "impair": "delay"}], "im.yaml: steps.0.delay: is required with impair: delay (e.g. 100ms)"),
    ([{"host": "server", "impair": "delay", "delay": "1s", "nth": 1, "every": 2}],
     "im.yaml: steps.0.every: give at most one of nth, every, probability (none: every matching packet)"),
    ([{"host": "server", "impair": "drop", "nth": 1, "jitter": "1ms"}],
     "im.yaml: steps.0.jitter: only a delay has one: a drop is not held"),
    ([{"host": "server", "impair": "drop"}], "im.yaml: steps.0.nth: give exactly one of nth, every, probability"),
    ([{"host": "server", "impair": "drop", "nth": 1, "every": 2}],
     "im.yaml: steps.0.nth: give exactly one of nth, every, probability"),
    ([{"host": "server", "impair": "drop", "nth": 1, "match": {"from": "nobody"}}],
     "im.yaml: steps.0.match.from: unknown host 'nobody' (hosts: server, client)"),
    ([{"host": "server", "impair": "drop", "nth": 1, "match": {"from": "client", "to": "client"}}],
     "im.yaml: steps.0.match.to: give from (the host's incoming packets) or to (its outgoing ones), not both"),
    ([LOSS, LOSS], "im.yaml: steps.1.as: a rule 'loss' is already in force on server (steps.0): lift it first or "
                   "choose another name"),
    ([{"host": "server", "lift": "loss"}],
     "im.yaml: steps.0.lift: no firewall rule or impairment 'loss' is in force on server (none is)"),
])
def test_an_impairment_that_does_not_fit_the_story_is_refused(steps: list[dict[str, Any]], line: str) -> None:
    assert refused(steps) == line


def test_only_an_impaired_host_gets_the_sidecar_and_only_an_impairing_lab_the_image(tmp_path: Path) -> None:
    lab = lab_of([LOSS, {"host": "server", "lift": "loss"}])
    plan = plan_lab(lab, RunNames("im", "r1", str(tmp_path)), RunDir(tmp_path))
    roles = {h.name: [s.role for s in h.sidecars] for h in plan.hosts}
    assert roles == {"server": ["capture", "impair"], "client": ["capture"]}
    side = plan.host("server").sidecars[1]
    assert side.spec.cap_add == ("NET_ADMIN",) and side.spec.image == "tcplab/impair"
    assert side.spec.joins == "tcplab-im-server"
    assert side.spec.command == ["/opt/lab/impair", "/impair/server.log", "100:loss:nth:3:1:1"]
    assert [m.source for m in side.spec.mounts] == [str(tmp_path / "logs" / "impair")]
    assert "tcplab/impair" in project_images(lab)
    assert "tcplab/impair" not in project_images(lab_of([]))


class RecordingRun(FakeRun):
    def __init__(self, lab: Any, results: list[ExecResult]) -> None:
        super().__init__(lab, results)
        self.info: dict[str, Any] = {}

    def write_run_info(self, **fields: Any) -> None:
        self.info.update(fields)


def test_the_rule_is_set_and_lifted_in_the_impairment_sidecar_after_netem_is_tried() -> None:
    lab = lab_of([LOSS, {"host": "server", "lift": "loss"}])
    run = RecordingRun(lab, [ExecResult(2, "", "Error: Specified qdisc kind is unknown.\n"), ExecResult(0, "", ""),
                             ExecResult(0, "", "")])
    step, lift = lab.steps
    assert player_for(step).play(run, step, 0).endswith("(through nfqueue)")
    player_for(lift).play(run, lift, 1)
    (c0, probe), (c1, set_argv), (c2, del_argv) = run.backend.ran
    assert probe[:3] == ["tc", "qdisc", "add"] and "netem" in probe
    assert run.info == {"impairment": {"mechanism": "nfqueue",
                                       "netem": "absent: Error: Specified qdisc kind is unknown."}}
    assert c0 == c1 == c2 == "tcplab-fw-server-impair"
    assert set_argv[3] == "-I" and del_argv[3] == "-D" and set_argv[4:] == del_argv[4:]
    assert set_argv[-4:] == ["-j", "NFQUEUE", "--queue-num", "100"]


def test_a_kernel_with_netem_has_the_probe_undone_and_says_so() -> None:
    lab = lab_of([LOSS])
    run = RecordingRun(lab, [ExecResult(0, "", ""), ExecResult(0, "", ""), ExecResult(0, "", "")])
    player_for(lab.steps[0]).play(run, lab.steps[0], 0)
    assert run.backend.ran[1][1] == ["tc", "qdisc", "del", "dev", "eth0", "root"]
    assert run.info["impairment"]["mechanism"] == "nfqueue"
    assert run.info["impairment"]["netem"].startswith("available")


def test_by_hand_the_rule_is_typed_into_the_impairment_service() -> None:
    lab = lab_of([LOSS, {"host": "server", "lift": "loss"}])
    step, lift = lab.steps
    lines = player_for(step).by_hand(step, lab, "./runs/im")
    assert isinstance(lines[0], Note) and "NET_ADMIN" in lines[0].text
    assert lines[1] == InHost("server-impair", ["iptables", "-w", "5", "-I", *impair_specs(step, lab, 0)[0]])
    assert player_for(lift).by_hand(lift, lab, "./runs/im") == [
        InHost("server-impair", ["iptables", "-w", "5", "-D", *impair_specs(step, lab, 0)[0]])]


def test_the_log_reader_keeps_whole_lines_in_time_order(tmp_path: Path) -> None:
    rd = RunDir(tmp_path)
    assert impaired.read(rd) == []
    rd.impair_logs_dir.mkdir(parents=True)
    (rd.impair_logs_dir / "server.log").write_text(
        "1795508890.500000 loss drop seq=3456789012 flags=P. len=7\n1795508890.1 cut dr")
    (rd.impair_logs_dir / "client.log").write_text("1795508890.250000 impair-2 drop seq=1 flags=S len=0\n")
    assert impaired.read(rd) == [
        impaired.Impaired(1795508890.25, "client", "impair-2", "drop", 1, "S", 0),
        impaired.Impaired(1795508890.5, "server", "loss", "drop", 3456789012, "P.", 7)]


def test_the_compose_export_has_the_impairment_service_on_its_image_and_each_rule_as_typed(tmp_path: Path) -> None:
    import yaml

    from tcplab.export import export_to
    from tcplab.model import load_lab
    from tcplab.paths import COMPOSE_DIR

    path = tmp_path / "im.yaml"
    path.write_text(yaml.safe_dump({"name": "im", "network": {"subnet": "10.9.0.0/24"}, "hosts": HOSTS,
                                    "steps": [LOSS, {"host": "server", "lift": "loss"}]}, sort_keys=False))
    lab, resolved = load_lab(path)
    text = export_to(COMPOSE_DIR / "im.yml", lab, resolved, path, ()).text
    services = yaml.safe_load(text)["services"]
    side = services["server-impair"]
    assert side["cap_add"] == ["NET_ADMIN"] and side["network_mode"] == "service:server"
    assert side["image"] == "tcplab/impair" and "client-impair" not in services
    assert "docker-compose exec -T server-impair iptables -w 5 -I INPUT -s 10.9.0.3 -p tcp" in text
    assert "docker-compose exec -T server-impair iptables -w 5 -D INPUT -s 10.9.0.3 -p tcp" in text
