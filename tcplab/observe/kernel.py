"""Facts of the kernel a run played on, read once as the lab comes up, for the report's whys.

The sysctls are per network namespace, so each host's are read in that host;
the timer frequency (HZ) is the kernel's own, read once. A fact that cannot be
read is left out: the report then says the run does not record it.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

# the sysctls the explanations use, as files under /proc/sys
SYSCTLS = ("net.ipv4.tcp_rmem", "net.core.rmem_max", "net.ipv4.tcp_fin_timeout", "net.ipv4.ip_local_port_range",
           "net.ipv4.tcp_syn_retries", "net.ipv4.tcp_syn_linear_timeouts", "net.ipv4.tcp_abort_on_overflow",
           "net.core.somaxconn", "net.ipv4.tcp_synack_retries", "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_tw_reuse_delay",
           "net.ipv4.tcp_pingpong_thresh")
HZ_ARGV = ["zgrep", "^CONFIG_HZ=", "/proc/config.gz"]


def sysctl_names(own: Iterable[str] = ()) -> list[str]:
    """The sysctls to read in a host: those the explanations use, then the host's own (the lab's and its
    peer kind's), so the run records the value each story set as the kernel took it."""
    return list(dict.fromkeys([*SYSCTLS, *own]))


def sysctl_argv(names: Sequence[str] = SYSCTLS) -> list[str]:
    """One ``cat`` of every sysctl: ``cat`` goes on past a file this kernel lacks, which stays unread."""
    return ["cat", *(f"/proc/sys/{name.replace('.', '/')}" for name in names)]


def parse_sysctls(stdout: str, stderr: str, names: Sequence[str] = SYSCTLS) -> dict[str, str]:
    """``cat``'s output, one line per file in order; files it could not read are named in its errors."""
    missing = [name for name in names if f"/proc/sys/{name.replace('.', '/')}" in stderr]
    present = [name for name in names if name not in missing]
    lines = stdout.splitlines()
    if len(lines) != len(present):
        return {}
    return {name: " ".join(value.split()) for name, value in zip(present, lines)}


def parse_hz(stdout: str) -> dict[str, Any]:
    """``{"hz": 250, "hz_source": ...}`` from the kernel's config, or nothing."""
    for line in stdout.splitlines():
        if line.startswith("CONFIG_HZ=") and line.split("=", 1)[1].strip().isdigit():
            return {"hz": int(line.split("=", 1)[1]), "hz_source": f"{line.strip()} in /proc/config.gz"}
    return {}


RELEASE = "kernel.osrelease"  # a sysctl too: what `uname -r` prints, the same in every host of a run
