"""The image builds with the uv that writes uv.lock, runs as an unprivileged user and says when it is
alive. (No Docker engine runs here; these are the Dockerfile's promises, read from the file.)"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def pinned_uv() -> str:
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["required-version"]
    assert required.startswith("=="), "uv is pinned to one version"
    return str(required[2:])


def test_the_dockerfile_uses_the_uv_pinned_for_the_lock() -> None:
    images = re.findall(r"ghcr\.io/astral-sh/uv:([0-9][0-9A-Za-z.\-]*)", DOCKERFILE)
    assert images == [pinned_uv()]
    assert "uv sync --locked" in DOCKERFILE


def test_the_makefile_installs_the_same_uv() -> None:
    makefile = (ROOT / "Makefile").read_text()
    version = re.search(r"^UV_VERSION := (\S+)$", makefile, re.M)
    assert version is not None
    assert version[1] == pinned_uv()
    assert "uv==$(UV_VERSION)" in makefile


def test_the_image_runs_as_an_unprivileged_user() -> None:
    final_stage = DOCKERFILE[DOCKERFILE.rindex("\nFROM ") :]
    users = re.findall(r"^USER (\S+)$", final_stage, re.M)
    assert users
    assert users[-1] not in {"root", "0"}
    assert final_stage.index("USER ") < final_stage.index("CMD ")


def test_the_image_has_a_health_check_on_its_own_port() -> None:
    assert re.search(r"^HEALTHCHECK .*--start-period=", DOCKERFILE, re.M)
    assert "/healthz" in DOCKERFILE
    assert "os.environ.get('PORT'" in DOCKERFILE
