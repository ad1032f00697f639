// The todo-api client an SPA imports: openapi-fetch over the types generated from the repository's
// openapi.json (src/generated/api.d.ts, `npm run generate`), plus what every SPA writes by hand:
// - a 401 refreshes the session once and replays the request; one refresh at a time in the page and
//   across tabs (navigator.locks when present; BroadcastChannel hands the new tokens to the other tabs),
//   because refresh tokens rotate and a second use of a spent one ends the session on purpose;
// - If-Match is sent from the last ETag seen for the resource a write names;
// - cursors are followed as async iterators;
// - a problem+json answer is thrown as a typed `ProblemError`.
import createClient, { type Client, type Middleware } from "openapi-fetch";

import type { components, operations, paths } from "./generated/api.js";

export type { components, operations, paths };
export type Problem = components["schemas"]["Problem"];
export type ProblemCode = Problem["code"];
export type Task = components["schemas"]["TaskOut"];
export type TaskList = components["schemas"]["ListOut"];
export type NewTask = operations["createTask"]["requestBody"]["content"]["application/json"];
export type Summary = components["schemas"]["SummaryOut"];
export type Api = Client<paths>;

/** A problem+json answer, thrown: `code` is the server's stable machine code, `problem` the whole body. */
export class ProblemError extends Error {
  readonly status: number;
  readonly code: ProblemCode;
  readonly requestId: string | undefined;

  constructor(
    readonly problem: Problem,
    readonly response?: Response,
  ) {
    super(`${problem.status} ${problem.code}: ${problem.detail}`);
    this.name = "ProblemError";
    this.status = problem.status;
    this.code = problem.code;
    this.requestId = problem.request_id ?? undefined;
  }

  /** The field errors of a 422, by the dotted path of each field (`body.title`). */
  get fieldErrors(): Record<string, string> {
    const found: Record<string, string> = {};
    for (const error of this.problem.errors ?? []) found[error.loc.join(".")] = error.message;
    return found;
  }
}

export function isProblem(value: unknown): value is Problem {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Problem).status === "number" &&
    typeof (value as Problem).code === "string"
  );
}

/** What openapi-fetch answers, as the data or a thrown `ProblemError`. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined) {
    if (isProblem(result.error)) throw new ProblemError(result.error, result.response);
    throw new Error(`${result.response.status} ${JSON.stringify(result.error)}`);
  }
  return result.data as T;
}

// Tokens -----------------------------------------------------------------------------------------

export interface Tokens {
  accessToken: string | null;
  /** null when the refresh token travels in the HttpOnly cookie the server sets instead. */
  refreshToken: string | null;
}

export interface TokenStore {
  get(): Tokens;
  set(tokens: Tokens): void;
}

export function memoryTokenStore(initial: Partial<Tokens> = {}): TokenStore {
  let tokens: Tokens = { accessToken: initial.accessToken ?? null, refreshToken: initial.refreshToken ?? null };
  return {
    get: () => tokens,
    set: (next) => {
      tokens = next;
    },
  };
}

interface LockManagerLike {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}

function lockManager(): LockManagerLike | undefined {
  const locks = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
  return locks && typeof locks.request === "function" ? locks : undefined;
}

// ETags ------------------------------------------------------------------------------------------

const RESOURCE = /^\/api\/[^/]+\/(tasks|lists)\/(\d+)(?:\/(?:complete|move|restore))?$/;

/** The task or list a URL names, for ETags: `/api/me/tasks/7` for `/api/<id or me>/tasks/7/move`;
 * undefined for anything else (collections, auth routes), which has no ETag to send back. */
export function resourceOf(url: string): string | undefined {
  const found = RESOURCE.exec(new URL(url).pathname);
  return found ? `/api/me/${found[1]}/${found[2]}` : undefined;
}

// The client -------------------------------------------------------------------------------------

export interface TodoClientOptions {
  baseUrl: string;
  tokens?: TokenStore;
  fetch?: typeof globalThis.fetch;
  /** Names the cross-tab lock and channel: one per API origin and account store. */
  name?: string;
  /** `include` when the refresh token is the server's HttpOnly cookie (a cross-origin SPA). */
  credentials?: RequestCredentials;
  /** The session is over (the refresh was refused): show the login screen. */
  onSessionEnded?: () => void;
}

export interface TodoClient {
  readonly api: Api;
  readonly tokens: TokenStore;
  /** The last ETag seen per resource path; a write to a path found here sends it as If-Match. */
  readonly etags: Map<string, string>;
  /** Refresh the session; concurrent callers (and tabs) share one refresh. False: log in again. */
  refresh(stale?: string | null): Promise<boolean>;
  logIn(email: string, password: string): Promise<components["schemas"]["SessionOut"]>;
  signUp(email: string, password: string, name?: string): Promise<components["schemas"]["SessionOut"]>;
  logOut(): Promise<void>;
  /** Every task the query matches, page after page (`meta.next_cursor`), as one async iterator. */
  tasks(query?: Omit<NonNullable<operations["listTasks"]["parameters"]["query"]>, "cursor">): AsyncGenerator<Task>;
  /** Every list in the person's order, page after page. */
  lists(limit?: number): AsyncGenerator<TaskList>;
  close(): void;
}

const WRITES = new Set(["PUT", "PATCH", "DELETE", "POST"]);
const AUTH_ROUTES = /\/api\/auth\/(login|signup|refresh|logout|token)$/;

export function createTodoClient(options: TodoClientOptions): TodoClient {
  const baseUrl = options.baseUrl.replace(/\/$/, "");
  const tokens = options.tokens ?? memoryTokenStore();
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const name = options.name ?? `todo-api:${baseUrl}`;
  const etags = new Map<string, string>();
  const replays = new WeakMap<Request, Request>();
  const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel(name) : undefined;
  if (channel) {
    channel.onmessage = (event: MessageEvent<{ tokens?: Tokens }>) => {
      if (event.data?.tokens) tokens.set(event.data.tokens);
    };
  }
  let inflight: Promise<boolean> | null = null;

  function keep(session: components["schemas"]["SessionOut"]): void {
    const next = { accessToken: session.access_token, refreshToken: session.refresh_token ?? null };
    tokens.set(next);
    channel?.postMessage({ tokens: next });
  }

  async function refreshNow(stale: string | null): Promise<boolean> {
    const held = tokens.get();
    // Another request or tab refreshed while this one waited for the lock: use its token.
    if (held.accessToken !== null && held.accessToken !== stale) return true;
    const response = await fetchImpl(`${baseUrl}/api/auth/refresh`, {
      method: "POST",
      headers: held.refreshToken ? { "Content-Type": "application/json" } : {},
      body: held.refreshToken ? JSON.stringify({ refresh_token: held.refreshToken }) : undefined,
      credentials: options.credentials,
    });
    if (!response.ok) {
      tokens.set({ accessToken: null, refreshToken: null });
      channel?.postMessage({ tokens: tokens.get() });
      options.onSessionEnded?.();
      return false;
    }
    keep((await response.json()) as components["schemas"]["SessionOut"]);
    return true;
  }

  function refresh(stale: string | null = tokens.get().accessToken): Promise<boolean> {
    if (inflight === null) {
      const locks = lockManager();
      const run = () => refreshNow(stale);
      inflight = (locks ? locks.request(`${name}:refresh`, run) : run()).finally(() => {
        inflight = null;
      });
    }
    return inflight;
  }

  function remember(request: Request, response: Response): void {
    // A create answers with the new object's Location: its ETag belongs there.
    const location = response.headers.get("Location");
    const resource = resourceOf(location ? new URL(location, request.url).href : request.url);
    const tag = response.headers.get("ETag");
    if (resource === undefined || !response.ok) return;
    if (request.method === "DELETE") etags.delete(resource);
    else if (tag) etags.set(resource, tag);
  }

  const middleware: Middleware = {
    onRequest({ request }) {
      const access = tokens.get().accessToken;
      if (access && !request.headers.has("Authorization")) request.headers.set("Authorization", `Bearer ${access}`);
      if (WRITES.has(request.method) && !request.headers.has("If-Match")) {
        const resource = resourceOf(request.url);
        const tag = resource === undefined ? undefined : etags.get(resource);
        if (tag) request.headers.set("If-Match", tag);
      }
      if (!AUTH_ROUTES.test(new URL(request.url).pathname)) replays.set(request, request.clone());
      return request;
    },
    async onResponse({ request, response }) {
      const replay = replays.get(request);
      if (response.status !== 401 || replay === undefined) {
        remember(request, response);
        return response;
      }
      const sent = request.headers.get("Authorization")?.replace(/^Bearer /, "") ?? null;
      if (!(await refresh(sent))) return response;
      replay.headers.set("Authorization", `Bearer ${tokens.get().accessToken}`);
      const again = await fetchImpl(replay);
      remember(replay, again);
      return again;
    },
  };

  const api = createClient<paths>({ baseUrl, fetch: fetchImpl, credentials: options.credentials });
  api.use(middleware);

  async function* tasks(
    query: Omit<NonNullable<operations["listTasks"]["parameters"]["query"]>, "cursor"> = {},
  ): AsyncGenerator<Task> {
    let cursor: string | undefined;
    do {
      const page = unwrap(
        await api.GET("/api/{user_id}/tasks", { params: { path: { user_id: "me" }, query: { ...query, cursor } } }),
      );
      yield* page.data;
      cursor = page.meta.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }

  async function* lists(limit = 100): AsyncGenerator<TaskList> {
    let cursor: string | undefined;
    do {
      const page = unwrap(
        await api.GET("/api/{user_id}/lists", { params: { path: { user_id: "me" }, query: { limit, cursor } } }),
      );
      yield* page.data;
      cursor = page.meta.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }

  return {
    api,
    tokens,
    etags,
    refresh,
    tasks,
    lists,
    async logIn(email, password) {
      const session = unwrap(await api.POST("/api/auth/login", { body: { email, password } }));
      keep(session);
      return session;
    },
    async signUp(email, password, name) {
      const session = unwrap(await api.POST("/api/auth/signup", { body: { email, password, name } }));
      keep(session);
      return session;
    },
    async logOut() {
      const held = tokens.get();
      await api.POST("/api/auth/logout", { body: held.refreshToken ? { refresh_token: held.refreshToken } : undefined });
      tokens.set({ accessToken: null, refreshToken: null });
      channel?.postMessage({ tokens: tokens.get() });
    },
    close() {
      channel?.close();
    },
  };
}
