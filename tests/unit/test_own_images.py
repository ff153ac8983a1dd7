"""A lab's own images: image references, build:, pull:, the image's own program, and the fields of compose a
lab file may never use (the golden bad files cover each refusal's line; here: what is accepted and what the
plan, the image builder's hash and the compose export make of it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tcplab.backend.base import BuildRequest
from tcplab.backend.images import build_hash
from tcplab.export import export_to
from tcplab.model import LabError, load_lab
from tcplab.model.lab import Host
from tcplab.model.loader import FORBIDDEN_HOST_FIELDS
from tcplab.paths import known_images
from tcplab.plan import RunNames, image_requests, plan_lab, project_images
from tcplab.rundir import RunDir


def write_lab(tmp_path: Path, hosts: dict[str, Any], **more: Any) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump({"name": "own", "hosts": hosts, **more}, sort_keys=False))
    return path


@pytest.mark.parametrize("ref", [
    "myorg/svc:1.0", "svc", "registry.example.com:5000/team/svc:2", "localhost/svc", "ghcr.io/a/b/c:v1.2-rc_3",
    "postgres@sha256:" + "a" * 64, "docker.io/library/nginx:1.25-alpine", "tcplab/server",
])
def test_image_references_as_docker_has_them(ref: str) -> None:
    assert Host.model_validate({"image": ref}).image == ref


@pytest.mark.parametrize("ref", [
    "My Image", "svc:", "svc:-x", "/svc", "svc/", "a//b", "svc@sha256:abc", "UPPER/case", "svc\n:1", "svc:1\n",
    "x" * 256, "tcplab/server:latest", "tcplab/../etc", "-svc", "svc..x",
])
def test_garbage_is_not_an_image_reference(ref: str) -> None:
    with pytest.raises(ValueError, match="image"):
        Host.model_validate({"image": ref})


def test_kinds_and_the_own_program() -> None:
    project = Host.model_validate({"image": "tcplab/client"})
    pulled = Host.model_validate({"image": "myorg/svc:1.0"})
    built = Host.model_validate({"build": "svc"})
    assert (project.image_kind, pulled.image_kind, built.image_kind) == ("project", "pulled", "built")
    assert (project.own_program, pulled.own_program, built.own_program) == (False, True, True)
    assert (project.program_name, pulled.program_name) == (None, "program")
    assert built.build is not None and built.build.context == "svc" and built.build.dockerfile == "Dockerfile"
    assert pulled.pull == "missing"


def test_a_lab_with_its_own_images_plans_their_programs_and_requests(tmp_path: Path) -> None:
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "Dockerfile.dev").write_text("FROM tcplab/server\n")
    path = write_lab(tmp_path, {
        "svc": {"build": {"context": "svc", "dockerfile": "Dockerfile.dev", "args": {"V": "2"}, "target": "run"},
                "image": "myorg/svc:dev", "cap_add": ["NET_ADMIN"]},
        "pg": {"image": "postgres:16", "pull": "never", "program": {"run": ["postgres", "-c", "fsync=off"]}},
        "raw": {"image": "myorg/raw:1", "cap_add": ["NET_RAW"]},
        "c": {"image": "tcplab/client"}},
        steps=[{"host": "pg", "wait": {"exit": "program"}}],
        expect=[{"name": "pg-ends", "program": {"host": "pg", "name": "program", "exit": 0}}])
    lab, _ = load_lab(path, [], known_images())
    plan = plan_lab(lab, RunNames("own", "r1", str(tmp_path)), RunDir(tmp_path), agents=set(lab.hosts),
                    images={"svc": "sha256:abc"})
    specs = {h.name: h.spec for h in plan.hosts}
    assert specs["svc"].command is None and specs["svc"].image == "sha256:abc"  # the image's entrypoint and CMD
    assert specs["pg"].command == ["postgres", "-c", "fsync=off"] and specs["pg"].image == "postgres:16"
    assert specs["svc"].mounts == () and specs["pg"].mounts == ()  # no agent: Docker exec serves
    assert specs["c"].command == ["labagent", "/run/lab/agent"]  # the project's hosts as before
    assert (specs["svc"].cap_add, specs["svc"].cap_drop) == (("NET_ADMIN",), ("NET_RAW",))
    assert (specs["raw"].cap_add, specs["raw"].cap_drop) == (("NET_RAW",), ())
    assert (specs["c"].cap_add, specs["c"].cap_drop) == ((), ("NET_RAW",))
    assert project_images(lab) == {"tcplab/client", "tcplab/tools"}
    requests = image_requests(lab, tmp_path)
    assert set(requests) == {"svc", "pg", "raw"}
    assert requests["pg"].reference == "postgres:16" and requests["pg"].pull == "never" and requests["pg"].build is None
    build = requests["svc"].build
    assert build == BuildRequest(context=tmp_path / "svc", dockerfile="Dockerfile.dev", args={"V": "2"}, target="run",
                                 repository="tcplab-build/own-svc")
    assert requests["svc"].reference == "myorg/svc:dev"


def test_build_contexts_are_relative_to_the_lab_file_not_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "labs" / "svc").mkdir(parents=True)
    (tmp_path / "labs" / "svc" / "Dockerfile").write_text("FROM x\n")
    path = write_lab(tmp_path / "labs", {"svc": {"build": "svc"}})
    monkeypatch.chdir(tmp_path)
    assert load_lab(path)[0].hosts["svc"].build is not None
    (tmp_path / "labs" / "out").symlink_to(tmp_path)
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    path = write_lab(tmp_path / "labs", {"svc": {"build": "out"}})
    with pytest.raises(LabError, match=r"hosts\.svc\.build\.context: out leads out of the lab file's directory"):
        load_lab(path)


@pytest.mark.parametrize("field", sorted(FORBIDDEN_HOST_FIELDS))
def test_every_forbidden_field_is_refused_by_name(field: str, tmp_path: Path) -> None:
    path = write_lab(tmp_path, {"svc": {"image": "myorg/svc:1.0", field: "host"}})
    with pytest.raises(LabError) as info:
        load_lab(path)
    assert info.value.field == f"hosts.svc.{field}" and info.value.message.startswith("not allowed: ")


def test_forbidden_fields_given_with_set_are_refused_too(tmp_path: Path) -> None:
    path = write_lab(tmp_path, {"svc": {"image": "myorg/svc:1.0"}})
    with pytest.raises(LabError, match=r"hosts\.svc\.privileged: not allowed: .*privileged mode"):
        load_lab(path, ["hosts.svc.privileged=true"])
    with pytest.raises(LabError, match=r"hosts\.svc\.cap_add\.0: not allowed: CAP_SYS_PTRACE"):
        load_lab(path, ["hosts.svc.cap_add=[CAP_SYS_PTRACE]"])


def _ctx(tmp_path: Path, **files: str) -> BuildRequest:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return BuildRequest(context=tmp_path, dockerfile="Dockerfile", args={}, target=None, repository="r")


def test_the_build_hash_follows_what_goes_into_the_image(tmp_path: Path) -> None:
    req = _ctx(tmp_path, Dockerfile="FROM x\n", app="v1")
    first = build_hash(req)
    assert build_hash(req) == first  # unchanged: the same tag, not built again
    assert build_hash(_ctx(tmp_path, app="v2")) != first
    req = _ctx(tmp_path, app="v1")
    assert build_hash(req) == first
    assert build_hash(BuildRequest(tmp_path, "Dockerfile", {"V": "1"}, None, "r")) != first
    assert build_hash(BuildRequest(tmp_path, "Dockerfile", {}, "stage", "r")) != first


def test_export_writes_build_image_and_pull_policy_as_compose(tmp_path: Path) -> None:
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "Dockerfile").write_text("FROM tcplab/server\n")
    path = write_lab(tmp_path, {
        "svc": {"build": {"context": "svc", "args": {"V": "$2"}}, "program": {"run": ["serve", "9000"]}},
        "tagged": {"build": "svc", "image": "myorg/svc:dev", "pull": "never"},
        "pg": {"image": "postgres:16", "pull": "always"},
        "c": {"image": "tcplab/client"}})
    lab, resolved = load_lab(path)
    out = tmp_path / "compose" / "own.yml"
    out.parent.mkdir()
    services = yaml.safe_load(export_to(out, lab, resolved, path).text)["services"]
    assert services["svc"]["build"] == {"context": "../svc", "args": {"V": "$$2"}}
    assert services["svc"]["image"] == "tcplab-build/own-svc" and services["svc"]["pull_policy"] == "build"
    assert services["svc"]["command"] == ["serve", "9000"]  # as compose's command: the entrypoint stays
    assert services["tagged"]["image"] == "myorg/svc:dev" and services["tagged"]["pull_policy"] == "never"
    assert "command" not in services["tagged"] and "healthcheck" not in services["tagged"]
    assert services["pg"] == {**services["pg"], "image": "postgres:16", "pull_policy": "always"}
    assert "build" not in services["pg"] and "pull_policy" not in services["c"]
