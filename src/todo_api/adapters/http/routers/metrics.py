"""/metrics in Prometheus' text format; behind a bearer token when METRICS_TOKEN is set."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from todo_api.adapters.http.deps import Anonymous
from todo_api.adapters.http.metrics import exposition
from todo_api.domain.errors import AuthenticationFailed

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, ctx: Anonymous) -> Response:
    token = ctx.services.metrics_token
    presented = request.headers.get("authorization", "").encode("latin-1")  # the header's bytes
    if token is not None and not hmac.compare_digest(presented, f"Bearer {token}".encode()):
        raise AuthenticationFailed("The metrics need the metrics token.", code="invalid_token")
    body, content_type = exposition()
    return Response(body, media_type=content_type)
