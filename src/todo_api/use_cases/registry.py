"""Every use case the app offers, built once by the composition root and handed to the adapters."""

from __future__ import annotations

from dataclasses import dataclass

from todo_api.use_cases.auth import Authenticate, ChangePassword, GetCurrentUser, LogIn, LogOut, RefreshSession, SignUp
from todo_api.use_cases.health import CheckReadiness
from todo_api.use_cases.tasks import CreateTask, DeleteTask, GetTask, ListTasks, SetTaskCompletion, UpdateTask


@dataclass(frozen=True, slots=True)
class UseCases:
    check_readiness: CheckReadiness
    authenticate: Authenticate
    sign_up: SignUp
    log_in: LogIn
    refresh_session: RefreshSession
    log_out: LogOut
    change_password: ChangePassword
    get_current_user: GetCurrentUser
    create_task: CreateTask
    list_tasks: ListTasks
    get_task: GetTask
    update_task: UpdateTask
    set_task_completion: SetTaskCompletion
    delete_task: DeleteTask
