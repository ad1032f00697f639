"""docker-compose.yml can start: its services' environment passes production's start-up checks.

No Docker engine runs where the tests run, so nothing is started; `docker compose config` (or
Compose v1's `docker-compose config`, which .ci/run installs from Debian) checks the file itself and
resolves its variables, and Settings is built from what the api and migrate services would get."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from todo_api.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SECRETS = {"SECRET_KEY": secrets.token_hex(32), "PASSWORD_PEPPER": secrets.token_hex(32)}
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def compose_command() -> list[str] | None:
    """`docker compose` (the v2 plugin) when it answers, else Compose v1, else None."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def compose_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without the variables the file reads, plus `extra`."""
    names = {match["name"] for match in _VARIABLE.finditer(COMPOSE_FILE.read_text())}
    return {**{k: v for k, v in os.environ.items() if k not in names}, **extra}


def config_by_cli(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}`, for a machine without Compose."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        current = env.get(name)
        if op and op.endswith("?") and not current:
            raise ValueError(f"required variable {name} is missing a value: {arg}")
        if op and op.endswith("-") and not current:
            return arg
        return current or ""

    return _VARIABLE.sub(value, text)


def resolved(env: dict[str, str]) -> dict[str, Any]:
    command = compose_command()
    if command is not None:
        finished = config_by_cli(command, env)
        assert finished.returncode == 0, finished.stderr
        document: dict[str, Any] = yaml.safe_load(finished.stdout)
    else:
        document = yaml.safe_load(interpolate(COMPOSE_FILE.read_text(), env))
    return document


def service_environment(document: dict[str, Any], service: str) -> dict[str, str]:
    environment = document["services"][service].get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {name: str(value) for name, value in environment.items()}


def test_docker_compose_config_accepts_the_file() -> None:
    command = compose_command()
    if command is None:
        pytest.skip(
            "!!! `docker compose config` DID NOT RUN: neither the Compose plugin nor docker-compose is installed "
            "(.ci/run installs Debian's docker-compose); the Settings checks below ran on the file alone"
        )
    finished = config_by_cli(command, compose_env(SECRETS))

    assert finished.returncode == 0, finished.stderr
    assert set(yaml.safe_load(finished.stdout)["services"]) == {"db", "migrate", "api"}


@pytest.mark.parametrize("service", ["migrate", "api"])
def test_a_service_environment_passes_the_production_guard(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = service_environment(resolved(compose_env(SECRETS)), service)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    settings = Settings(_env_file=None)

    assert settings.is_production
    assert settings.pepper() == SECRETS["PASSWORD_PEPPER"].encode()


@pytest.mark.parametrize("missing", ["SECRET_KEY", "PASSWORD_PEPPER"])
def test_compose_refuses_to_go_on_without_a_secret_and_names_it(missing: str) -> None:
    env = compose_env({name: value for name, value in SECRETS.items() if name != missing})
    command = compose_command()
    if command is not None:
        finished = config_by_cli(command, env)
        assert finished.returncode != 0
        assert missing in finished.stderr
    else:
        with pytest.raises(ValueError, match=missing):
            interpolate(COMPOSE_FILE.read_text(), env)
