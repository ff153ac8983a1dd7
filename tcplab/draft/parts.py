"""What the plays of a draft share: a connection as the capture shows it, an item of the YAML to write, the
duration format, and the names of the programs the drafts run."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..analysis.packets import Connection, Packet

Value = Union[str, int, float, bool, list["Value"], dict[str, "Value"]]

SILENCE = 1.0  # seconds: a shorter gap between two actions is the steps' own pace, not a silence to replay
PROGRAMS = "programs"  # the build folder beside a draft that needs tcpctl: a copy of the project's labs/programs
TCPCTL = "/opt/lab/tcpctl"


@dataclass
class Conn:
    """One connection of the capture as the draft reads it: who did what, and what no step can make."""
    n: int  # its number in the capture (1-based)
    conn: Connection
    client: str = ""  # host names in the draft
    server: str = ""
    syn: Packet | None = None
    sends: list[Packet] = field(default_factory=list)  # the client's data segments
    client_fin: Packet | None = None
    fin_ack: Packet | None = None  # the server's ACK of that FIN
    server_fin: Packet | None = None
    timer_rst: Packet | None = None  # the client's RST after its own FIN, the server never having sent one
    refused: Packet | None = None  # the server's RST answering the SYN: nothing listens on the port
    unanswered: list[Packet] = field(default_factory=list)  # the client's SYNs when nothing ever came back
    server_sends: list[Packet] = field(default_factory=list)  # the server's data segments
    server_closes_first: Packet | None = None  # the server's FIN, sent before the client's
    server_rst: Packet | None = None  # the server's RST on an accepted connection (an abortive close)
    other: list[str] = field(default_factory=list)  # what cannot be reproduced, said as comments

    @property
    def cip(self) -> str:
        return self.conn.key[0]

    @property
    def sip(self) -> str:
        return self.conn.key[2]

    @property
    def port(self) -> int:
        return self.conn.key[3]

    @property
    def start(self) -> float:
        return self.conn.packets[0].ts


@dataclass
class Item:
    """A step, host or expectation of the draft: its value, the comment lines above it, the note at its end."""
    value: dict[str, Value]
    comments: list[str] = field(default_factory=list)  # lines above it
    note: str = ""  # at the end of its line


def seconds(s: float) -> str:
    """A duration as the lab file writes it: ``120s``, ``52.5s``, ``300ms``."""
    if s < 1:
        return f"{max(1, round(s * 1000))}ms"
    r = round(s, 1)
    return f"{int(r)}s" if r == int(r) else f"{r}s"
