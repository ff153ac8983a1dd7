"""The reference block of a lab file: its sources and facts, validated; the facts rendered with a run's verdicts."""
from __future__ import annotations

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
