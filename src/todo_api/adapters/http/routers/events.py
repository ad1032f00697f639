"""/api/{user_id}/events: the change feed live, as Server-Sent Events; and the stream tickets a
browser's EventSource (which cannot send an Authorization header) opens it with. docs/events.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.openapi.models import OAuthFlowPassword, OAuthFlows
from fastapi.security.base import SecurityBase
from pydantic import Field

from todo_api.adapters.http.deps import (
    SECURITY_SCHEME,
    TOKEN_URL,
    Authenticated,
    UserIdPath,
    bearer_token,
    services_of,
)
from todo_api.adapters.http.event_stream import MEDIA_TYPE, RETRY_MS, EventStreamResponse
from todo_api.adapters.http.problems import problem_responses
from todo_api.adapters.http.schemas import Output
from todo_api.domain.errors import Forbidden
from todo_api.domain.users import Principal
from todo_api.use_cases.registry import UseCases

router = APIRouter(prefix="/api/{user_id}", tags=["events"])

_POSITION = r"^[0-9]{1,18}$"
_NOT_YOURS = "You can only follow your own events."

_EXAMPLE_STREAM = (
    f"retry: {RETRY_MS}\n: position 1042\n\n"
    "id: 1043\n"
    "event: task.created\n"
    'data: {"specversion":"1.0","id":"9b0c5e1e-8a6b-4c1e-9f43-0f6f1f7c2d11","source":"/api/u_123",'
    '"type":"task.created","subject":"tasks/42","time":"2026-12-04T09:17:57.123456Z",'
    '"datacontenttype":"application/json","data":{"id":42,"title":"Buy oat milk","...":"..."},"position":1043}\n\n'
    ": keep-alive\n\n"
    "event: end\n"
    'data: {"reason":"token_expired"}\n\n'
)


class StreamTicketOut(Output):
    ticket: str = Field(
        description="Pass as `?ticket=` to `GET /api/{user_id}/events`, once, within `expires_in` seconds.",
        examples=["st1.eyJ1IjoidV8xMjMiLCJzIjoiZmFtaWx5In0.q8c2VQ0mS3y1Yz5k4z1wW2o0V6xkJX3Lr9bOaX2m1nE"],
    )
    expires_in: int = Field(description="Seconds until it expires (at most 60).", examples=[30])
    expires_at: datetime


class _StreamCaller(SecurityBase):
    """The caller of the events route: a `?ticket=` when there is one, else the bearer token; the
    path's `{user_id}` must be theirs (or `me`)."""

    def __init__(self) -> None:
        self.model = OAuth2Model(flows=OAuthFlows(password=OAuthFlowPassword(tokenUrl=TOKEN_URL, scopes={})))
        self.scheme_name = SECURITY_SCHEME

    async def __call__(
        self,
        request: Request,
        user_id: UserIdPath,
        ticket: Annotated[
            str | None,
            Query(
                max_length=1024,
                description="A stream ticket from `POST /api/{user_id}/events/tickets`, for clients that cannot "
                "send an Authorization header (EventSource). Never put an access token in a URL.",
            ),
        ] = None,
    ) -> tuple[UseCases, Principal]:
        use_cases = services_of(request).use_cases
        if ticket is not None:
            principal = await use_cases.redeem_stream_ticket.execute(ticket)
        else:
            principal = await use_cases.authenticate.execute(bearer_token(request))
        if user_id not in ("me", principal.user_id):
            raise Forbidden(_NOT_YOURS, code="not_your_tasks")
        return use_cases, principal


StreamCaller = Annotated[tuple[UseCases, Principal], Depends(_StreamCaller())]

_SSE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "An endless stream of Server-Sent Events: each change as `id: <position>`, `event: <type>`, "
        "`data: <CloudEvent JSON>`; `: keep-alive` comments while idle; `event: end` with the reason when the server "
        "ends it (`token_expired`, `session_ended`, `shutdown`, `fell_behind`).",
        "content": {MEDIA_TYPE: {"schema": {"type": "string"}, "example": _EXAMPLE_STREAM}},
    },
    **problem_responses(401, 403, 410, 422, 429, 503),
}


@router.get(
    "/events",
    status_code=status.HTTP_200_OK,
    operation_id="streamEvents",
    summary="Follow your changes live (Server-Sent Events)",
    description="Opens at your feed's position now, or resumes after `Last-Event-ID` (or `last_event_id` / `since` "
    "for clients that cannot set it): the events after it are sent first, then live ones, without loss. A "
    "position older than the retention window is 410 `sync_token_expired` before the stream starts. The "
    "stream ends when the access token expires or the session is logged out. At most a few streams per "
    "person are open at once (429 with `Retry-After` past it). Browsers: authenticate with `?ticket=` from "
    "`POST /api/{user_id}/events/tickets` (docs/events.md).",
    response_class=EventStreamResponse,
    responses=_SSE_RESPONSE,
)
async def stream_events(
    caller: StreamCaller,
    last_event_id: Annotated[
        str | None,
        Header(
            pattern=_POSITION,
            description="Set by EventSource when it reconnects: the last position it received.",
            examples=["1042"],
        ),
    ] = None,
    last_event_id_query: Annotated[
        str | None,
        Query(alias="last_event_id", pattern=_POSITION, description="As `Last-Event-ID`.", examples=["1042"]),
    ] = None,
    since: Annotated[
        str | None,
        Query(pattern=_POSITION, description="As `Last-Event-ID`: a sync token or a position.", examples=["1042"]),
    ] = None,
) -> EventStreamResponse:
    use_cases, principal = caller
    resume = last_event_id or last_event_id_query or since
    stream = await use_cases.follow_changes.open(principal, None if resume is None else int(resume))
    return EventStreamResponse(stream)


_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_NO_STORE_HEADER: dict[str, Any] = {"Cache-Control": {"schema": {"const": "no-store"}}}


@router.post(
    "/events/tickets",
    status_code=status.HTTP_201_CREATED,
    operation_id="createStreamTicket",
    summary="A one-time ticket to open the event stream from a browser",
    description="EventSource cannot send an Authorization header: ask for a ticket with your bearer token, then "
    "open `GET /api/{user_id}/events?ticket=...` within its lifetime (at most 60 s). A ticket works once, only "
    "for you, and the stream it opens ends when the token that asked for it expires or its session ends.",
    response_model=StreamTicketOut,
    responses={201: {"headers": _NO_STORE_HEADER}, **problem_responses(401, 403, 422)},
)
async def create_stream_ticket(caller: Authenticated, response: Response, user_id: UserIdPath) -> StreamTicketOut:
    if user_id not in ("me", caller.principal.user_id):
        raise Forbidden(_NOT_YOURS, code="not_your_tasks")
    issued = caller.use_cases.issue_stream_ticket.execute(caller.principal)
    response.headers.update(_NO_STORE)
    left = (issued.expires_at - caller.use_cases.follow_changes.now()).total_seconds()
    return StreamTicketOut(ticket=issued.value, expires_in=max(0, int(left)), expires_at=issued.expires_at)
