"""Teaching in a real terminal: `lab up --step` pauses before each step, Enter and `lab step` let it go on, and
`lab watch` in a second terminal shows the sockets as the lab plays, then ends when the lab goes down.

The terminals are tmux panes on a tmux server of the test's own (``-L``): keys are sent with send-keys and
the screen is read with capture-pane, as a person would see it. One run of a small lab (the closewait
control, its wait shortened to 4 s, long enough for a countdown) serves every assertion.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from ..conftest import LAB_PY, ROOT, lab_cmd, make_lab

pytestmark = pytest.mark.integration

EXPLAIN = "Watch the server's listening socket: this connection waits in its accept queue."


class Tmux:
    """A tmux server of one test: panes that run a command, their screens, the keys typed into them."""

    def __init__(self, cwd: Path) -> None:
        tmux = shutil.which("tmux")
        assert tmux is not None, "tmux is not installed (scripts/setup installs it)"
        self.argv = [tmux, "-L", f"tcplab-test-{uuid.uuid4().hex[:8]}"]
        self.cwd = cwd
        self.started = False

    def run(self, *args: str) -> str:
        """A tmux command; the first one starts the server, whose panes get this environment."""
        env = {**os.environ, "TCPLAB_HOME": str(ROOT), "TERM": "xterm-256color"}
        return subprocess.run([*self.argv, *args], check=True, capture_output=True, text=True, cwd=self.cwd,
                              env=env, timeout=20).stdout

    def pane(self, *argv: str) -> str:
        """A new pane running argv, then printing ``[exit N]`` (argv goes to the shell as its arguments, never
        into its command string); it stays on the screen when its command ends."""
        argv = ("sh", "-c", '"$@"; echo "[exit $?]"', "sh", *argv)
        if not self.started:
            pane = self.run("new-session", "-d", "-x", "220", "-y", "50", "-P", "-F", "#{pane_id}", *argv).strip()
            self.run("set-option", "-g", "remain-on-exit", "on")
            self.started = True
        else:
            pane = self.run("new-window", "-d", "-P", "-F", "#{pane_id}", *argv).strip()
        return pane

    def screen(self, pane: str) -> str:
        return self.run("capture-pane", "-p", "-J", "-t", pane, "-S", "-200")

    def wait_for(self, pane: str, pattern: str, timeout: float = 60) -> str:
        """The pane's screen once it shows ``pattern``. The screen of a terminal gives no event to wait on:
        it is looked at every 0.1 s, for ``timeout`` at most."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen(pane)
            if re.search(pattern, text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"no /{pattern}/ on the screen within {timeout:g} s:\n{text}")

    def ended(self, pane: str, timeout: float = 10) -> str:
        """How the pane's command ended (``exit 0``): the line :meth:`pane` has its shell print after it."""
        found = re.search(r"\[(exit \d+)\]", self.wait_for(pane, r"\[exit \d+\]", timeout))
        assert found is not None
        return found.group(1)

    def kill(self) -> None:
        if self.started:
            subprocess.run([*self.argv, "kill-server"], capture_output=True, timeout=20)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path)
    try:
        yield t
    finally:
        t.kill()


def test_step_by_step_with_a_live_view_in_another_terminal(tmp_path: Path, tmux: Tmux) -> None:
    lab_path, name = make_lab(tmp_path, "closewait-linux", changes={
        "steps.0.explain": EXPLAIN, "steps.6.wait.seconds": "4s", "steps.6.timeout": "8s"})
    up = tmux.pane(sys.executable, str(LAB_PY), "up", "--step", str(lab_path))
    try:
        # paused before the first step: what it does, in the lab's words, and how to go on
        screen = tmux.wait_for(up, r"press Enter to play it", timeout=90)
        assert "next: step 0: linux connects with telnet (1 of 8)" in screen
        assert EXPLAIN in " ".join(screen.split())
        run_dir = next((tmp_path / "runs").iterdir())
        assert not (run_dir / "steps.jsonl").exists(), "a step played before it was let go"

        tmux.run("send-keys", "-t", up, "Enter")
        tmux.wait_for(up, r"next: step 1: win connects with telnet \(2 of 8\)")
        assert '"index": 0' in (run_dir / "steps.jsonl").read_text()

        watch = tmux.pane(sys.executable, str(LAB_PY), "watch", name)
        tmux.wait_for(watch, r"server\s+LISTEN\s+0\.0\.0\.0:8000")

        for n in range(3, 9):  # from another process, as a second terminal does
            lab_cmd("step", name, cwd=tmp_path, check=True)
            if n == 8:  # step 7 waits 4 s: a countdown on lab up's terminal while it does
                tmux.wait_for(up, r"waiting 4 s: gives up in [1-4] s", timeout=10)
            tmux.wait_for(up, rf"next: step {n - 1}: .* \({n} of 8\)")
        lab_cmd("step", name, cwd=tmp_path, check=True)
        tmux.wait_for(up, rf"{re.escape(name)} is up", timeout=30)
        steps = (run_dir / "steps.jsonl").read_text()
        assert steps.count('"outcome": "ok"') == 8 and EXPLAIN in steps

        view = tmux.wait_for(watch, r"server\s+CLOSE_WAIT\s+\S+:8000\s+\S+")
        assert re.search(r"ESTABLISHED -> CLOSE_WAIT", view), view
        not_stepping = lab_cmd("step", name, cwd=tmp_path)
        assert not_stepping.returncode == 2 and "not being played with --step" in not_stepping.stderr
    finally:
        lab_cmd("down", name, cwd=tmp_path)
    screen = tmux.wait_for(watch, r"the view ends", timeout=20)
    assert re.search(rf"{re.escape(name)}: (the lab is down|the lab's containers are gone)", screen), screen
    assert tmux.ended(watch) == "exit 0", tmux.screen(watch)


def test_lab_up_watch_shows_the_live_view_in_place_of_the_steps(tmp_path: Path, tmux: Tmux) -> None:
    lab_path, name = make_lab(tmp_path, "closewait-linux", changes={"steps.6.wait.seconds": "1s",
                                                                   "steps.6.timeout": "5s"})
    up = tmux.pane(sys.executable, str(LAB_PY), "up", "--watch", str(lab_path))
    try:
        screen = tmux.wait_for(up, rf"{re.escape(name)} is up", timeout=90)
        assert tmux.ended(up) == "exit 0"
        assert re.search(r"server\s+CLOSE_WAIT\s+\S+:8000\s+\S+\s+1\s+0\s+-\s+snapshot (after_timeout|end)", screen), \
            screen
        assert re.search(r"step 3: win closes telnet\n.*ESTABLISHED -> FIN_WAIT1", screen), screen
        assert re.search(r"^lab up: step 7: snapshot after_timeout$", screen, re.M), screen  # its last words
        assert not re.search(r"^· step \d+: ", screen, re.M), "the list of steps was printed beside the view"
    finally:
        lab_cmd("down", name, cwd=tmp_path)
