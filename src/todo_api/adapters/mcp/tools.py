"""The tools an agent calls: one small function each, calling the same use cases as the REST routes.

The five tools of the roadmap's contract keep their names and arguments (`add_task`, `list_tasks`,
`complete_task`, `delete_task`, `update_task`, each answering `{task_id, status, title}`); the
others reach what the REST API offers besides (details, filters, priorities, tags, due dates,
lists, moves). A tool's `user_id` must be the caller's id or `me`. Every failure comes back as a
tool result with `isError` and the REST API's `code` and message, never as a protocol error.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from todo_api.domain.errors import DomainError, Forbidden
from todo_api.domain.lists import MAX_LIST_NAME_CHARS, MAX_LISTS_PER_USER
from todo_api.domain.tasks import (
    MAX_DESCRIPTION_CHARS,
    MAX_PAGE_SIZE,
    MAX_SEARCH_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TITLE_CHARS,
    UNSET,
    Priority,
    PriorityName,
    Task,
    TaskChanges,
    TaskDraft,
    TaskFilter,
    TaskQuery,
)
from todo_api.domain.users import Principal
from todo_api.use_cases.registry import UseCases
from todo_api.use_cases.tasks import Move

SERVER_NAME = "todo-api"
INSTRUCTIONS = (
    "Manage the signed-in person's tasks. Pass `me` as `user_id` (or their id). Task ids come from "
    "add_task and list_tasks; never guess one. Dates are ISO 8601 with a time zone (2026-05-01T17:00:00Z)."
)
MAX_ID = 2**63 - 1

Caller = Callable[[Context], Awaitable[Principal]]
"""How a tool learns who calls: from the HTTP request, the chat turn, or stdio's token."""

acting_for: ContextVar[Principal | None] = ContextVar("mcp_acting_for", default=None)
"""Set around an in-process call (the chat loop), which has no HTTP request to read."""

UserId = Annotated[str, Field(min_length=1, max_length=64, description="The caller's user id, or `me`.")]
TaskId = Annotated[int, Field(ge=1, le=MAX_ID, description="A task's id, as add_task or list_tasks gave it.")]
ListId = Annotated[int, Field(ge=1, le=MAX_ID, description="A list's id, as list_lists gave it.")]
Title = Annotated[str, Field(min_length=1, max_length=MAX_TITLE_CHARS, description="A short title.")]
Description = Annotated[str, Field(max_length=MAX_DESCRIPTION_CHARS, description="Free text notes.")]
Tags = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS)]],
    Field(max_length=MAX_TAGS, description="Labels such as `home` or `errands` (lower-cased)."),
]
DueAt = Annotated[AwareDatetime, Field(description="When it is due, ISO 8601 with a time zone.")]


class TaskResult(BaseModel):
    """What the roadmap's five tools answer."""

    task_id: int
    status: Literal["pending", "completed", "deleted"]
    title: str


class TaskDetails(BaseModel):
    task_id: int
    status: Literal["pending", "completed"]
    title: str
    description: str | None
    priority: PriorityName
    tags: list[str]
    due_at: datetime | None
    completed_at: datetime | None
    list_id: int
    parent_id: int | None
    version: int


class ListResult(BaseModel):
    list_id: int
    name: str
    is_inbox: bool
    open_count: int
    total_count: int


def _result(task: Task) -> TaskResult:
    return TaskResult(task_id=task.id, status="completed" if task.completed else "pending", title=task.title)


def _details(task: Task) -> TaskDetails:
    return TaskDetails(
        task_id=task.id,
        status="completed" if task.completed else "pending",
        title=task.title,
        description=task.description,
        priority=task.priority.label,
        tags=list(task.tags),
        due_at=task.due_at,
        completed_at=task.completed_at,
        list_id=task.list_id,
        parent_id=task.parent_id,
        version=task.version,
    )


def tool_error(code: str, message: str, **extra: Any) -> CallToolResult:
    """A failure the model can read and correct: the REST API's `code` and message, as text and
    as structured content."""
    body = {"code": code, "message": message, **extra}
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(body))], structured_content=body, is_error=True
    )


def _field_errors(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors without the input: an error never echoes what was sent (as REST's 422)."""
    return [
        {"loc": [str(part) for part in err["loc"]], "message": err["msg"], "code": err["type"]}
        for err in error.errors()
    ]


class TodoMcpServer(MCPServer[Any]):
    """Turns every anticipated failure into a tool result with the REST API's `code`: a domain error
    keeps its own, arguments that fail the input schema are `validation_failed` (REST's 422), an
    unknown tool is `unknown_tool`. A crash is raised on: the SDK logs it with its traceback and tells
    an MCP client only `Error executing tool <name>`; the chat loop's `McpAgentTools` makes it
    `internal_error`."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None) -> Any:
        if self._tool_manager.get_tool(name) is None:
            known = ", ".join(sorted(tool.name for tool in self._tool_manager.list_tools()))
            return tool_error("unknown_tool", f"There is no tool {name!r}; the tools are: {known}.")
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as failure:
            cause = failure.__cause__
            if isinstance(cause, DomainError):
                return tool_error(cause.code, cause.message)
            if isinstance(cause, ValidationError):
                return tool_error(
                    "validation_failed", "The arguments are not valid; see `errors`.", errors=_field_errors(cause)
                )
            if type(failure) is ToolError:
                return tool_error("invalid_arguments", str(failure))
            raise


def build_mcp_server(use_cases: UseCases, caller: Caller) -> TodoMcpServer:
    server = TodoMcpServer(SERVER_NAME, instructions=INSTRUCTIONS, version="1.0.0")

    async def owner(ctx: Context, user_id: str) -> str:
        principal = acting_for.get() or await caller(ctx)
        if user_id not in ("me", principal.user_id):
            raise Forbidden("You can only reach your own tasks.", code="not_your_tasks")
        return principal.user_id

    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)
    writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)

    @server.tool(annotations=writes)
    async def add_task(
        ctx: Context,
        user_id: UserId,
        title: Title,
        description: Description | None = None,
        priority: PriorityName | None = None,
        tags: Tags | None = None,
        due_at: DueAt | None = None,
        list_id: ListId | None = None,
        parent_id: Annotated[TaskId | None, Field(description="Make it a subtask of this task.")] = None,
    ) -> TaskResult:
        """Add a task (to the Inbox unless `list_id` or `parent_id` says otherwise). Returns its id."""
        draft = TaskDraft(
            title=title,
            description=description,
            priority=Priority.of(priority) if priority else Priority.NONE,
            tags=tuple(tags or ()),
            due_at=due_at,
            list_id=list_id,
            parent_id=parent_id,
        )
        created = await use_cases.create_task.execute(await owner(ctx, user_id), draft)
        return _result(created.task)

    @server.tool(annotations=read_only)
    async def list_tasks(
        ctx: Context,
        user_id: UserId,
        status: Literal["all", "pending", "completed"] = "all",
        search: Annotated[
            str | None, Field(max_length=MAX_SEARCH_CHARS, description="Words in title or notes.")
        ] = None,
        priority: PriorityName | None = None,
        tag: Annotated[str | None, Field(max_length=MAX_TAG_CHARS)] = None,
        overdue: Annotated[bool, Field(description="Only open tasks whose due date has passed.")] = False,
        due_before: DueAt | None = None,
        due_after: DueAt | None = None,
        list_id: ListId | None = None,
        limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = 50,
    ) -> list[TaskResult]:
        """List tasks, newest first: all by default, or `pending` / `completed`, optionally filtered."""
        query = TaskQuery(
            filter=TaskFilter(
                status=status,
                priorities=frozenset({Priority.of(priority)}) if priority else frozenset(),
                tags=(tag,) if tag else (),
                search=search,
                overdue=overdue,
                due_before=due_before,
                due_after=due_after,
                list_id=list_id,
            ),
            limit=limit,
        )
        page = await use_cases.list_tasks.execute(await owner(ctx, user_id), query)
        return [_result(task) for task in page.tasks]

    @server.tool(annotations=writes)
    async def complete_task(ctx: Context, user_id: UserId, task_id: TaskId) -> TaskResult:
        """Mark a task done (its open subtasks too). Completing a completed task changes nothing."""
        task = await use_cases.set_task_completion.execute(await owner(ctx, user_id), task_id, True)
        return _result(task)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False))
    async def delete_task(ctx: Context, user_id: UserId, task_id: TaskId) -> TaskResult:
        """Delete a task and its subtasks (restorable for the retention window)."""
        me = await owner(ctx, user_id)
        task = await use_cases.get_task.execute(me, task_id)
        await use_cases.delete_task.execute(me, task_id)
        return TaskResult(task_id=task.id, status="deleted", title=task.title)

    @server.tool(annotations=writes)
    async def update_task(
        ctx: Context,
        user_id: UserId,
        task_id: TaskId,
        title: Title | None = None,
        description: Description | None = None,
        priority: PriorityName | None = None,
        tags: Tags | None = None,
        due_at: DueAt | None = None,
    ) -> TaskResult:
        """Change a task's title, notes, priority, tags or due date; what is left out stays as it is."""
        changes = TaskChanges(
            title=UNSET if title is None else title,
            description=UNSET if description is None else description,
            priority=UNSET if priority is None else Priority.of(priority),
            tags=UNSET if tags is None else tuple(tags),
            due_at=UNSET if due_at is None else due_at,
        )
        task = await use_cases.update_task.execute(await owner(ctx, user_id), task_id, changes)
        return _result(task)

    @server.tool(annotations=read_only)
    async def get_task(ctx: Context, user_id: UserId, task_id: TaskId) -> TaskDetails:
        """Everything about one task: notes, priority, tags, due date, list, parent."""
        return _details(await use_cases.get_task.execute(await owner(ctx, user_id), task_id))

    @server.tool(annotations=writes)
    async def reopen_task(ctx: Context, user_id: UserId, task_id: TaskId) -> TaskResult:
        """Mark a completed task as not done again (its subtasks stay as they are)."""
        task = await use_cases.set_task_completion.execute(await owner(ctx, user_id), task_id, False)
        return _result(task)

    @server.tool(annotations=writes)
    async def move_task(
        ctx: Context,
        user_id: UserId,
        task_id: TaskId,
        list_id: Annotated[ListId | None, Field(description="Move it (and its subtasks) to this list.")] = None,
        before_id: Annotated[TaskId | None, Field(description="Put it just before this task.")] = None,
        after_id: Annotated[TaskId | None, Field(description="Put it just after this task.")] = None,
    ) -> TaskResult:
        """Reorder a task or move it to another list; with no destination it goes to the end."""
        move = Move(list_id=list_id, before_id=before_id, after_id=after_id)
        task = await use_cases.move_task.execute(await owner(ctx, user_id), task_id, move)
        return _result(task)

    @server.tool(annotations=read_only)
    async def list_lists(ctx: Context, user_id: UserId) -> list[ListResult]:
        """The person's lists in their order (the Inbox first), with open and total task counts."""
        page = await use_cases.list_lists.execute(await owner(ctx, user_id), MAX_LISTS_PER_USER)  # all, in one page
        return [
            ListResult(
                list_id=found.id,
                name=found.name,
                is_inbox=found.is_inbox,
                open_count=found.open_count,
                total_count=found.total_count,
            )
            for found in page.lists
        ]

    @server.tool(annotations=writes)
    async def create_list(
        ctx: Context, user_id: UserId, name: Annotated[str, Field(min_length=1, max_length=MAX_LIST_NAME_CHARS)]
    ) -> ListResult:
        """Create a list (names are unique per person)."""
        created = await use_cases.create_list.execute(await owner(ctx, user_id), name)
        return ListResult(list_id=created.id, name=created.name, is_inbox=False, open_count=0, total_count=0)

    return server
