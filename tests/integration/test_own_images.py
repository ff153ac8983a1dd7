"""A lab runs the user's own service: an image built from a Dockerfile beside the lab file, or any local
image, with the image's own program (its entrypoint and command) as the host's program.

The built service is the closewait server (single-threaded, it never accepts the second client) behind an
entrypoint script of the image's own that says it starts: the second client's close leaves a CLOSE_WAIT on
the service, its output is the container's log, and a second run does not build the image again. A local
image (tagged here, removed after) runs with ``pull: never``, a program of its own that exits is an event
of the story (not a crashed host), and a missing image with ``pull: never`` is one line and exit 3.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..conftest import lab_cmd, labeled_objects, make_lab, unique_name

pytestmark = pytest.mark.integration

ENTRYPOINT = """#!/bin/sh
echo "svc starting on port $1"
exec /opt/lab/server "$@"
"""
DOCKERFILE = """FROM tcplab/server
COPY start.sh /opt/svc/start.sh
RUN chmod 755 /opt/svc/start.sh
ENTRYPOINT ["/opt/svc/start.sh"]
CMD ["9000", "1"]
"""
CLIENTS = {"a": {"image": "tcplab/client"}, "b": {"image": "tcplab/client"}}
STEPS: list[dict[str, Any]] = [
    {"host": "a", "start": ["telnet", "svc", "9000"], "as": "first", "ready": {"log": "Connected to"}},
    {"host": "b", "start": ["telnet", "svc", "9000"], "as": "second", "ready": {"log": "Connected to"}},
    {"host": "b", "stop": "second", "title": "b closes its telnet"},
    {"wait": {"fin_from": "b"}, "timeout": "5s"},
    {"snapshot": "leak"},
]
EXPECT: list[dict[str, Any]] = [
    {"name": "close-wait-leaked", "about": "the service's socket to b sits in CLOSE_WAIT, owned by nobody",
     "state": {"host": "svc", "port": 9000, "peer": "b", "is": "CLOSE_WAIT", "at": "leak"}},
    {"name": "own-entrypoint", "about": "the image's own entrypoint ran, with the image's own command",
     "program": {"host": "svc", "name": "svc", "output": "^svc starting on port 9000$", "running": True}},
]


def _images_json(run: Path) -> dict[str, Any]:
    return json.loads((run / "images.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture
def built_lab(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    ctx = tmp_path / "svc"
    ctx.mkdir()
    (ctx / "start.sh").write_text(ENTRYPOINT)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    lab, name = make_lab(tmp_path, "closewait-linux", changes={
        "summary": "Our own service leaks a CLOSE_WAIT.", "story": "",
        "hosts": {"svc": {"build": "svc", "cap_add": ["NET_ADMIN"], "program": {"name": "svc", "ready": {"listen": 9000}}},
                  **CLIENTS},
        "steps": STEPS, "expect": EXPECT})
    yield lab, name
    repo = f"tcplab-build/{name}-svc"
    ids = subprocess.run(["docker", "images", "-q", repo], capture_output=True, text=True).stdout.split()
    for image in sorted(set(ids)):
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)


def test_a_service_built_beside_the_lab_file_runs_its_own_program(built_lab: tuple[Path, str],
                                                                  tmp_path: Path) -> None:
    lab, name = built_lab
    first = lab_cmd("run", str(lab), "--out", str(tmp_path / "run1"), cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert labeled_objects(name) == []
    assert f"image tcplab-build/{name}-svc:" in first.stderr and ": building" in first.stderr
    images = _images_json(tmp_path / "run1")
    built = [(ref, info) for ref, info in images.items() if info.get("kind") == "built"]
    assert len(built) == 1 and built[0][1]["hosts"] == ["svc"] and built[0][1]["built_now"] is True
    assert re.fullmatch(rf"tcplab-build/{name}-svc:[0-9a-f]{{16}}", built[0][0])
    caps = json.loads((tmp_path / "run1" / "run.json").read_text())["capabilities"]
    assert caps[f"tcplab-{name}-svc"] == ["NET_ADMIN"] and caps[f"tcplab-{name}-a"] == []
    report = (tmp_path / "run1" / "report.html").read_text()
    assert f"tcplab-{name}-svc</td><td class=\"mono\">NET_ADMIN<" in report
    assert "built from the lab&#39;s Dockerfile for this run" in report
    events = [json.loads(line) for line in (tmp_path / "run1" / "programs.jsonl").read_text().splitlines()]
    mine = [e for e in events if e.get("host") == "svc"]
    assert [e["event"] for e in mine] == ["start", "running", "output"]
    # the second run finds the image of the same content: nothing is built again
    second = lab_cmd("run", str(lab), "--out", str(tmp_path / "run2"), cwd=tmp_path, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "building" not in second.stderr
    again = _images_json(tmp_path / "run2")
    assert again[built[0][0]]["built_now"] is False and again[built[0][0]]["id"] == built[0][1]["id"]


# the job ends when the story says so (a file a step makes), then exits 3: an event of the story
GO = "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo job done; exit 3"


def test_a_local_image_with_its_own_program_that_exits(tmp_path: Path) -> None:
    local = f"example/{unique_name('svc')}:1"
    subprocess.run(["docker", "tag", "tcplab/server", local], check=True)
    try:
        lab, name = make_lab(tmp_path, "closewait-linux", changes={
            "summary": "A local image, and a program of its own that ends.", "story": "",
            "hosts": {
                "svc": {"image": local, "pull": "never",
                        "program": {"name": "srv", "run": ["/opt/lab/server", "9000", "1"], "ready": {"listen": 9000}}},
                "oneshot": {"image": local, "pull": "never",
                            "program": {"name": "job", "run": ["sh", "-c", GO]}},
                "a": {"image": "tcplab/client"}},
            "steps": [{"host": "a", "start": ["telnet", "svc", "9000"], "as": "t", "ready": {"log": "Connected to"}},
                      {"host": "oneshot", "start": ["touch", "/tmp/go"], "as": "go"},  # labrun: FROM tcplab/server
                      {"host": "oneshot", "wait": {"exit": "job"}, "timeout": "20s"},
                      {"snapshot": "after"}],
            "expect": [
                {"name": "job-exit", "program": {"host": "oneshot", "name": "job", "exit": 3, "output": "^job done$"}},
                {"name": "listening", "state": {"host": "svc", "port": 9000, "is": "LISTEN", "at": "after"}}]})
        res = lab_cmd("run", str(lab), "--out", str(tmp_path / "run"), cwd=tmp_path, timeout=600)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "oneshot: its program exited with status 3" in res.stderr
        assert labeled_objects(name) == []
        images = _images_json(tmp_path / "run")
        assert images[local]["kind"] == "pulled" and sorted(images[local]["hosts"]) == ["oneshot", "svc"]
        assert images[local]["built_now"] is False
    finally:
        subprocess.run(["docker", "rmi", local], capture_output=True)


def test_pull_never_of_a_missing_image_is_one_line_and_exit_3(tmp_path: Path) -> None:
    missing = f"example/{unique_name('absent')}:1"
    lab, name = make_lab(tmp_path, "closewait-linux", changes={
        "hosts": {"svc": {"image": missing, "pull": "never"}, "a": {"image": "tcplab/client"}},
        "steps": [], "expect": []})
    res = lab_cmd("run", str(lab), "--out", str(tmp_path / "run"), cwd=tmp_path, timeout=300)
    assert res.returncode == 3, res.stdout + res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("lab: ") and missing in last and "pull: never" in last
    assert labeled_objects(name) == []


def test_a_dockerfile_error_names_the_failing_step(tmp_path: Path) -> None:
    ctx = tmp_path / "svc"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM tcplab/server\nRUN echo about to fail && false\n")
    lab, name = make_lab(tmp_path, "closewait-linux", changes={
        "hosts": {"svc": {"build": {"context": "svc"}}, "a": {"image": "tcplab/client"}},
        "steps": [], "expect": []})
    res = lab_cmd("run", str(lab), "--out", str(tmp_path / "run"), cwd=tmp_path, timeout=300)
    assert res.returncode == 3, res.stdout + res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert re.search(r"the build failed at step 2/\d+ \(RUN echo about to fail", last), last
    assert last.endswith('its last lines: "about to fail"') or last.endswith("its last lines: about to fail"), last
    assert labeled_objects(name) == []


def test_gc_images_removes_older_builds_of_a_host_but_not_the_newest_nor_one_in_use(tmp_path: Path) -> None:
    """Each change to a lab's Dockerfile or context builds a new image and leaves the old: `lab gc --images`
    removes the old ones, keeps the newest (the next `lab up` uses it) and any a container still runs."""
    import docker

    from tcplab.backend import connect
    from tcplab.backend.base import BuildRequest, ImageRequest

    ctx = tmp_path / "svc"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM tcplab/client\nCOPY version /version\n")
    repo = f"tcplab-build/{unique_name('gcimg')}-svc"
    request = ImageRequest(None, build=BuildRequest(ctx, "Dockerfile", {}, None, repo))
    backend = connect()
    builds = []
    for version in ("1", "2", "3"):
        (ctx / "version").write_text(version)
        builds.append(backend.ensure_image(request, lambda image, msg: None).name)
    client = docker.from_env()
    user = client.containers.create(builds[0], ["sleep", "infinity"], labels={"tcplab.test": "gc-images"})
    try:
        gc = lab_cmd("gc", "--images")
        assert gc.returncode == 0, gc.stdout + gc.stderr
        assert f"removed image {builds[1]} (an older build)" in gc.stdout
        assert builds[0] not in gc.stdout and builds[2] not in gc.stdout  # in use; the newest
        tags = sorted(t for i in client.images.list(repo) for t in i.tags)
        assert tags == sorted([builds[0], builds[2]])
    finally:
        user.remove(force=True)
    again = lab_cmd("gc", "--images")
    assert again.returncode == 0 and f"removed image {builds[0]} (an older build)" in again.stdout, again.stdout
    assert [t for i in client.images.list(repo) for t in i.tags] == [builds[2]]
    client.images.remove(builds[2], force=True)
