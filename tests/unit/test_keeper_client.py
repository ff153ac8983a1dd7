"""`lab down`'s side of the keeper protocol, against a stand-in keeper on the abstract socket."""
from __future__ import annotations

import json
import socket
import threading
import uuid
from typing import Callable

from tcplab.cli.keeper import ask_to_take_down, socket_name


def stand_in(lab: str, reply: Callable[[socket.socket, dict], None]) -> tuple[threading.Thread, list[dict]]:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_name(lab))
    listener.listen(1)
    requests: list[dict] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            requests.append(json.loads(conn.makefile("rb").readline()))
            reply(conn, requests[-1])

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t, requests


def send(conn: socket.socket, **msg: object) -> None:
    conn.sendall(json.dumps(msg).encode() + b"\n")


def test_no_keeper_means_none() -> None:
    assert ask_to_take_down(f"nolab-{uuid.uuid4().hex[:8]}", print, print) is None


def test_messages_are_relayed_and_the_status_returned() -> None:
    lab = f"k-{uuid.uuid4().hex[:8]}"
    out: list[str] = []
    err: list[str] = []

    def reply(conn: socket.socket, request: dict) -> None:
        send(conn, say="collecting <b>&")
        send(conn, err="lab: one line")
        send(conn, out="k is down", exit=0)

    t, requests = stand_in(lab, reply)
    assert ask_to_take_down(lab, out.append, err.append) == 0
    t.join(5)
    assert requests[0]["request"] == "down" and requests[0]["cwd"]
    assert out == ["k is down\n"]
    assert err == ["· collecting <b>&\n", "lab: one line\n"]


def test_a_keeper_that_dies_half_way_hands_back_to_the_caller() -> None:
    lab = f"k-{uuid.uuid4().hex[:8]}"

    def reply(conn: socket.socket, request: dict) -> None:
        send(conn, say="collecting")  # then the connection closes: no exit message

    t, _ = stand_in(lab, reply)
    assert ask_to_take_down(lab, lambda s: None, lambda s: None) is None
    t.join(5)


def test_a_keeper_whose_lab_is_not_up_hands_back_too() -> None:
    lab = f"k-{uuid.uuid4().hex[:8]}"
    t, _ = stand_in(lab, lambda conn, request: send(conn, exit=None))
    assert ask_to_take_down(lab, lambda s: None, lambda s: None) is None
    t.join(5)


def test_socket_names_are_per_lab_and_engine(monkeypatch) -> None:  # noqa: ANN001
    a = socket_name("closewait")
    assert a.startswith(b"\0tcplab-keeper/") and a != socket_name("closewait-linux")
    monkeypatch.setenv("DOCKER_HOST", "tcp://elsewhere:2375")
    assert socket_name("closewait") != a
    assert len(socket_name("x" * 300)) <= 107
