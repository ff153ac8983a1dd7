"""The report's content as plain values for the template: one function per section."""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..analysis.explain import Explanation, explain, fmt_span
from ..analysis.packets import Packet
from ..analysis.references.published import kernel_read, published_facts
from ..analysis.timeline import Timelines, build_timelines, snapshot_order
from ..model.lab import Lab
from ..peers import peer_kind
from ..runfiles import ABOUT as RUN_FILES
from ..wire import RST
from .gather import RunData, read_log
from .ladder import (Ladder, LadderOptions, build_ladder, impair_marks, impaired_packets, packet_class,
                     retransmitted_packets)
from .tables import snapshot_views
from .timechart import timeline_svg

PAYLOAD_PREVIEW = 160


@dataclass
class Artifact:
    href: str
    path: str
    size: str
    what: str


def utc(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts), timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def size_text(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def payload_text(data: bytes, limit: int = PAYLOAD_PREVIEW) -> str:
    """As ``tcpdump -A`` shows a payload: printable ASCII kept, anything else a dot."""
    shown = "".join(chr(b) if 32 <= b < 127 else "." for b in data[:limit])
    return shown + ("…" if len(data) > limit else "")


def run_end(data: RunData, timelines_hint: float | None = None) -> float:
    """The last moment of the run that anything observed (open intervals run to here)."""
    info = data.info
    times = [float(s.get("time") or 0) for _, s in snapshot_order(data.snapshots)]
    times += [float(s.get("end") or s.get("start") or 0) for s in data.steps]
    if data.traffic.packets:
        times.append(data.traffic.packets[-1].ts)
    for key in ("collected_at",):
        if info.get(key):
            times.append(float(info[key]))
    if timelines_hint:
        times.append(timelines_hint)
    return max(times) if times else time.time()


def expect_count(data: RunData) -> int:
    """How many expectations the lab defines (those of a lab.yaml the model refused, too)."""
    if data.lab is not None and "expect" not in data.lab_refused:
        return len(data.lab.expect)
    refused = data.lab_refused.get("expect")
    return len(refused) if isinstance(refused, list) else 0


def set_sysctls(data: RunData) -> list[dict[str, str]]:
    """The sysctls each host's lab settings (its own and its peer kind's) set, with the value the run read back
    in that host's network namespace (run.json ``sysctls``): the report shows what the story ran with."""
    lab = data.lab
    if lab is None:
        return []
    read = data.info.get("sysctls") or {}
    rows = []
    for name, host in lab.hosts.items():
        wanted = peer_kind(host.peer.os).sysctls(host.peer)
        wanted.update({k: str(v) for k, v in host.sysctls.items()})
        got = read.get(name) if isinstance(read.get(name), dict) else {}
        for key, value in sorted(wanted.items()):
            back = (got or {}).get(key)
            rows.append({"host": name, "name": key, "set": " ".join(value.split()),
                         "read": "not read back" if back is None else str(back),
                         "ok": "yes" if back is not None and " ".join(str(back).split()) == " ".join(value.split())
                         else "no"})
    return rows


def summary(data: RunData) -> dict[str, Any]:
    info, lab = data.info, data.lab
    started, ended = info.get("started"), info.get("ended") or info.get("collected_at")
    state = str(info.get("state") or "unknown")
    if started and ended and state != "up":
        duration = f"{float(ended) - float(started):.1f} s (from {utc(started)} to {utc(ended)})"
    elif started:
        duration = f"started {utc(started)}; " + ("still up when this report was written" if state == "up"
                                                  else f"state: {state}")
    else:
        duration = "unknown (run.json has no start time)"
    images = []
    for name, rec in sorted((data.images or {}).items()):
        rec = rec if isinstance(rec, dict) else {}
        kind = str(rec.get("kind") or "project")
        now = bool(rec.get("built_now"))
        made = {"pulled": "pulled for this run" if now else "already on the engine",
                "built": "built from the lab's Dockerfile for this run" if now else "built from the lab's Dockerfile "
                         "before (same content)"}.get(kind, "built for this run" if now else "already built")
        hosts = rec.get("hosts")
        images.append({"name": name, "id": str(rec.get("id") or ""), "base": str(rec.get("base") or ""),
                       "created": str(rec.get("created") or ""), "built_now": now, "kind": kind, "made": made,
                       "reference": str(rec.get("reference") or ""),
                       "hosts": ", ".join(str(h) for h in hosts) if isinstance(hosts, list) else ""})
    caps = [{"container": c, "caps": ", ".join(v) if v else "none added"}
            for c, v in sorted((info.get("capabilities") or {}).items()) if isinstance(v, list)]
    stats = [{"host": h, **({k: s.get(k) for k in ("captured", "received", "dropped")} if isinstance(s, dict) else {})}
             for h, s in sorted((info.get("capture_stats") or {}).items())]
    result = data.result
    verdicts = []
    if result:
        for v in result.get("expectations") or []:
            if isinstance(v, dict):
                item = {k: ("" if v.get(k) is None else v.get(k)) for k in
                        ("name", "about", "kind", "held", "expected", "seen", "where", "message", "missing")}
                item["status"] = v.get("status") or ("held" if v.get("held") else "failed")  # older result.json
                verdicts.append(item)
    return {
        "lab": data.name, "run": str(info.get("run") or data.rd.path.name),
        "story": (lab.story or lab.summary) if lab is not None else "",
        "summary": lab.summary if lab is not None else "",
        "state": state, "duration": duration, "engine": info.get("engine") or {}, "images": images,
        "capabilities": caps, "sysctls": set_sysctls(data), "capture_stats": stats,
        "peer_timers": sorted((str(h), str(v)) for h, v in (info.get("peer_timers") or {}).items()),
        "tracer": str(info.get("tracer") or "unknown"), "cpu": cpu_during_story(data),
        "hosts": dict(info.get("hosts") or data.traffic.hosts), "result": result, "verdicts": verdicts,
        "expect_count": expect_count(data), "error": str(info.get("error") or ""),
        "problems": data.problems, "networks": network_lines(lab),
    }


def cpu_during_story(data: RunData) -> dict[str, Any]:
    """How short of CPU the machine was while the steps played, and whether that was enough to doubt a timing."""
    from ..analysis.machine import MAY_BE_THE_MACHINES, cpu_pressure

    pressure = cpu_pressure(data.steps)
    if pressure is None:
        return {"text": "not recorded (an engine on another machine, a kernel without pressure stall information, "
                        "or a run of an older tcplab)", "short": False}
    text = pressure.describe()
    if pressure.short:
        text += f": the machine was short of CPU, and {MAY_BE_THE_MACHINES}"
    return {"text": text, "short": pressure.short}


def network_lines(lab: Lab | None) -> list[str]:
    """A lab of several networks, a line each: its subnet, MTU and hosts; then each router, NAT box and route."""
    if lab is None or not lab.networks:
        return []
    lines = []
    for key, net in lab.networks.items():
        on = []
        for h, host in lab.hosts.items():
            if key in host.networks:
                place = host.networks[key]
                own = f" (MTU {place.mtu})" if place is not None and place.mtu is not None else ""
                on.append(f"{h} {lab.host_addresses(h)[key]}{own}")
        mtu = f", MTU {net.mtu}" if net.mtu is not None else ""
        lines.append(f"{key} {net.subnet}{mtu}: {', '.join(on)}")
    lines += [f"{h} forwards between {', '.join(host.networks)}" for h, host in lab.hosts.items() if host.router]
    lines += [f"{h} is a NAT box: masquerades onto {host.nat.out}, forgets a connection idle for "
              f"{host.nat.idle_timeout:g} s, then answers its packets with "
              f"{'an RST' if host.nat.expired == 'rst' else 'nothing (drops them)'}"
              for h, host in lab.hosts.items() if host.nat is not None]
    lines += [f"{h}: route to {r.to} via {r.via} ({lab.route_gateway(h, r)})"
              for h, host in lab.hosts.items() for r in host.routes]
    return lines


def packet_rows(packets: list[Packet], t0: float) -> list[dict[str, Any]]:
    return [{"n": p.n, "t": f"{p.ts - t0:.6f}", "line": p.tcpdump_line(), "where": p.where(), "cls": packet_class(p),
             "journey": p.journey(),
             "payload": payload_text(p.tcp.payload) if p.tcp.payload else "", "conn": p.conn.name if p.conn else ""}
            for p in packets]


def timeline_rows(timelines: Timelines, t0: float, names: dict[str, str], limit: int = 400) -> list[dict[str, Any]]:
    rows = []
    for s in timelines.sockets:
        peer = names.get(s.sock.peer_ip, s.sock.peer_ip)
        for iv in s.intervals:
            rows.append({"socket": f"{s.sock.host} {s.sock.local_ip}:{s.sock.local_port} ↔ {peer} "
                                   f"{s.sock.peer_ip}:{s.sock.peer_port}",
                         "state": iv.state, "start": f"{iv.start - t0:.6f}",
                         "end": f"{iv.end - t0:.6f}" if iv.end is not None else "still at end",
                         "duration": fmt_span(iv.duration(timelines.end)), "source": iv.source,
                         "ended_by": iv.ended_by, "note": iv.note, "cls": iv.state.lower().replace("_", "-")})
            if len(rows) >= limit:
                return rows
    return rows


_WHAT = {**RUN_FILES, "junit.xml": "the verdicts for CI",
         "capture/all.pcapng": "every host merged on one clock, steps as comments"}


def artifacts(data: RunData) -> list[Artifact]:
    rd = data.rd
    paths: list[Path] = []
    for name in [*(n for n in RUN_FILES if "/" not in n), "junit.xml"]:  # the files at the top, then junit.xml
        if (rd.path / name).is_file():
            paths.append(rd.path / name)
    if rd.capture_dir.is_dir():
        paths += sorted(rd.capture_dir.glob("*.pcap")) + sorted(rd.capture_dir.glob("*.pcapng"))
    if rd.sockets_dir.is_dir():
        paths += sorted(p for p in rd.sockets_dir.iterdir() if p.is_file() and p.suffix in (".json", ".jsonl", ".txt"))
    if rd.logs_dir.is_dir():
        paths += sorted(p for p in rd.logs_dir.rglob("*") if p.is_file())
    out = []
    for p in paths:
        rel = p.relative_to(rd.path).as_posix()
        what = _WHAT.get(rel, "")
        if not what and rel.startswith("capture/") and rel.endswith(".pcap"):
            what = f"{p.stem}'s own capture, as tcpdump wrote it"
        elif not what and rel.startswith("sockets/") and rel.endswith(".txt"):
            what = "ss output" if rel.endswith(".ss.txt") else "netstat output"
        elif not what and rel.startswith("logs/"):
            what = "program output"
        out.append(Artifact(quote(rel), rel, size_text(p.stat().st_size), what))
    return out


def logs_view(data: RunData, max_lines: int = 300) -> list[dict[str, Any]]:
    hosts = set((data.info.get("hosts") or {}).keys()) | set(data.traffic.hosts)
    out = []
    for name, text in sorted(data.logs.items(), key=lambda kv: (kv[0] not in hosts, kv[0])):
        lines = text.splitlines()
        shown = "\n".join(lines[:max_lines])
        more = len(lines) - max_lines
        out.append({"name": name, "text": shown, "more": more if more > 0 else 0, "open": name in hosts,
                    "href": quote(f"logs/{name}.log"), "lines": len(lines)})
    return out


COUNTER_PREFIXES = ("TcpExt", "Tcp")  # the TCP counters; IP, ICMP and UDP ones are not a TCP story's


def counter_changes(data: RunData) -> list[dict[str, Any]]:
    """Each host's TCP counters that moved between the first and the last snapshot that read them (nstat's names),
    with the value at each snapshot: what the kernel counted during the story."""
    out = []
    order = snapshot_order(data.snapshots)
    for host in sorted({h for _, s in order for h in (s.get("hosts") or {})}):
        read: list[tuple[str, dict[str, int]]] = []
        for name, snap in order:
            table = ((snap.get("hosts") or {}).get(host) or {}).get("counters")
            if table is not None and table.get("ok"):
                read.append((name, dict(table.get("values") or {})))
        if len(read) < 2:
            continue
        first, last = read[0][1], read[-1][1]
        moved = sorted(k for k in last if k.startswith(COUNTER_PREFIXES) and last.get(k) != first.get(k))
        if moved:
            out.append({"host": host, "snapshots": [n for n, _ in read],
                        "rows": [{"name": k, "values": [str(v.get(k, "")) for _, v in read],
                                  "change": f"{int(last[k]) - int(first.get(k, 0)):+d}"} for k in moved]})
    return out


def build_context(data: RunData, opts: LadderOptions | None = None) -> dict[str, Any]:
    traffic = data.traffic
    end = run_end(data)
    resets = [(p.ts, p.tcp.src, p.tcp.sport, p.tcp.dst, p.tcp.dport) for p in traffic.packets if p.tcp.flags & RST]
    timelines = build_timelines(data.transitions, data.snapshots, traffic.hosts or dict(data.info.get("hosts") or {}),
                                end, resets)
    t0 = traffic.start if traffic.packets else (timelines.start if timelines.sockets else end)
    names = {ip: h for h, ip in (traffic.hosts or {}).items() if ip}
    found = impaired_packets(traffic, data.impaired)
    ladder: Ladder = build_ladder(traffic, data.steps, opts, impair_marks(found),
                                  retransmitted_packets(traffic, data.retransmits))
    snaps = [(n, float(s.get("time") or 0.0)) for n, s in snapshot_order(data.snapshots)]
    chart, left_out = timeline_svg(timelines, t0, snaps, names) if timelines.sockets else ("", 0)
    host_logs = {k: v for k, v in data.logs.items()}
    for path in sorted((data.rd.logs_dir / "programs").glob("*.log")):  # each program's own output, for the whys
        try:
            host_logs[f"programs/{path.stem}"] = read_log(path)
        except OSError:
            continue
    ex: Explanation = explain(traffic, timelines, data.snapshots, host_logs, data.lab, info=data.info,
                              transitions=data.transitions, peer_events=data.peer_events, reference=data.reference)
    drawn = {p.n for p in ladder.drawn}
    steps = [{"index": s.get("index"), "t": f"{float(s['start']) - t0:.6f}" if s.get("start") else "",
              "title": str(s.get("title") or s.get("name") or ""),
              "explain": str(s.get("explain") or ""), "host": str(s.get("host") or ""),
              "outcome": str(s.get("outcome") or ""), "detail": str(s.get("detail") or "")} for s in data.steps]
    rd = data.rd
    merged = rd.merged_pcapng.relative_to(rd.path).as_posix()
    return {
        "s": summary(data),
        "t0": t0,
        "t0_utc": utc(t0) if traffic.packets else "",
        "ex": ex,
        "facts": published_facts(data.lab, data.result, data.info),
        "kernel_read": kernel_read(data.lab, data.info),
        "drawn": drawn,
        "ladder": ladder,
        "packets": packet_rows(ladder.drawn, t0),
        "impaired": [{"t": f"{d.ts - t0:.6f}", "host": d.host, "rule": d.rule, "action": d.action, "seq": d.seq,
                      "flags": d.flags, "length": d.length,
                      "n": found.get(d)}
                     for d in data.impaired],
        "impairment": dict(data.info.get("impairment") or {}),
        "connections": [{"name": c.name, "count": len(c.packets), "start": f"{c.packets[0].ts - t0:.6f}",
                         "end": f"{c.packets[-1].ts - t0:.6f}"} for c in traffic.connections[:500]],
        "more_connections": max(0, len(traffic.connections) - 500),
        "timeline_svg": chart, "timeline_left_out": left_out, "timeline_source": timelines.source,
        "timeline_rows": timeline_rows(timelines, t0, names),
        "snapshots": snapshot_views(data.snapshots, t0, rd),
        "counters": counter_changes(data),
        "steps": steps,
        "logs": logs_view(data),
        "artifacts": artifacts(data),
        "has_merged": rd.merged_pcapng.is_file(),
        "wireshark": shlex.join(["wireshark", merged]),
        "tshark_steps": shlex.join(["tshark", "-r", merged, "-Y", "frame.comment"]),
        "cd": shlex.join(["cd", str(rd.path)]),
        "written": utc(time.time()),
    }
