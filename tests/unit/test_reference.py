"""The reference block of a lab file: its sources and facts, validated; the facts rendered with a run's verdicts."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tcplab.model import LabError, load_lab
from tcplab.model.loader import validate
from tcplab.model.reference import placeholders

from ..conftest import ROOT

HOSTS = {"server": {"image": "tcplab/server"}, "client": {"image": "tcplab/client"}}
EXPECT = [{"name": "client-fin", "packet": {"from": "client", "flags": "F."}},
          {"name": "server-fin", "packet": {"from": "server", "flags": "F."}}]
BERNAT = {"id": "bernat", "title": "Coping with the TCP TIME-WAIT state on busy Linux servers",
          "author": "Vincent Bernat", "url": "https://vincent.bernat.ch/en/blog/2014-tcp-time-wait-state-linux",
          "year": 2014}


def lab(reference: Any, **more: Any) -> dict[str, Any]:
    return {"name": "t", "hosts": HOSTS, "expect": EXPECT, "reference": reference, **more}


def refused(data: dict[str, Any]) -> str:
    with pytest.raises(LabError) as e:
        validate(data, "x.yaml")
    return str(e.value)


def test_the_block_form_reads_sources_facts_and_sysctls() -> None:
    ref = validate(lab({"sources": [BERNAT], "sysctls": ["net.ipv4.tcp_syn_linear_timeouts"], "facts": [
        {"expect": "client-fin", "says": "only the side that closes first enters TIME_WAIT", "source": "bernat",
         "kernel": "{kernel}: linear {sysctl:net.ipv4.tcp_syn_linear_timeouts@client}"},
        {"expect": ["client-fin", "server-fin"], "says": "both FIN", "source": "bernat"}]}), "x.yaml").reference
    assert ref is not None and ref.report is None
    assert [f.expect for f in ref.facts] == [["client-fin"], ["client-fin", "server-fin"]]  # one name or a list
    assert ref.source("bernat") == ref.sources[0] and ref.sources[0].year == 2014
    assert [f.says for f in ref.facts_checked_by("server-fin")] == ["both FIN"]


def test_the_string_form_is_the_report_alone() -> None:
    ref = validate(lab("closewait-field-report"), "x.yaml").reference
    assert ref is not None and ref.report == "closewait-field-report" and ref.sources == [] and ref.facts == []
    assert "not a comparison tcplab knows (closewait-field-report)" in refused(lab("closewait-field-reprot"))


def test_the_run_reads_the_blocks_sysctls_and_those_a_host_sets() -> None:
    hosts = {"server": {"image": "tcplab/server", "sysctls": {"net.core.somaxconn": 4}}, "client": HOSTS["client"]}
    got = validate(lab({"sysctls": ["net.ipv4.tcp_syn_retries", "net.core.somaxconn"]}, hosts=hosts), "x.yaml")
    assert got.sysctls_read() == ["net.ipv4.tcp_syn_retries", "net.core.somaxconn"]
    assert validate(lab(None), "x.yaml").sysctls_read() == []


@pytest.mark.parametrize("reference,line", [
    ({"sources": [BERNAT], "facts": [{"expect": "client-fyn", "says": "s", "source": "bernat"}]},
     "x.yaml: reference.facts.0.expect: no expectation 'client-fyn' in this lab (did you mean 'client-fin'?)"),
    ({"sources": [BERNAT], "facts": [{"expect": ["client-fin", "nope"], "says": "s", "source": "bernat"}]},
     "x.yaml: reference.facts.0.expect.1: no expectation 'nope' in this lab (expectations: client-fin, server-fin)"),
    ({"facts": [{"expect": "client-fin", "says": "s", "source": "bernat"}]},
     "x.yaml: reference.facts.0.source: no source 'bernat' (reference.sources lists none)"),
    ({"sources": [BERNAT, BERNAT]}, "x.yaml: reference.sources.1.id: source id 'bernat' is used twice"),
    ({"sources": [dict(BERNAT, url="javascript:alert(1)")]},
     "x.yaml: reference.sources.0.url: 'javascript:alert(1)' is not a web address"),
    ({"sources": [dict(BERNAT, url="file:///etc/passwd")]}, "x.yaml: reference.sources.0.url: 'file:///etc/passwd'"),
    ({"sources": [dict(BERNAT, url="https://a.example/\"onmouseover=x")]}, "x.yaml: reference.sources.0.url:"),
    ({"sources": [dict(BERNAT, year=1492)]}, "x.yaml: reference.sources.0.year: 1492 is too small"),
    ({"sources": [dict(BERNAT, titel="x")]}, "x.yaml: reference.sources.0.titel: unknown field 'titel' "
                                             "(did you mean 'title'?)"),
    ({"sources": [BERNAT], "facts": [{"expect": "client-fin", "says": "s", "source": "bernat",
                                      "kernel": "{sysctl:net.ipv4.tcp_syn_retries}"}]},
     "x.yaml: reference.facts.0.kernel: {sysctl:net.ipv4.tcp_syn_retries}: the run does not read "
     "net.ipv4.tcp_syn_retries: list it in reference.sysctls"),
    ({"sources": [BERNAT], "sysctls": ["net.ipv4.tcp_syn_retries"],
      "facts": [{"expect": "client-fin", "says": "s", "source": "bernat",
                 "kernel": "{sysctl:net.ipv4.tcp_syn_retries@mac}"}]},
     "x.yaml: reference.facts.0.kernel: {sysctl:net.ipv4.tcp_syn_retries@mac}: unknown host 'mac' "
     "(hosts: server, client)"),
    ({"sources": [BERNAT], "facts": [{"expect": "client-fin", "says": "s", "source": "bernat",
                                      "kernel": "on {uname -r}"}]},
     "x.yaml: reference.facts.0.kernel: {uname -r} is not a placeholder: write {kernel}"),
    ({"sysctls": ["net/ipv4/../x"]}, "x.yaml: reference.sysctls.0: 'net/ipv4/../x' is not a sysctl a lab can read"),
    ({"facts": [{"says": "s", "source": "x"}]}, "x.yaml: reference.facts.0.expect: is required"),
])
def test_a_bad_reference_block_is_one_line_naming_the_field(reference: dict[str, Any], line: str) -> None:
    assert refused(lab(reference)).startswith(line)


def test_placeholders_of_a_kernel_note() -> None:
    got = placeholders("{kernel}; {sysctl:net.ipv4.tcp_fin_timeout@win} and { sysctl:net.core.somaxconn }")
    assert [(p.kernel, p.sysctl, p.host) for p in got] == [
        (True, "", None), (False, "net.ipv4.tcp_fin_timeout", "win"), (False, "net.core.somaxconn", None)]
    with pytest.raises(ValueError, match="is not a placeholder"):
        placeholders("{sysctl:net.ipv4.x@Bad Host}")


@pytest.mark.parametrize("name", ["closewait", "closewait-linux"])
def test_shipped_labs_cite_sources_for_facts_their_expectations_check(name: str) -> None:
    got, _ = load_lab(ROOT / "labs" / f"{name}.yaml")
    ref = got.reference
    assert ref is not None and ref.report == "closewait-field-report" and ref.sources and ref.facts
    checked = {n for f in ref.facts for n in f.expect}
    assert checked <= {e.name for e in got.expect}


# --- the report's "Published facts" -------------------------------------------------------------

EVIL = "<script>document.title='PWNED'</script>"
CITED = {"sources": [{"id": "blog", "title": f"A blog {EVIL}", "author": "A. <b>Author</b>", "year": 2019,
                      "url": "https://example.org/post?a=1&b='2'"},
                     {"id": "rfc", "title": "RFC 9293", "note": "section 3.3.2"}],
         "sysctls": ["net.ipv4.tcp_syn_linear_timeouts"],
         "facts": [{"expect": "fin", "says": "the window's close sends a FIN", "source": "rfc"},
                   {"expect": ["fin", "rst"], "says": f"Windows resets after 120 s {EVIL}", "source": "blog",
                    "kernel": "linear timeouts: {sysctl:net.ipv4.tcp_syn_linear_timeouts}, on {kernel}"}]}
RESULT = {"lab": "closewait", "run": "r", "passed": False, "counts": {"held": 1, "failed": 1}, "expectations": [
    {"name": "fin", "about": "win closes", "kind": "packet", "status": "held", "held": True, "expected": "[F.]",
     "seen": "#9", "where": "capture/win.pcap #4", "message": "fin: held"},
    {"name": "rst", "about": "win resets", "kind": "packet", "status": "failed", "held": False,
     "expected": "[R.] 120 s after the FIN", "seen": "[R.] 2.000 s after", "where": "",
     "message": "rst: expected [R.] 120 s after the FIN, closest [R.] 2.000 s <b>after</b>"}]}


def facts_report(tmp_path: Path, result: dict[str, Any] | None = RESULT) -> Any:
    import lxml.html

    from tcplab.report import write_report

    from .test_report_synth import write_closewait_run

    rd = write_closewait_run(tmp_path, result=result, reference=CITED,  # type: ignore[arg-type]
                             run_info={"sysctls": {h: {"net.ipv4.tcp_syn_linear_timeouts": v,
                                                           "kernel.osrelease": "6.18.44-test"}
                                                   for h, v in (("server", "4"), ("linux", "4"), ("win", "0"))}})
    lab_yaml = json.loads((rd / "lab.yaml").read_text())
    lab_yaml["expect"] = [{"name": "fin", "packet": {"from": "win", "flags": "F."}},
                          {"name": "rst", "packet": {"from": "win", "flags": "R."}}]
    (rd / "lab.yaml").write_text(json.dumps(lab_yaml))
    return lxml.html.fromstring(write_report(rd).read_text(encoding="utf-8")), rd


def test_published_facts_show_each_fact_its_linked_source_and_this_runs_verdict(tmp_path: Path) -> None:
    doc, _ = facts_report(tmp_path)
    section = doc.get_element_by_id("facts")
    rows = section.xpath(".//table[contains(@class,'facts')]//tr[td]")
    assert [r.xpath("td[1]")[0].text_content().strip() for r in rows] == ["✓ held", "✗ differs"]
    assert "RFC 9293" in rows[0].text_content() and "section 3.3.2" in rows[0].text_content()
    second = rows[1].text_content()
    assert "This kernel differs" in second and "6.18.44-test" in second
    assert "expected [R.] 120 s after the FIN, closest [R.] 2.000 s <b>after</b>" in second  # the verdict's message
    assert "linear timeouts: server 4, linux 4, win 0, on 6.18.44-test" in second  # the values the run read
    link = rows[1].xpath(".//a")[0]
    assert link.get("href") == "https://example.org/post?a=1&b='2'" and link.text_content().endswith(EVIL)
    assert len(doc.xpath("//script")) == 1  # the page's own: the title and the fact are text
    assert doc.xpath("//b[text()='Author']") == []  # the author's markup is text
    read = section.xpath(".//table[contains(@class,'kernel-read')]")[0].text_content()
    assert "net.ipv4.tcp_syn_linear_timeouts" in read and "server 4, linux 4, win 0" in read
    assert [a.get("href") for a in doc.xpath("//nav//a")][:2] == ["#summary", "#facts"]


def test_raw_html_of_a_source_never_reaches_the_page(tmp_path: Path) -> None:
    _, rd = facts_report(tmp_path)
    html = (rd / "report.html").read_text(encoding="utf-8")
    assert EVIL not in html and "&lt;script&gt;document.title=" in html
    assert 'href="https://example.org/post?a=1&amp;b=&#39;2&#39;"' in html


def test_without_verdicts_the_facts_are_not_checked(tmp_path: Path) -> None:
    doc, _ = facts_report(tmp_path, result=None)
    section = doc.get_element_by_id("facts")
    states = [r.xpath("td[1]")[0].text_content().strip()
              for r in section.xpath(".//table[contains(@class,'facts')]//tr[td]")]
    assert states == ["– not checked", "– not checked"] and "no fact was checked" in section.text_content()


def test_a_lab_without_facts_has_no_section(tmp_path: Path) -> None:
    import lxml.html

    from tcplab.report import write_report

    from .test_report_synth import write_closewait_run

    doc = lxml.html.fromstring(write_report(write_closewait_run(tmp_path)).read_text(encoding="utf-8"))
    assert doc.xpath("//section[@id='facts']") == [] and "#facts" not in doc.xpath("//nav//a/@href")


@pytest.mark.parametrize("statuses,status", [
    (["held", "held"], "held"), (["held", "failed", "error"], "failed"), (["held", "error"], "error"),
    (["held", "unchecked"], "unchecked"), ([], "unchecked")])
def test_a_fact_holds_when_every_expectation_that_checks_it_held(statuses: list[str], status: str) -> None:
    from tcplab.analysis.references.published import fact_status

    assert fact_status(statuses) == status


def test_sysctl_values_one_host_or_all() -> None:
    from tcplab.analysis.references.published import kernel_note, sysctl_value

    info: Any = {"sysctls": {"a": {"x.y": "1"}, "b": {"x.y": "1"}, "c": {}}, "engine": {"kernel": "6.1-engine"}}
    assert sysctl_value(info, "x.y", ["a", "b", "c"]) == "1"
    assert sysctl_value(info, "x.y", ["a", "b", "c"], host="c") == "not recorded"
    assert kernel_note("{kernel}", info, ["a"]) == "6.1-engine"  # no release read in a host: the engine's


def test_the_run_reads_a_labs_sysctls_and_the_kernel_release() -> None:
    from tcplab.observe.kernel import RELEASE, SYSCTLS, parse_sysctls, sysctl_argv, sysctl_names

    names = sysctl_names(["net.ipv4.tcp_keepalive_time", SYSCTLS[0], RELEASE])
    assert sysctl_argv(names)[-2:] == ["/proc/sys/net/ipv4/tcp_keepalive_time", "/proc/sys/kernel/osrelease"]
    assert len(names) == len(SYSCTLS) + 2  # each once
    lines = "\n".join(str(n) for n in range(len(SYSCTLS) - 1))  # the kernel lacks tcp_syn_linear_timeouts
    err = "cat: /proc/sys/net/ipv4/tcp_syn_linear_timeouts: No such file or directory\n"
    got = parse_sysctls(lines + "\n4\n6.18.44-fc-v657\n", err, names)
    assert "net.ipv4.tcp_syn_linear_timeouts" not in got and got["net.ipv4.tcp_keepalive_time"] == "4"
    assert got[RELEASE] == "6.18.44-fc-v657"
    from tcplab.analysis.references.published import kernel_release

    assert kernel_release({"sysctls": {"a": got}, "engine": {"kernel": "other"}}) == "6.18.44-fc-v657"


# --- judged again: `lab report RUN --judge`, and the sources of a failed fact --------------------

def test_report_judge_rejudges_from_the_runs_lab_yaml_and_names_the_source(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from tcplab.cli.app import app

    from .test_expectations import make_run

    run = make_run(tmp_path)
    ok = CliRunner().invoke(app, ["report", str(run), "--judge"])
    assert ok.exit_code == 0, ok.output
    assert "closewait: all 11 expectations held" in ok.output and (run / "report.html").is_file()
    data = yaml.safe_load((run / "lab.yaml").read_text())
    rst = next(e for e in data["expect"] if e["name"] == "win-rst-after-fin-wait2")
    rst["packet"]["win"] = 512  # a wrong fact: the RST's window is 0
    (run / "lab.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    bad = CliRunner().invoke(app, ["report", str(run), "--judge"])
    assert bad.exit_code == 1, bad.output
    assert "FAIL win-rst-after-fin-wait2: expected win→server [R.] seq 2 ack 1 win 512 at" in bad.output
    assert "closest: win→server [R.] seq 2 ack 1 win 0 at" in bad.output  # the closest seen
    assert "  source:   “t0 + 120.002 s: [R.] seq 2, ack 1, win 0" in bad.output  # the fact and where it is from
    assert "A CLOSE_WAIT that never goes away" in bad.output
    result = json.loads((run / "result.json").read_text())
    assert result["passed"] is False  # rewritten by the judgement
    junit = (run / "junit.xml").read_text()
    assert "source:   “t0 + 120.002 s" in junit


def test_report_judge_of_a_bad_lab_yaml_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tcplab.cli.app import app

    from .test_expectations import make_run

    run = make_run(tmp_path)
    (run / "lab.yaml").write_text((run / "lab.yaml").read_text().replace("source: field-report", "source: nope", 1))
    got = CliRunner().invoke(app, ["report", str(run), "--judge"])
    assert got.exit_code == 2 and "reference.facts.0.source: no source 'nope'" in got.output


@pytest.mark.parametrize("summary", ["a\nb", "s\rq: 1", "x\u2028y", "x\x85y"])
def test_a_summary_is_one_line(summary: str) -> None:
    assert "summary: is more than one line" in refused({"name": "t", "hosts": HOSTS, "summary": summary})
