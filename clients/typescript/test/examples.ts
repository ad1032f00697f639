// docs/api.md's TypeScript examples, type-checked by `npm test` (tsc) so the docs cannot drift from
// the generated types. Not run: the tests in client.test.ts run the same calls.
import { type components, createTodoClient, ProblemError, type Task, type TodoClient, unwrap } from "../src/index.js";

declare function showLogin(): void;
declare function render(task: Task): void;
declare function reload(id: number): void;
declare function badge(overdue: number, dueToday: number): void;

export async function gettingStarted(password: string): Promise<void> {
  const todo = createTodoClient({ baseUrl: "http://127.0.0.1:8000", onSessionEnded: () => showLogin() });
  await todo.logIn("ada@example.com", "correct horse battery staple");

  const me = { user_id: "me" } as const;
  const task = unwrap(await todo.api.POST("/api/{user_id}/tasks", { params: { path: me }, body: { title: "Buy oat milk" } }));
  for await (const pending of todo.tasks({ status: "pending", sort: "due_at" })) render(pending);
  try {
    unwrap(
      await todo.api.PATCH("/api/{user_id}/tasks/{task_id}", {
        params: { path: { ...me, task_id: task.id } },
        body: { priority: "high" },
      }),
    );
  } catch (error) {
    if (error instanceof ProblemError && error.code === "precondition_failed") reload(task.id);
    else throw error;
  }

  const summary = unwrap(
    await todo.api.GET("/api/{user_id}/summary", {
      params: { path: me, query: { tz: Intl.DateTimeFormat().resolvedOptions().timeZone } },
    }),
  );
  badge(summary.all.overdue, summary.all.due_today);
  const tags = unwrap(await todo.api.GET("/api/{user_id}/tags", { params: { path: me } })).data;
  const { count } = unwrap(
    await todo.api.POST("/api/{user_id}/tasks/complete-all", { params: { path: me, query: { list_id: 7 } } }),
  );
  const cleared = unwrap(
    await todo.api.DELETE("/api/{user_id}/tasks", { params: { path: me, query: { status: "completed" } } }),
  );
  void [tags, count, cleared.task_ids];

  const { data } = await todo.api.GET("/api/auth/sessions");
  const others = data!.data.filter((session) => !session.current);
  for (const session of others) {
    await todo.api.DELETE("/api/auth/sessions/{session_id}", { params: { path: { session_id: session.id } } });
  }
  const mine = unwrap(await todo.api.GET("/api/auth/me/export"));
  void mine.tasks;
  await todo.api.DELETE("/api/auth/me", { body: { password } });
}

declare function apply(event: components["schemas"]["CloudEvent"]): void;
declare function showFieldErrors(errors: Record<string, string>): void;
declare function toast(message: string): void;

export async function concurrentEdits(todo: TodoClient): Promise<void> {
  const path = { user_id: "me", task_id: 7 };
  await todo.api.GET("/api/{user_id}/tasks/{task_id}", { params: { path } });
  const saved = await todo.api.PATCH("/api/{user_id}/tasks/{task_id}", {
    params: { path },
    body: { title: "Buy oat milk (2 l)" },
  });
  if (saved.response.status === 412) {
    /* someone else changed it */
  }
  const created = await todo.api.POST("/api/{user_id}/tasks", {
    params: { path: { user_id: "me" }, header: { "Idempotency-Key": crypto.randomUUID() } },
    body: { title: "Call the plumber" },
  });
  void created;
}

export async function listThenFollow(todo: TodoClient): Promise<void> {
  const lists = [];
  for await (const list of todo.lists()) lists.push(list);
  const first = unwrap(await todo.api.GET("/api/{user_id}/lists", { params: { path: { user_id: "me" } } }));
  let token = first.meta.sync_token!;
  const tasks = [];
  for await (const task of todo.tasks({ limit: 100 })) tasks.push(task);
  for (;;) {
    const page = await todo.api.GET("/api/{user_id}/changes", {
      params: { path: { user_id: "me" }, query: { since: token } },
    });
    if (page.error?.code === "sync_token_expired") break;
    const changes = unwrap(page);
    changes.data.forEach(apply);
    token = changes.meta.sync_token;
    if (!changes.meta.has_more) break;
  }
}

export async function errors(todo: TodoClient): Promise<void> {
  try {
    unwrap(await todo.api.POST("/api/{user_id}/tasks", { params: { path: { user_id: "me" } }, body: { title: "" } }));
  } catch (error) {
    if (!(error instanceof ProblemError)) throw error;
    if (error.status === 422) showFieldErrors(error.fieldErrors);
    else toast(`${error.problem.detail} (request ${error.requestId})`);
  }
}
