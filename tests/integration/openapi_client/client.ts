// What the SPA team writes against the generated types. Type-checked (never run) by
// tests/integration/test_openapi_contract.py after it regenerates generated/api.d.ts from
// /openapi.json, so a change to the API that breaks this code fails the Python test suite.
import createClient from "openapi-fetch";

import type { components, operations, paths } from "./generated/api.d.ts";

type Problem = components["schemas"]["Problem"];
type Task = components["schemas"]["TaskOut"];
/** Operation ids are the names the SPA reads: listTasks, createTask, toggleTaskCompletion, ... */
type ListTasksQuery = NonNullable<operations["listTasks"]["parameters"]["query"]>;
type NewTask = operations["createTask"]["requestBody"]["content"]["application/json"];

/** `true` only for `any`: every response, error and body below must be typed, not `any`. */
type IsAny<T> = 0 extends 1 & T ? true : false;

const api = createClient<paths>({ baseUrl: "http://localhost:8000", headers: { Authorization: "Bearer token" } });

export function describeProblem(problem: Problem): string {
  const fields = problem.errors?.map((error) => `${error.loc.join(".")}: ${error.message}`) ?? [];
  return [`${problem.status} ${problem.code}: ${problem.detail} (request ${problem.request_id})`, ...fields].join("\n");
}

export async function firstPage(): Promise<{ title: string | undefined; next: string | null } | Problem> {
  const query: ListTasksQuery = {
    status: "pending",
    priority: ["high", "medium"],
    tag: ["home"],
    sort: "-due_at",
    limit: 20,
    cursor: undefined, // a query parameter is absent or a string, never null
  };
  const { data, error } = await api.GET("/api/{user_id}/tasks", { params: { path: { user_id: "me" }, query } });
  const errorIsTyped: IsAny<typeof error> = false;
  const dataIsTyped: IsAny<typeof data> = false;
  void errorIsTyped;
  void dataIsTyped;
  if (error !== undefined) {
    const problem: Problem = error;
    const code: string = error.code;
    const requestId: string = error.request_id;
    // @ts-expect-error -- an error is a Problem, which has no `message`
    void error.message;
    console.error(code, requestId, describeProblem(problem));
    return problem;
  }
  const title: string | undefined = data.data.length > 0 ? data.data[0].title : undefined;
  const next: string | null = data.meta.next_cursor;
  // @ts-expect-error -- `completed` is a boolean, not a string
  const wrong: string = data.data[0].completed;
  void wrong;
  return { title, next };
}

export async function addTask(title: string): Promise<Task> {
  // Only `title` is required: every other field has a default.
  const body: NewTask = { title, tags: ["home"], due_at: "2026-12-01T17:00:00Z" };
  const { data, error, response } = await api.POST("/api/{user_id}/tasks", {
    params: { path: { user_id: "me" }, header: { "Idempotency-Key": crypto.randomUUID() } },
    body,
  });
  if (error) {
    throw new Error(`${response.status} ${error.code} (request ${error.request_id}): ${error.detail}`);
  }
  return data;
}

export async function wrongCalls(): Promise<void> {
  await api.GET("/api/{user_id}/tasks", {
    // @ts-expect-error -- "urgent" is not a priority
    params: { path: { user_id: "me" }, query: { priority: ["urgent"] } },
  });
  await api.POST("/api/{user_id}/tasks", {
    params: { path: { user_id: "me" } },
    // @ts-expect-error -- a title is a string
    body: { title: 42 },
  });
  // @ts-expect-error -- no such route
  await api.GET("/api/{user_id}/todos", { params: { path: { user_id: "me" } } });
}
