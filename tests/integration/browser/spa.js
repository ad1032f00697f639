// The SPA flow, as a browser SPA on another origin would run it against the API: every call is a
// cross-origin fetch with credentials: 'include'; the refresh token only ever travels in the
// httpOnly cookie (the flow never reads or sends refresh_token from a body).
//
// window.todoSpa.run(apiUrl) returns {origin, steps}. Each step is what the page could see:
// {status, ...} when fetch resolved, or {error: {name, message}} when the browser refused it.
// The flow stops at the first refused or unexpected step. window.inspectCookieJar, when the
// driver exposes it, reports the browser's cookie jar for the API (JS cannot read httpOnly cookies).
"use strict";

(() => {
  class Unexpected extends Error {}

  function refused(error) {
    return { error: { name: error.name, message: String(error.message) } };
  }

  async function jar() {
    return typeof window.inspectCookieJar === "function" ? await window.inspectCookieJar() : null;
  }

  async function readJson(response) {
    const type = response.headers.get("Content-Type") || "";
    return type.includes("json") ? await response.json() : null;
  }

  function refreshCookieVisibleToJs() {
    return document.cookie.split(";").some((pair) => pair.trim().startsWith("refresh_token="));
  }

  async function run(apiUrl) {
    const api = apiUrl.replace(/\/$/, "");
    const steps = {};
    const result = { origin: window.location.origin, api, steps };
    let accessToken = null;

    async function call(method, path, { body, headers = {}, auth = true } = {}) {
      const init = { method, credentials: "include", headers: { ...headers } };
      if (auth && accessToken) init.headers.Authorization = `Bearer ${accessToken}`;
      if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      return await fetch(`${api}${path}`, init);
    }

    async function step(name, action) {
      try {
        steps[name] = await action();
      } catch (error) {
        steps[name] = refused(error);
        throw new Unexpected(name);
      }
      if (steps[name].expected === false) throw new Unexpected(name);
    }

    // A "simple" request (no preflight): the server answers either way; the browser decides
    // whether the page may read the answer.
    try {
      const response = await fetch(`${api}/healthz`, { credentials: "include" });
      steps.healthz = { status: response.status, body: await readJson(response) };
    } catch (error) {
      steps.healthz = refused(error);
    }

    const suffix = `${Date.now()}-${Math.random().toString(16).slice(2, 10)}`;
    const email = `spa-${suffix}@example.com`;
    result.email = email;
    try {
      await step("signup", async () => {
        const response = await call("POST", "/api/auth/signup", {
          body: { email, password: `Spa-flow ${suffix} correct horse`, name: "SPA" },
          auth: false,
        });
        const body = await readJson(response);
        accessToken = body && body.access_token;
        return {
          expected: response.status === 201 && Boolean(accessToken),
          status: response.status,
          has_access_token: Boolean(accessToken),
          refresh_cookie_visible_to_js: refreshCookieVisibleToJs(),
          document_cookie: document.cookie,
          jar: await jar(),
        };
      });

      let task = null;
      let etag = null;
      await step("create", async () => {
        const response = await call("POST", "/api/me/tasks", {
          body: { title: "Buy milk from the SPA", tags: ["browser"] },
          // crypto.randomUUID() needs a secure context, which a plain-http test origin is not.
          headers: { "Idempotency-Key": `spa-create-${suffix}` },
        });
        task = await readJson(response);
        etag = response.headers.get("ETag");
        return {
          expected: response.status === 201,
          status: response.status,
          etag,
          request_id: response.headers.get("X-Request-ID"),
          location: response.headers.get("Location"),
          // Not exposed: the page must not see it, or reading ETag above would prove nothing.
          unexposed_x_frame_options: response.headers.get("X-Frame-Options"),
          task_id: task && task.id,
        };
      });

      await step("list", async () => {
        const sentRequestId = `spa-list-${suffix}`;
        const response = await call("GET", "/api/me/tasks?limit=10", { headers: { "X-Request-ID": sentRequestId } });
        const page = await readJson(response);
        return {
          expected: response.status === 200,
          status: response.status,
          titles: page ? page.data.map((item) => item.title) : null,
          request_id_echoed: response.headers.get("X-Request-ID") === sentRequestId,
        };
      });

      await step("toggle", async () => {
        const response = await call("PATCH", `/api/me/tasks/${task.id}/complete`, { headers: { "If-Match": etag } });
        const toggled = await readJson(response);
        const staleEtag = etag;
        etag = response.headers.get("ETag");
        // The stale tag again: 412, and the page can read the current ETag to retry with.
        const stale = await call("PATCH", `/api/me/tasks/${task.id}/complete`, {
          headers: { "If-Match": staleEtag },
        });
        const problem = await readJson(stale);
        return {
          expected: response.status === 200,
          status: response.status,
          completed: toggled && toggled.completed,
          etag,
          stale_status: stale.status,
          stale_code: problem && problem.code,
          stale_current_etag: stale.headers.get("ETag"),
        };
      });

      await step("refresh", async () => {
        const before = accessToken;
        const response = await fetch(`${api}/api/auth/refresh`, { method: "POST", credentials: "include" });
        const body = await readJson(response);
        accessToken = body && body.access_token;
        const me = accessToken ? await call("GET", "/api/auth/me") : null;
        return {
          expected: response.status === 200 && Boolean(accessToken),
          status: response.status,
          has_access_token: Boolean(accessToken),
          new_access_token: Boolean(accessToken) && accessToken !== before,
          me_status: me && me.status,
          refresh_cookie_visible_to_js: refreshCookieVisibleToJs(),
          jar: await jar(),
        };
      });

      await step("logout", async () => {
        const response = await fetch(`${api}/api/auth/logout`, { method: "POST", credentials: "include" });
        return { expected: response.status === 204, status: response.status, jar: await jar() };
      });

      await step("refresh_after_logout", async () => {
        const response = await fetch(`${api}/api/auth/refresh`, { method: "POST", credentials: "include" });
        const problem = await readJson(response);
        return { expected: response.status === 401, status: response.status, code: problem && problem.code };
      });
    } catch (error) {
      if (!(error instanceof Unexpected)) throw error;
      result.stopped_at = error.message;
    }
    return result;
  }

  window.todoSpa = { run };
  document.getElementById("log").textContent = "ready";
})();
