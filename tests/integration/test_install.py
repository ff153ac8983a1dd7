"""`pip install .` (not editable) into a fresh venv gives a `lab` that works from any directory.

The wheel carries the shipped labs and the image build contexts (build_backend/tcplab_build.py); the
test installs it offline, as CI does: no index, the dependencies taken from the venv running the tests.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import ROOT, labeled_objects, unique_name

pytestmark = pytest.mark.integration
INSTALL_BUDGET = 60.0  # seconds for the venv and the install: this runs in CI


@dataclass
class Installed:
    venv: Path
    work: Path  # an empty directory far from the checkout, the current directory of every command
    seconds: float

    @property
    def lab(self) -> str:
        return str(self.venv / "bin" / "lab")

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("TCPLAB_HOME", "PYTHONPATH")}
        return subprocess.run([self.lab, *args], cwd=self.work, env=env, capture_output=True, text=True,
                              timeout=timeout)


def install(tmp: Path) -> Installed:
    """A fresh venv with tcplab installed from the checkout (a wheel built by pip), offline."""
    venv = tmp / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--no-deps",
                          "--no-cache-dir", "--disable-pip-version-check", "-q", str(ROOT)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    seconds = time.monotonic() - started
    # the dependencies: this interpreter's (its directory on the path; its .pth files, such as an editable
    # tcplab's, are not read from there)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "zz_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    work = tmp / "elsewhere"
    work.mkdir()
    return Installed(venv, work, seconds)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return install(tmp_path_factory.mktemp("install"))


def test_install_is_quick_and_the_package_is_not_the_checkout(installed: Installed) -> None:
    print(f"venv + pip install: {installed.seconds:.1f} s")
    assert installed.seconds < INSTALL_BUDGET
    res = subprocess.run([str(installed.venv / "bin" / "python"), "-c",
                          "import tcplab.paths as p; print(p.__file__); print(p.HOME)"],
                         cwd=installed.work, capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k not in ("TCPLAB_HOME", "PYTHONPATH")})
    module, home = res.stdout.split()
    assert Path(module).is_relative_to(installed.venv)
    assert Path(home) == Path(module).parent / "_data"


def test_installed_lab_lists_and_validates_the_shipped_labs(installed: Installed) -> None:
    res = installed.run("ls")
    assert res.returncode == 0, res.stderr
    assert {line.split()[0] for line in res.stdout.splitlines() if line.strip()} >= {"closewait", "closewait-linux"}
    res = installed.run("validate", "closewait", "closewait-linux")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count(": ok (") == 2
    res = installed.run("docs", "lab-file")  # the reference, from the installed model
    assert res.returncode == 0 and "\n## Host\n" in res.stdout and "| `fin_wait2_timeout` |" in res.stdout


def test_installed_lab_builds_the_images_from_the_package(installed: Installed) -> None:
    res = installed.run("images", "build", timeout=1800)
    assert res.returncode == 0, res.stderr
    # every image the checkout's images/ can build, as the installed package carries them
    buildable = {f"tcplab/{d.name}" for d in (ROOT / "images").iterdir() if (d / "Dockerfile").is_file()}
    assert {line.split()[0] for line in res.stdout.splitlines()} == buildable


def test_installed_lab_runs_closewait_from_any_directory(installed: Installed) -> None:
    name = unique_name("inst-cw")
    subnet = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}.0/24"
    try:
        res = installed.run("run", "closewait", "--set", "peers.win.fin_wait2_timeout=2s", "--set", f"name={name}",
                            "--set", f"network.subnet={subnet}")
    finally:
        left = labeled_objects(name)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not left
    runs = list((installed.work / "runs").glob(f"{name}-*"))
    assert len(runs) == 1, "the run directory goes to ./runs of the current directory"
    result = json.loads((runs[0] / "result.json").read_text())
    assert [e["held"] for e in result["expectations"]] == [True] * 11
