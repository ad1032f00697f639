// Drives Debian's headless Chromium (never a downloaded browser) through the SPA flow in spa.js.
//
//   node run.mjs <spa_url> <api_url>
//
// Opens <spa_url> (spa.html, served from another origin than the API), runs
// window.todoSpa.run(<api_url>) in the page and prints ONE JSON line to stdout: what each step
// saw, the browser's console errors (CORS refusals are reported there) and failed requests.
// Host names under .test (RFC 6761) resolve to 127.0.0.1 inside the browser, so the test can use
// realistic host names (app.todo.test, api.todo.test) without touching /etc/hosts.
// Exit code 0 whenever the flow ran (the Python test judges the result), 2 on driver errors.
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const TIMEOUT_MS = Number(process.env.BROWSER_TIMEOUT_MS || 60_000);
const ARGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--host-resolver-rules=MAP *.test 127.0.0.1",
];

function fingerprint(value) {
  return createHash("sha256").update(value).digest("hex").slice(0, 12);
}

async function main() {
  const [spaUrl, apiUrl] = process.argv.slice(2);
  if (!spaUrl || !apiUrl) {
    console.error("usage: node run.mjs <spa_url> <api_url>");
    return 2;
  }
  const userDataDir = await mkdtemp(join(tmpdir(), "todo-api-chromium-"));
  let context = null;
  try {
    // A persistent context so the profile is our fresh temporary directory (Playwright refuses a
    // --user-data-dir argument); headless: true adds --headless, ARGS make it --headless=new.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ARGS,
      timeout: TIMEOUT_MS,
    });
    context.setDefaultTimeout(TIMEOUT_MS);
    const consoleErrors = [];
    const failedRequests = [];
    const pageErrors = [];
    // The browser's view of the refresh cookie: JS in the page cannot see an httpOnly cookie.
    await context.exposeFunction("inspectCookieJar", async () =>
      (await context.cookies())
        .filter((cookie) => cookie.name === "refresh_token")
        .map((cookie) => ({
          domain: cookie.domain,
          path: cookie.path,
          httpOnly: cookie.httpOnly,
          secure: cookie.secure,
          sameSite: cookie.sameSite,
          value_sha256: fingerprint(cookie.value),
        })),
    );
    const page = context.pages()[0] ?? (await context.newPage());
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    page.on("pageerror", (error) => pageErrors.push(String(error)));
    page.on("requestfailed", (request) =>
      failedRequests.push({
        method: request.method(),
        url: request.url(),
        failure: request.failure()?.errorText ?? null,
      }),
    );
    const navigation = await page.goto(spaUrl, { waitUntil: "load" });
    if (!navigation || !navigation.ok()) {
      throw new Error(`could not load ${spaUrl}: ${navigation ? navigation.status() : "no response"}`);
    }
    await page.waitForFunction(() => Boolean(window.todoSpa));
    const result = await page.evaluate((api) => window.todoSpa.run(api), apiUrl);
    // Let late console messages (they arrive asynchronously over the protocol) land.
    await page.waitForTimeout(200);
    const userAgent = await page.evaluate(() => navigator.userAgent);
    process.stdout.write(
      `${JSON.stringify({
        ...result,
        user_agent: userAgent,
        console_errors: consoleErrors,
        failed_requests: failedRequests,
        page_errors: pageErrors,
      })}\n`,
    );
    return 0;
  } finally {
    if (context) await context.close().catch(() => {});
    await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(`run.mjs: ${error && error.stack ? error.stack : error}`);
    process.exitCode = 2;
  },
);
