"""/metrics in Prometheus' text format; behind a bearer token when METRICS_TOKEN is set."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Response

from todo_api.adapters.http.metrics import exposition
from todo_api.domain.errors import AuthenticationFailed


def build_router(token: str | None) -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics(authorization: Annotated[str | None, Header()] = None) -> Response:
        if token is not None and not hmac.compare_digest(authorization or "", f"Bearer {token}"):
            raise AuthenticationFailed("The metrics need the metrics token.", code="invalid_token")
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    return router
