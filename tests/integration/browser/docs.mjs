// Loads the API's documentation pages in Debian's headless Chromium with every request to another
// host refused (as on a machine without internet), and reports what rendered.
//
//   node docs.mjs <base_url>
//
// Prints ONE JSON line: for /docs (Swagger UI) and /redoc, the operations shown, the requests that
// tried to leave the API's host, failed requests and page errors. Exit code 0 whenever the pages
// were visited (the Python test judges the result), 2 on driver errors.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const TIMEOUT_MS = Number(process.env.BROWSER_TIMEOUT_MS || 60_000);
const ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

async function visit(context, url, selector, read) {
  const page = await context.newPage();
  const pageErrors = [];
  const failedRequests = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.on("requestfailed", (request) => failedRequests.push(request.url()));
  const response = await page.goto(url, { waitUntil: "load" });
  let operations = [];
  let rendered = true;
  try {
    await page.waitForSelector(selector, { timeout: TIMEOUT_MS / 2 });
    operations = await page.$$eval(selector, read);
  } catch {
    rendered = false;
  }
  await page.close();
  return { status: response ? response.status() : null, rendered, operations, page_errors: pageErrors, failed_requests: failedRequests };
}

async function main() {
  const [base] = process.argv.slice(2);
  if (!base) {
    console.error("usage: node docs.mjs <base_url>");
    return 2;
  }
  const allowed = new URL(base).host;
  const userDataDir = await mkdtemp(join(tmpdir(), "todo-api-docs-"));
  let context = null;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, args: ARGS, timeout: TIMEOUT_MS,
    });
    const outside = [];
    await context.route("**/*", (route) => {
      const url = new URL(route.request().url());
      if (url.host === allowed || url.protocol === "data:" || url.protocol === "blob:") return route.continue();
      outside.push(url.href);
      return route.abort("internetdisconnected");
    });
    const swagger = await visit(context, `${base}/docs`, ".opblock .opblock-summary-path",
      (nodes) => nodes.map((node) => node.getAttribute("data-path") || node.textContent.trim()));
    swagger.outside_requests = outside.splice(0);
    const redoc = await visit(context, `${base}/redoc`, "[data-section-id^='operation/']",
      (nodes) => nodes.map((node) => node.getAttribute("data-section-id")));
    redoc.outside_requests = outside.splice(0);
    process.stdout.write(`${JSON.stringify({ swagger, redoc })}\n`);
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
    console.error(`docs.mjs: ${error && error.stack ? error.stack : error}`);
    process.exitCode = 2;
  },
);
