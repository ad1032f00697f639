// docs/api.md's TypeScript examples, type-checked by `npm test` (tsc) so the docs cannot drift from
// the generated types. Not run: the tests in client.test.ts run the same calls.
import { createTodoClient, ProblemError, type Task, unwrap } from "../src/index.js";

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
