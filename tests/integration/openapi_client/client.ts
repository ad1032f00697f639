// What the SPA team writes against the generated types. Type-checked by
// tests/integration/test_openapi_contract.py after it regenerates generated/api.d.ts from
// /openapi.json, so a change to the API that breaks this code fails the Python test suite.
// `undoAndFollow` at the end also runs against a live server: `npm run sync-check` (README.md).
import createClient, { type Client } from "openapi-fetch";

import type { components, operations, paths } from "./generated/api.d.ts";

type Problem = components["schemas"]["Problem"];
type Task = components["schemas"]["TaskOut"];
/** Operation ids are the names the SPA reads: listTasks, createTask, toggleTaskCompletion, ... */
type ListTasksQuery = NonNullable<operations["listTasks"]["parameters"]["query"]>;
type NewTask = operations["createTask"]["requestBody"]["content"]["application/json"];
type TaskList = components["schemas"]["ListOut"];
type NewList = operations["createList"]["requestBody"]["content"]["application/json"];
type ListChange = operations["updateList"]["requestBody"]["content"]["application/json"];
type Move = operations["moveTask"]["requestBody"]["content"]["application/json"];
type BulkChange = operations["bulkChangeTasks"]["requestBody"]["content"]["application/json"];
type BulkResult = components["schemas"]["BulkResultOut"];
type BulkProblem = components["schemas"]["BulkProblem"];
type CloudEvent = components["schemas"]["CloudEvent"];
type Tombstone = components["schemas"]["Tombstone"];
type ChangesQuery = NonNullable<operations["listChanges"]["parameters"]["query"]>;
type Api = Client<paths>;

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

// Lists ------------------------------------------------------------------------------------------

/** The sidebar: every list, in the person's order, each with its counts. */
export async function allLists(): Promise<{ inbox: TaskList | undefined; lists: TaskList[] }> {
  const lists: TaskList[] = [];
  let cursor: string | undefined;
  do {
    const { data, error } = await api.GET("/api/{user_id}/lists", {
      params: { path: { user_id: "me" }, query: { limit: 100, cursor } },
    });
    if (error) {
      throw new Error(describeProblem(error));
    }
    const listsAreTyped: IsAny<typeof data.data> = false;
    void listsAreTyped;
    lists.push(...data.data);
    cursor = data.meta.next_cursor ?? undefined;
  } while (cursor !== undefined);
  const badge: number = lists.length > 0 ? lists[0].open_count : 0;
  const total: number = lists.length > 0 ? lists[0].total_count : 0;
  void [badge, total];
  return { inbox: lists.find((list) => list.is_inbox), lists };
}

export async function addList(name: string): Promise<TaskList | "name_taken"> {
  const body: NewList = { name, color: "green" }; // a palette name, or "#rrggbb"
  const { data, error, response } = await api.POST("/api/{user_id}/lists", {
    params: { path: { user_id: "me" } },
    body,
  });
  if (error) {
    if (error.code === "list_name_taken") {
      return "name_taken";
    }
    throw new Error(`${response.status} ${describeProblem(error)}`);
  }
  const colour: string | null = data.color;
  void colour;
  return data;
}

/** Rename with the ETag the list was read with: a 412 means someone changed it meanwhile. */
export async function renameList(list: TaskList, etag: string, name: string): Promise<TaskList | "changed"> {
  const change: ListChange = { name };
  const { data, error, response } = await api.PATCH("/api/{user_id}/lists/{list_id}", {
    params: { path: { user_id: "me", list_id: list.id }, header: { "if-match": etag } },
    body: change,
  });
  if (error) {
    if (response.status === 412) {
      return "changed"; // re-read it (getList) and ask again
    }
    throw new Error(describeProblem(error));
  }
  return data;
}

export async function uncolourList(list: TaskList): Promise<TaskList> {
  const { data, error } = await api.PATCH("/api/{user_id}/lists/{list_id}", {
    params: { path: { user_id: "me", list_id: list.id } },
    body: { color: null }, // null clears the colour
  });
  if (error) {
    throw new Error(describeProblem(error));
  }
  return data;
}

/** The sidebar's drag and drop: the list goes just below `after` (or, at the top, above `before`). */
export async function dropList(list: TaskList, etag: string, drop: { after: TaskList } | { before: TaskList }) {
  const { data, error, response } = await api.POST("/api/{user_id}/lists/{list_id}/move", {
    params: { path: { user_id: "me", list_id: list.id }, header: { "if-match": etag } },
    body: "after" in drop ? { after_id: drop.after.id } : { before_id: drop.before.id },
  });
  if (error) {
    throw new Error(`${response.status} ${describeProblem(error)}`); // 412: re-read the lists
  }
  const position: string = data.position;
  return { position, etag: response.headers.get("ETag") ?? `"${data.version}"` };
}

/** Delete a list; with tasks in it, only once the person agreed to lose them (`cascade`). */
export async function removeList(list: TaskList, confirm: (tasks: number) => boolean): Promise<boolean> {
  const remove = (cascade: boolean) =>
    api.DELETE("/api/{user_id}/lists/{list_id}", {
      params: { path: { user_id: "me", list_id: list.id }, query: { cascade } },
    });
  let { error } = await remove(false);
  if (error?.code === "list_not_empty" && confirm(list.total_count)) {
    ({ error } = await remove(true));
  }
  if (error?.code === "inbox_not_deletable") {
    return false;
  }
  if (error) {
    throw new Error(describeProblem(error));
  }
  return true;
}

// Drag and drop ----------------------------------------------------------------------------------

/** Sorting locally as the server does: positions compare code unit by code unit (they are ASCII,
 * so that is byte by byte), never with localeCompare. */
export function byPosition(a: Task, b: Task): number {
  return a.position < b.position ? -1 : a.position > b.position ? 1 : a.id - b.id;
}

/** The task was dropped just below `after` (or, at the top, just above `before`). The UI has moved it
 * already; one call, the server computes the position, and the answer's position and ETag replace the
 * optimistic ones. */
export async function dropTask(
  task: Task,
  etag: string,
  drop: { after: Task } | { before: Task },
): Promise<{ task: Task; etag: string } | "stale" | "gone"> {
  const body: Move = "after" in drop ? { after_id: drop.after.id } : { before_id: drop.before.id };
  const { data, error, response } = await api.POST("/api/{user_id}/tasks/{task_id}/move", {
    params: { path: { user_id: "me", task_id: task.id }, header: { "if-match": etag } },
    body,
  });
  if (error) {
    if (response.status === 412) {
      return "stale"; // someone changed the task: re-read the list, then let the person drop again
    }
    if (response.status === 404) {
      return "gone"; // the task or its neighbour was deleted elsewhere
    }
    throw new Error(describeProblem(error));
  }
  const position: string = data.position;
  void position;
  return { task: data, etag: response.headers.get("ETag") ?? `"${data.version}"` };
}

export async function nestOrSend(task: Task, parent: Task | null, listId: number): Promise<Task> {
  // Under `parent` (at the end of its subtasks), or to the top level of list `listId`.
  const body: Move = parent ? { parent_id: parent.id } : { list_id: listId, parent_id: null };
  const { data, error } = await api.POST("/api/{user_id}/tasks/{task_id}/move", {
    params: { path: { user_id: "me", task_id: task.id } },
    body,
  });
  if (error) {
    throw new Error(describeProblem(error)); // 422 cycle, too_deep, list_mismatch...
  }
  return data;
}

// Bulk changes -----------------------------------------------------------------------------------

/** Complete two tasks in one request; a retry with the same key cannot complete them twice. */
export async function completeBoth(first: number, second: number, key: string): Promise<BulkResult[]> {
  const body: BulkChange = { operations: [{ op: "complete", task_ids: [first, second] }] };
  const { data, error, response } = await api.POST("/api/{user_id}/tasks/bulk", {
    params: { path: { user_id: "me" }, header: { "Idempotency-Key": key } },
    body,
  });
  if (error) {
    if ("results" in error && error.results) {
      // 422 bulk_not_applied: nothing was written; each result says which task failed and why.
      const problem: BulkProblem = error;
      const failed: BulkResult[] = error.results.filter((result) => result.code !== "ok");
      console.warn(problem.code, failed.map((result) => `${result.task_id}: ${result.message}`));
      return error.results;
    }
    throw new Error(describeProblem(error));
  }
  const applied: boolean = data.applied;
  const replayed = response.headers.get("Idempotent-Replayed") === "true";
  void [applied, replayed];
  for (const result of data.results) {
    const op: "complete" | "reopen" | "delete" | "move" | "update" = result.op;
    const message: string | null = result.message;
    void [op, message];
  }
  return data.results;
}

export async function tidyUp(done: number[], later: number[], someday: number): Promise<BulkResult[]> {
  const body: BulkChange = {
    operations: [
      { op: "delete", task_ids: done },
      { op: "move", task_ids: later, list_id: someday },
      { op: "update", task_ids: later, priority: "low", add_tags: ["later"], remove_tags: ["today"], due_at: null },
    ],
    atomic: false, // apply what can be; the results say which were not
  };
  const { data, error } = await api.POST("/api/{user_id}/tasks/bulk", { params: { path: { user_id: "me" } }, body });
  if (error) {
    // @ts-expect-error -- only a bulk 422 carries `results`: narrow with `"results" in error` first
    void error.results;
    throw new Error(describeProblem(error));
  }
  return data.results.filter((result) => result.code !== "ok");
}

export async function wrongListMoveAndBulkCalls(task: Task, list: TaskList): Promise<void> {
  await api.POST("/api/{user_id}/lists", {
    params: { path: { user_id: "me" } },
    // @ts-expect-error -- a colour is a palette name or "#rrggbb", never a number
    body: { name: "Groceries", color: 0x22c55e },
  });
  await api.PATCH("/api/{user_id}/lists/{list_id}", {
    params: { path: { user_id: "me", list_id: list.id } },
    // @ts-expect-error -- a name cannot be cleared
    body: { name: null },
  });
  await api.POST("/api/{user_id}/tasks/{task_id}/move", {
    params: { path: { user_id: "me", task_id: task.id } },
    // @ts-expect-error -- a neighbour is a task id, not the task
    body: { after_id: task },
  });
  const archive: BulkChange = {
    // @ts-expect-error -- there is no `archive` operation
    operations: [{ op: "archive", task_ids: [task.id] }],
  };
  const moveNowhere: BulkChange = {
    // @ts-expect-error -- a `move` names the list the tasks go to
    operations: [{ op: "move", task_ids: [task.id] }],
  };
  const stringIds: BulkChange = {
    // @ts-expect-error -- task ids are numbers
    operations: [{ op: "complete", task_ids: [String(task.id)] }],
  };
  // @ts-expect-error -- the server computes positions; a client never sends one
  const placed: Move = { after_id: task.id, position: "a0V" };
  void [archive, moveNowhere, stringIds, placed];
}

// Keeping in sync --------------------------------------------------------------------------------

/** What the SPA holds: every task and list by id, and the sync token to follow the feed from. */
export interface Replica {
  tasks: Map<number, Task>;
  lists: Map<number, TaskList>;
  token: string;
}

/** A deletion carries a tombstone `{id, deleted_at}`; everything else, the object as the API returns it. */
function isTombstone(data: CloudEvent["data"]): data is Tombstone {
  return !("version" in data);
}

/** The reducer: events arrive in `position` order; a repeat of what a page showed is not newer by
 * `version`, so it changes nothing. A `*.restored` event re-adds what a tombstone removed. */
export function apply(replica: Replica, event: CloudEvent): void {
  const data = event.data;
  const dataIsTyped: IsAny<typeof data> = false;
  void dataIsTyped;
  if (isTombstone(data)) {
    // @ts-expect-error -- a tombstone has no version
    void data.version;
    (event.type.startsWith("task.") ? replica.tasks : replica.lists).delete(data.id);
  } else if ("title" in data) {
    const held = replica.tasks.get(data.id);
    if (held === undefined || held.version < data.version) replica.tasks.set(data.id, data);
  } else {
    const held = replica.lists.get(data.id);
    if (held === undefined || held.version < data.version) replica.lists.set(data.id, data);
  }
}

/** The first load: the first page's `meta.sync_token` is read before the page, so following the
 * feed from it misses nothing. Lists are read first: theirs is the older token, the one to keep. */
export async function loadEverything(client: Api): Promise<Replica> {
  const replica: Replica = { tasks: new Map(), lists: new Map(), token: "" };
  let listCursor: string | undefined;
  do {
    const { data, error } = await client.GET("/api/{user_id}/lists", {
      params: { path: { user_id: "me" }, query: { limit: 100, cursor: listCursor } },
    });
    if (error) throw new Error(describeProblem(error));
    replica.token ||= data.meta.sync_token ?? ""; // only the first page carries one
    for (const list of data.data) replica.lists.set(list.id, list);
    listCursor = data.meta.next_cursor ?? undefined;
  } while (listCursor !== undefined);
  let taskCursor: string | undefined;
  do {
    const { data, error } = await client.GET("/api/{user_id}/tasks", {
      params: { path: { user_id: "me" }, query: { limit: 100, cursor: taskCursor } },
    });
    if (error) throw new Error(describeProblem(error));
    for (const task of data.data) replica.tasks.set(task.id, task);
    taskCursor = data.meta.next_cursor ?? undefined;
  } while (taskCursor !== undefined);
  return replica;
}

/** Apply everything after the replica's token, page after page while `has_more`. `"expired"`: the
 * token is older than the retention window (410 `sync_token_expired`): load everything again. */
export async function catchUp(client: Api, replica: Replica): Promise<"ok" | "expired"> {
  for (;;) {
    const query: ChangesQuery = { since: replica.token, limit: 500 };
    const { data, error, response } = await client.GET("/api/{user_id}/changes", {
      params: { path: { user_id: "me" }, query },
    });
    if (error) {
      if (response.status === 410 && error.code === "sync_token_expired") return "expired";
      throw new Error(describeProblem(error));
    }
    for (const event of data.data) apply(replica, event);
    replica.token = data.meta.sync_token;
    if (!data.meta.has_more) return "ok";
  }
}

/** Delete with an undo: the answer to a restore is the task back in its place, as a new version. */
export async function undoDelete(client: Api, task: Task): Promise<Task> {
  const path = { user_id: "me", task_id: task.id };
  const removed = await client.DELETE("/api/{user_id}/tasks/{task_id}", { params: { path } });
  if (removed.error) throw new Error(describeProblem(removed.error));
  const { data, error } = await client.POST("/api/{user_id}/tasks/{task_id}/restore", { params: { path } });
  if (error) {
    // 409 deleted_with_parent / deleted_with_list: `detail` names what to restore instead.
    throw new Error(describeProblem(error));
  }
  return data;
}

/** The trash: tasks deleted on their own, latest first, each with `deleted_at`. */
export async function trash(client: Api): Promise<{ id: number; title: string; deletedAt: string | null }[]> {
  const { data, error } = await client.GET("/api/{user_id}/tasks", {
    params: { path: { user_id: "me" }, query: { deleted: true, limit: 100 } },
  });
  if (error) throw new Error(describeProblem(error));
  return data.data.map((task) => ({ id: task.id, title: task.title, deletedAt: task.deleted_at }));
}

export async function restoreSidebarList(client: Api, list: TaskList): Promise<TaskList | "name_taken"> {
  const { data, error } = await client.POST("/api/{user_id}/lists/{list_id}/restore", {
    params: { path: { user_id: "me", list_id: list.id } },
  });
  if (error) {
    if (error.code === "list_name_taken") return "name_taken"; // rename the list that has its name now
    throw new Error(describeProblem(error));
  }
  return data;
}

/** The round trip `npm run sync-check` runs on a fresh account: list (take `meta.sync_token`), create, delete
 * and restore a task, then follow the feed from the token: three events, numbered one after another, and a
 * replica that holds the restored task. Throws on any difference. */
export async function undoAndFollow(client: Api): Promise<CloudEvent[]> {
  const replica = await loadEverything(client);
  const created = await client.POST("/api/{user_id}/tasks", {
    params: { path: { user_id: "me" } },
    body: { title: "Water the plants", tags: ["home"] },
  });
  if (created.error) throw new Error(describeProblem(created.error));
  const restored = await undoDelete(client, created.data);
  if (restored.version !== created.data.version + 1 || restored.deleted_at !== null) {
    throw new Error(`restore answered version ${restored.version}, deleted_at ${restored.deleted_at}`);
  }
  if ((await trash(client)).some((gone) => gone.id === restored.id)) {
    throw new Error(`task ${restored.id} is still in the trash after its restore`);
  }

  const { data, error } = await client.GET("/api/{user_id}/changes", {
    params: { path: { user_id: "me" }, query: { since: replica.token } },
  });
  if (error) throw new Error(describeProblem(error));
  const start = Number(replica.token);
  const seen = data.data.map((event) => `${event.position} ${event.type} ${event.subject}`);
  const expected = ["task.created", "task.deleted", "task.restored"].map(
    (type, i) => `${start + i + 1} ${type} tasks/${restored.id}`,
  );
  if (seen.join("\n") !== expected.join("\n") || data.meta.sync_token !== String(start + 3) || data.meta.has_more) {
    throw new Error(`expected\n${expected.join("\n")}\ngot\n${seen.join("\n")}\nmeta ${JSON.stringify(data.meta)}`);
  }
  for (const event of data.data) apply(replica, event);
  replica.token = data.meta.sync_token;
  if (replica.tasks.get(restored.id)?.version !== restored.version) {
    throw new Error(`the replica does not hold task ${restored.id} at version ${restored.version}`);
  }
  if ((await catchUp(client, replica)) !== "ok" || replica.token !== String(start + 3)) {
    throw new Error(`catching up from ${start + 3} moved the token to ${replica.token}`);
  }
  const expired = await client.GET("/api/{user_id}/changes", {
    params: { path: { user_id: "me" }, query: { since: String(start + 1000) } },
  });
  if (expired.response.status !== 410 || expired.error?.code !== "sync_token_expired") {
    throw new Error(`a token the feed never issued answered ${expired.response.status}`);
  }
  return data.data;
}

export async function wrongSyncCalls(client: Api, event: CloudEvent): Promise<void> {
  await client.GET("/api/{user_id}/changes", {
    // @ts-expect-error -- a sync token is the string the server sent, not a number
    params: { path: { user_id: "me" }, query: { since: 42 } },
  });
  // @ts-expect-error -- there is no `task.archived` event
  const archived: CloudEvent["type"] = "task.archived";
  // @ts-expect-error -- a position is a number
  const position: string = event.position;
  void [archived, position];
}
