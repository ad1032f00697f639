// The client against a live server (TODO_API_URL; tests/integration/test_typescript_client.py starts one).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, test } from "node:test";

import { createTodoClient, memoryTokenStore, ProblemError, type TodoClient } from "../src/index.js";

const BASE_URL = process.env.TODO_API_URL ?? "http://127.0.0.1:8000";
const PASSWORD = "correct horse battery staple";

/** A fetch that counts the requests to each path, so a test can tell how many refreshes were sent. */
function countingFetch(): { fetch: typeof fetch; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const counting: typeof fetch = (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const path = new URL(url).pathname;
    calls.set(path, (calls.get(path) ?? 0) + 1);
    return fetch(input, init);
  };
  return { fetch: counting, calls };
}

async function newAccount(options: { fetch?: typeof fetch } = {}): Promise<TodoClient> {
  const client = createTodoClient({ baseUrl: BASE_URL, name: `test-${randomUUID()}`, ...options });
  await client.signUp(`ts-${randomUUID()}@example.com`, PASSWORD, "Ada");
  return client;
}

describe("the typed client on a live server", () => {
  test("creates and reads a task with only a title (priority and completed have defaults)", async () => {
    const client = await newAccount();
    const { data, error } = await client.api.POST("/api/{user_id}/tasks", {
      params: { path: { user_id: "me" } },
      body: { title: "Water the plants" },
    });
    assert.equal(error, undefined);
    assert.equal(data?.priority, "none");
    assert.equal(data?.completed, false);
    client.close();
  });

  test("follows the cursors of a listing as an async iterator", async () => {
    const client = await newAccount();
    const titles = Array.from({ length: 45 }, (_, n) => `Task ${String(n).padStart(2, "0")}`);
    const bulk = titles.map((title) =>
      client.api.POST("/api/{user_id}/tasks", { params: { path: { user_id: "me" } }, body: { title } }),
    );
    await Promise.all(bulk);
    const seen: string[] = [];
    for await (const task of client.tasks({ limit: 10, sort: "title" })) seen.push(task.title);
    assert.deepEqual(seen, titles);
    const lists = [];
    for await (const list of client.lists(1)) lists.push(list.name);
    assert.deepEqual(lists, ["Inbox"]);
    client.close();
  });

  test("throws a problem as a typed ProblemError with its code and request id", async () => {
    const client = await newAccount();
    await assert.rejects(
      async () => {
        const result = await client.api.GET("/api/{user_id}/tasks/{task_id}", {
          params: { path: { user_id: "me", task_id: 999_999 } },
        });
        if (result.error) throw new ProblemError(result.error, result.response);
      },
      (error: unknown) => {
        assert.ok(error instanceof ProblemError);
        assert.equal(error.status, 404);
        assert.equal(error.code, "task_not_found");
        assert.match(error.requestId ?? "", /^[0-9a-f]{32}$/);
        return true;
      },
    );
    client.close();
  });

  test("sends If-Match from the last ETag, so a write over someone else's change is a 412", async () => {
    const client = await newAccount();
    const created = await client.api.POST("/api/{user_id}/tasks", {
      params: { path: { user_id: "me" } },
      body: { title: "Shared" },
    });
    const id = created.data!.id;
    const path = { user_id: "me", task_id: id };
    assert.equal(client.etags.get(`/api/me/tasks/${id}`), '"1"'); // from the create's Location and ETag
    assert.equal(client.etags.get("/api/me/tasks"), undefined); // a collection has none

    // Another device (same account, its own client and ETags) changes the task meanwhile.
    const other = createTodoClient({ baseUrl: BASE_URL, tokens: memoryTokenStore(client.tokens.get()) });
    await other.api.PATCH("/api/{user_id}/tasks/{task_id}", { params: { path }, body: { title: "Theirs" } });

    const stale = await client.api.PATCH("/api/{user_id}/tasks/{task_id}", { params: { path }, body: { title: "Mine" } });
    assert.equal(stale.response.status, 412);
    assert.equal(stale.error?.code, "precondition_failed");
    await client.api.GET("/api/{user_id}/tasks/{task_id}", { params: { path } }); // re-read: the ETag moves on
    const fresh = await client.api.PATCH("/api/{user_id}/tasks/{task_id}", { params: { path }, body: { title: "Mine" } });
    assert.equal(fresh.response.status, 200);
    assert.equal(client.etags.get(`/api/me/tasks/${id}`), '"3"');
    client.close();
    other.close();
  });

  test("a 401 refreshes once for many concurrent requests and replays each of them", async () => {
    const { fetch: counting, calls } = countingFetch();
    const client = await newAccount({ fetch: counting });
    const { refreshToken } = client.tokens.get();
    client.tokens.set({ accessToken: "expired-or-forged", refreshToken });

    const answers = await Promise.all(
      Array.from({ length: 5 }, () => client.api.GET("/api/{user_id}/tasks", { params: { path: { user_id: "me" } } })),
    );

    assert.deepEqual(
      answers.map((answer) => answer.response.status),
      [200, 200, 200, 200, 200],
    );
    assert.equal(calls.get("/api/auth/refresh"), 1);
    assert.notEqual(client.tokens.get().refreshToken, refreshToken); // rotated
    client.close();
  });

  test("a refused refresh ends the session: the 401 comes back and the tokens are cleared", async () => {
    let ended = 0;
    const client = createTodoClient({ baseUrl: BASE_URL, onSessionEnded: () => ended++ });
    await client.signUp(`ts-${randomUUID()}@example.com`, PASSWORD);
    await client.logOut();
    client.tokens.set({ accessToken: "stale", refreshToken: "spent" });

    const answer = await client.api.GET("/api/{user_id}/tasks", { params: { path: { user_id: "me" } } });

    assert.equal(answer.response.status, 401);
    assert.deepEqual(client.tokens.get(), { accessToken: null, refreshToken: null });
    assert.equal(ended, 1);
    client.close();
  });

  test("the summary, complete-all and clear completed are typed calls", async () => {
    const client = await newAccount();
    for (const title of ["One", "Two"]) {
      await client.api.POST("/api/{user_id}/tasks", { params: { path: { user_id: "me" } }, body: { title } });
    }
    const done = await client.api.POST("/api/{user_id}/tasks/complete-all", { params: { path: { user_id: "me" } } });
    assert.equal(done.data?.count, 2);
    const summary = await client.api.GET("/api/{user_id}/summary", {
      params: { path: { user_id: "me" }, query: { tz: "Europe/Paris" } },
    });
    assert.equal(summary.data?.all.completed, 2);
    const cleared = await client.api.DELETE("/api/{user_id}/tasks", {
      params: { path: { user_id: "me" }, query: { status: "completed" } },
    });
    assert.equal(cleared.data?.count, 2);
    client.close();
  });
});
