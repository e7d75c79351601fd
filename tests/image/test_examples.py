"""The Dockerfile and the deployment examples that use its image agree, checked without building anything: the
compose file in docs/container.md and the Kubernetes manifests in docs/scale-out.md pass arguments `turnout serve`
accepts, mount the image's volumes, use the ports it exposes and probe the endpoints it serves
(`make image-test` builds and runs the image itself)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.cli import build_parser
from controlplane.config_loader import parse_config

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _one(name: str, stage: int = -1) -> str:
    stages: list[list[tuple[str, str]]] = []
    for ins in _instructions():
        if ins[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    found = [args for word, args in stages[stage] if word == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


ENTRYPOINT: list[str] = json.loads(_one("ENTRYPOINT"))
CMD: list[str] = json.loads(_one("CMD"))
VOLUMES: list[str] = json.loads(_one("VOLUME"))
PORTS = {int(p) for p in _one("EXPOSE").split()}


def _serve_args(args: list[str]) -> Any:
    assert ENTRYPOINT == ["turnout", "serve"]
    return build_parser().parse_args(["serve", *args])


def test_the_dockerfile_runs_turnout_serve_as_a_non_root_user_with_volumes_and_a_health_check() -> None:
    assert _one("FROM", 0).startswith("${PYTHON_IMAGE} AS build") and _one("FROM").strip() == "${PYTHON_IMAGE}"
    assert re.search(r"^ARG PYTHON_IMAGE=docker\.io/library/python:3\.1[1-9]-slim", DOCKERFILE, flags=re.M)
    assert _one("USER") == "10001:10001"
    assert "--uid 10001" in _one("RUN")
    assert VOLUMES == ["/etc/turnout", "/var/lib/turnout"] and PORTS == {8700, 8701}
    args = _serve_args(CMD)
    assert args.config == "/etc/turnout/turnout.yaml" and args.config.startswith(VOLUMES[0] + "/")
    health = _one("HEALTHCHECK")
    assert "TURNOUT_READYZ_URL" in health and "TURNOUT_READYZ_URL=http://127.0.0.1:8701/readyz" in _one("ENV")


def test_every_package_is_copied_into_the_image() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {args.split()[0] for word, args in _instructions() if word == "COPY" and not args.startswith("--from")}
    assert packages <= copied, f"not copied into the image: {packages - copied}"
    for src in copied:
        for part in src.split():
            assert (ROOT / part).exists(), part
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not packages & set(ignored)


def _yaml_blocks(page: str) -> list[Any]:
    text = (ROOT / "docs" / page).read_text()
    out: list[Any] = []
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.S):
        out.extend(d for d in yaml.safe_load_all(block) if d is not None)
    return out


def _is_ours(image: str) -> bool:
    return image.split("/")[-1].split(":")[0] == "turnout"


def _k8s_containers() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for doc in _yaml_blocks("scale-out.md"):
        if isinstance(doc, dict) and doc.get("kind") == "Deployment":
            spec = doc["spec"]["template"]["spec"]
            out.extend((c, spec) for c in spec["containers"] if _is_ours(c["image"]))
    return out


def test_the_kubernetes_manifests_use_the_image_as_built() -> None:
    containers = _k8s_containers()
    assert len(containers) == 2  # control and data replicas
    for c, spec in containers:
        args = _serve_args(c["args"])
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        assert mounts <= set(VOLUMES) and any(args.config.startswith(m + "/") for m in mounts), c["name"]
        assert {v["name"] for v in spec["volumes"]} == {m["name"] for m in c["volumeMounts"]}
        named = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert set(named.values()) <= PORTS
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            if probe in c:
                get = c[probe]["httpGet"]
                assert get["path"] == path and named[get["port"]] == 8701  # served on the control port
    roles = sorted(_serve_args(c["args"]).role for c, _ in containers)
    assert roles == ["control", "data"]


def test_the_compose_example_uses_the_image_as_built() -> None:
    [compose] = [d for d in _yaml_blocks("container.md") if isinstance(d, dict) and "services" in d]
    service = compose["services"]["turnout"]
    assert _is_ours(service["image"]) and service["build"] == "."
    assert _serve_args(service["command"]).config == "/etc/turnout/turnout.yaml"
    targets = [v.split(":")[1] for v in service["volumes"]]
    assert all(any(t == v or t.startswith(v + "/") for v in VOLUMES) for t in targets)
    assert {int(p.split(":")[1]) for p in service["ports"]} == PORTS
    named_volumes = {v.split(":")[0] for v in service["volumes"] if not v.startswith(".")}
    assert named_volumes <= set(compose["volumes"])


def test_the_container_config_listens_everywhere_and_keeps_its_database_on_the_volume() -> None:
    [raw] = [d for d in _yaml_blocks("container.md") if isinstance(d, dict) and "providers" in d]
    cfg = parse_config(yaml.safe_dump(raw), env={"OPENAI_API_KEY": "test-key"})
    assert cfg.server.data.host == cfg.server.control.host == "0.0.0.0"
    assert {cfg.server.data.port, cfg.server.control.port} == PORTS
    assert cfg.database.url.startswith("sqlite:////var/lib/turnout/")


@pytest.mark.parametrize("page", ["container.md", "scale-out.md"])
def test_pages_name_the_image_the_makefile_builds(page: str) -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"-t localhost/turnout:latest", makefile), "make image tags turnout:latest"
    images = re.findall(r"image: (\S+)", (ROOT / "docs" / page).read_text())
    assert images and all(i == "turnout:latest" for i in images)
