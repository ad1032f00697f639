"""The summary, the tags and the answer of the set-wide writes (complete all, clear completed)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import Field

from todo_api.adapters.http.schemas import Output
from todo_api.domain.overview import Completed, Counts, TagCount, TaskSummary
from todo_api.domain.tasks import PriorityName


class CountsOut(Output):
    open: int = Field(ge=0, examples=[12])
    completed: int = Field(ge=0, examples=[30])
    overdue: int = Field(ge=0, description="Open tasks due before now.", examples=[2])
    due_today: int = Field(
        ge=0, description="Open tasks due today in the time zone you sent (earlier today included).", examples=[3]
    )

    @classmethod
    def of(cls, counts: Counts) -> CountsOut:
        return cls.model_validate(
            {
                "open": counts.open,
                "completed": counts.completed,
                "overdue": counts.overdue,
                "due_today": counts.due_today,
            }
        )


class ListCountsOut(CountsOut):
    list_id: int = Field(examples=[1])


class SummaryOut(Output):
    all: CountsOut
    by_priority: dict[PriorityName, CountsOut] = Field(description="Every priority, zeros included.")
    by_list: list[ListCountsOut] = Field(description="Every list of yours in your order, zeros included.")
    time_zone: str = Field(examples=["Europe/Paris"])
    today_starts_at: datetime
    today_ends_at: datetime
    as_of: datetime = Field(description="The instant `overdue` is counted against.")

    @classmethod
    def of(cls, summary: TaskSummary) -> SummaryOut:
        return cls.model_validate(
            {
                "all": CountsOut.of(summary.all),
                "by_priority": {
                    priority.label: CountsOut.of(counts) for priority, counts in summary.by_priority.items()
                },
                "by_list": [
                    ListCountsOut.model_validate({"list_id": list_id, **CountsOut.of(counts).model_dump()})
                    for list_id, counts in summary.by_list.items()
                ],
                "time_zone": summary.day.time_zone,
                "today_starts_at": summary.day.start,
                "today_ends_at": summary.day.end,
                "as_of": summary.now,
            }
        )


class TagOut(Output):
    tag: str = Field(examples=["work"])
    open: int = Field(ge=0, examples=[4])
    total: int = Field(ge=0, examples=[9])


class TagsOut(Output):
    data: list[TagOut] = Field(description="Every tag on your tasks, by name.")

    @classmethod
    def of(cls, tags: Sequence[TagCount]) -> TagsOut:
        return cls.model_validate({"data": [{"tag": t.tag, "open": t.open, "total": t.total} for t in tags]})


class ChangedCountOut(Output):
    count: int = Field(ge=0, description="How many tasks changed (subtasks included).", examples=[3])
    task_ids: list[int] = Field(description="Which ones, by id.", examples=[[4, 7, 9]])

    @classmethod
    def of(cls, changed: Completed) -> ChangedCountOut:
        return cls.model_validate({"count": changed.count, "task_ids": list(changed.task_ids)})
