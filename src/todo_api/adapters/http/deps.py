"""Annotated dependencies, so route signatures read like prose: `ready: ReadinessDep`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from todo_api.use_cases.health import CheckReadiness
from todo_api.use_cases.registry import UseCases


def use_cases(request: Request) -> UseCases:
    registry: UseCases = request.app.state.use_cases
    return registry


def _check_readiness(request: Request) -> CheckReadiness:
    return use_cases(request).check_readiness


ReadinessDep = Annotated[CheckReadiness, Depends(_check_readiness)]
