"""Every use case the app offers, built once from the ports and handed to the adapters.

`build_use_cases` is the one place that knows which use case takes which port: the composition
root calls it with the real adapters, the HTTP tests with the in-memory fakes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from todo_api.domain.ports import (
    AccessTokens,
    AgentTools,
    ChangeSignals,
    ChatModel,
    Clock,
    DatabaseProbe,
    PasswordHasher,
    RecurrenceRules,
    RevokedSessions,
    TargetGuard,
    TokenVerifier,
    UnitOfWorkFactory,
)
from todo_api.domain.users import PasswordPolicy
from todo_api.use_cases.account import DeleteAccount, EndSession, ExportAccount, ListSessions, UpdateProfile
from todo_api.use_cases.auth import (
    Authenticate,
    ChangePassword,
    GetCurrentUser,
    LogIn,
    LogOut,
    RefreshSession,
    SessionIssuer,
    SignUp,
    ThrottleLimits,
)
from todo_api.use_cases.bulk import BulkChangeTasks
from todo_api.use_cases.changes import ReadChanges
from todo_api.use_cases.chat import ChatOptions, ChatTurn, DeleteConversation, ListConversations, ListMessages
from todo_api.use_cases.health import CheckReadiness
from todo_api.use_cases.lists import CreateList, DeleteList, GetList, ListLists, MoveList, UpdateList
from todo_api.use_cases.overview import ClearCompleted, CompleteAll, GetSummary, ListTags
from todo_api.use_cases.reminders import ListReminders, SnoozeReminder
from todo_api.use_cases.restore import ListDeletedTasks, RestoreList, RestoreTask
from todo_api.use_cases.revocations import RevokedSessionCache
from todo_api.use_cases.streams import (
    FollowChanges,
    IssueStreamTicket,
    RedeemStreamTicket,
    StreamOptions,
    StreamTicketCodec,
)
from todo_api.use_cases.tasks import (
    CreateTask,
    DeleteTask,
    GetTask,
    ListTasks,
    MoveTask,
    SetTaskCompletion,
    SkipOccurrence,
    UpdateTask,
)
from todo_api.use_cases.webhooks import CreateWebhook, DeleteWebhook, GetWebhook, ListDeliveries, ListWebhooks


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
    move_task: MoveTask
    bulk_change_tasks: BulkChangeTasks
    create_list: CreateList
    list_lists: ListLists
    get_list: GetList
    update_list: UpdateList
    move_list: MoveList
    delete_list: DeleteList
    read_changes: ReadChanges
    follow_changes: FollowChanges
    issue_stream_ticket: IssueStreamTicket
    redeem_stream_ticket: RedeemStreamTicket
    restore_task: RestoreTask
    restore_list: RestoreList
    list_deleted_tasks: ListDeletedTasks
    create_webhook: CreateWebhook
    list_webhooks: ListWebhooks
    get_webhook: GetWebhook
    delete_webhook: DeleteWebhook
    list_deliveries: ListDeliveries
    skip_occurrence: SkipOccurrence
    list_reminders: ListReminders
    snooze_reminder: SnoozeReminder
    chat: ChatTurn
    list_conversations: ListConversations
    list_messages: ListMessages
    delete_conversation: DeleteConversation
    get_summary: GetSummary
    list_tags: ListTags
    complete_all: CompleteAll
    clear_completed: ClearCompleted
    update_profile: UpdateProfile
    list_sessions: ListSessions
    end_session: EndSession
    export_account: ExportAccount
    delete_account: DeleteAccount
    session_revocations: RevokedSessionCache
    """Not a use case: the in-memory list of ended sessions, whose refresh loop the composition root runs."""


@dataclass(frozen=True, slots=True)
class Ports:
    """What the use cases are built on."""

    uow: UnitOfWorkFactory
    clock: Clock
    hasher: PasswordHasher
    access_tokens: AccessTokens
    verifier: TokenVerifier
    probe: DatabaseProbe
    password_policy: PasswordPolicy
    limits: ThrottleLimits
    refresh_lifetime: timedelta
    webhook_guard: TargetGuard
    revoked_sessions: RevokedSessions
    """Where every replica reads the sessions ended lately (revocations.py)."""
    recurrences: RecurrenceRules
    webhook_allow_http: bool = False
    change_signals: ChangeSignals | None = None
    """Wakes live streams; without it, opening one answers 503."""
    streams: StreamOptions = field(default_factory=StreamOptions)
    stream_ticket_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    """Signs stream tickets; every replica needs the same one (the app's secret key)."""
    stream_ticket_lifetime_s: int = 30
    chat_model: ChatModel | None = None
    """The assistant's model; without it, chat answers 503 `chat_not_configured`."""
    agent_tools: AgentTools | None = None
    chat: ChatOptions = field(default_factory=ChatOptions)


def build_use_cases(ports: Ports) -> UseCases:
    uow, clock, hasher, policy, limits = ports.uow, ports.clock, ports.hasher, ports.password_policy, ports.limits
    sessions = SessionIssuer(ports.access_tokens, clock, ports.refresh_lifetime)
    tickets = StreamTicketCodec(ports.stream_ticket_secret)
    # An ended session's access tokens matter while one could still be valid: a lifetime, the
    # verifier's 10 s of leeway, and a minute to spare.
    horizon = timedelta(seconds=ports.access_tokens.lifetime_s + 70)
    revocations = RevokedSessionCache(ports.revoked_sessions, clock, horizon=horizon)
    return UseCases(
        check_readiness=CheckReadiness(ports.probe),
        authenticate=Authenticate(ports.verifier, uow, clock, revocations),
        sign_up=SignUp(uow, hasher, policy, sessions, limits),
        log_in=LogIn(uow, hasher, sessions, limits),
        refresh_session=RefreshSession(uow, sessions, revocations),
        log_out=LogOut(uow, clock, revocations),
        change_password=ChangePassword(uow, hasher, policy, clock, limits, revocations),
        get_current_user=GetCurrentUser(uow),
        create_task=CreateTask(uow, clock, ports.recurrences),
        list_tasks=ListTasks(uow, clock),
        get_task=GetTask(uow),
        update_task=UpdateTask(uow, clock, ports.recurrences),
        set_task_completion=SetTaskCompletion(uow, clock, ports.recurrences),
        delete_task=DeleteTask(uow, clock),
        move_task=MoveTask(uow, clock),
        bulk_change_tasks=BulkChangeTasks(uow, clock, ports.recurrences),
        create_list=CreateList(uow, clock),
        list_lists=ListLists(uow),
        get_list=GetList(uow),
        update_list=UpdateList(uow, clock),
        move_list=MoveList(uow, clock),
        delete_list=DeleteList(uow, clock),
        read_changes=ReadChanges(uow),
        follow_changes=FollowChanges(uow, ports.change_signals, clock, ports.streams),
        issue_stream_ticket=IssueStreamTicket(tickets, clock, ports.stream_ticket_lifetime_s),
        redeem_stream_ticket=RedeemStreamTicket(tickets, uow, clock, ports.stream_ticket_lifetime_s),
        restore_task=RestoreTask(uow, clock),
        restore_list=RestoreList(uow, clock),
        list_deleted_tasks=ListDeletedTasks(uow),
        create_webhook=CreateWebhook(uow, clock, ports.webhook_guard, allow_http=ports.webhook_allow_http),
        list_webhooks=ListWebhooks(uow),
        get_webhook=GetWebhook(uow),
        delete_webhook=DeleteWebhook(uow),
        list_deliveries=ListDeliveries(uow),
        skip_occurrence=SkipOccurrence(uow, clock, ports.recurrences),
        list_reminders=ListReminders(uow),
        snooze_reminder=SnoozeReminder(uow, clock),
        chat=ChatTurn(uow, clock, ports.chat_model, ports.agent_tools, ports.chat),
        list_conversations=ListConversations(uow),
        list_messages=ListMessages(uow),
        delete_conversation=DeleteConversation(uow),
        get_summary=GetSummary(uow, clock),
        list_tags=ListTags(uow),
        complete_all=CompleteAll(uow, clock, ports.recurrences),
        clear_completed=ClearCompleted(uow, clock),
        update_profile=UpdateProfile(uow, clock),
        list_sessions=ListSessions(uow, clock),
        end_session=EndSession(uow, clock, revocations),
        export_account=ExportAccount(uow, clock),
        delete_account=DeleteAccount(uow, hasher, clock, limits, revocations),
        session_revocations=revocations,
    )
