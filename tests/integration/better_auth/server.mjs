// Real Better Auth server for the todo-api Python integration tests.
//
//   node server.mjs --port 0      (0 = pick a free port)
//
// Serves Better Auth (email+password, jwt plugin at defaults, in-memory DB) on
// http://127.0.0.1:PORT/api/auth, signs up one user, fetches a JWT for it from
// GET /api/auth/token and prints ONE JSON line to stdout. Then keeps serving
// until SIGTERM/SIGINT, or until stdin closes when stdin is a pipe.
import fs from "node:fs";
import http from "node:http";
import { parseArgs } from "node:util";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins";

const { values: args } = parseArgs({ options: { port: { type: "string", default: "0" } } });
const HOST = "127.0.0.1";
const SECRET = "todo-api-integration-test-secret-not-for-production-0123456789";
const USER = {
  email: "integration-user@example.com",
  password: "integration-password-123",
  name: "Integration User",
};

const fail = (err) => {
  console.error("better-auth test server failed:", err);
  process.exit(1);
};

// The handler needs baseURL, which needs the real port, so listen first.
let handler = (_req, res) => res.writeHead(503).end();
const server = http.createServer((req, res) => handler(req, res));
server.on("error", fail);
await new Promise((resolve) => server.listen(Number(args.port), HOST, resolve));
const baseURL = `http://${HOST}:${server.address().port}`;

const auth = betterAuth({
  baseURL,
  basePath: "/api/auth",
  secret: SECRET,
  // The memory adapter expects every model's table to exist; "jwks" is the jwt plugin's.
  database: memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] }),
  emailAndPassword: { enabled: true },
  plugins: [jwt()],
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
});
handler = toNodeHandler(auth);

async function call(path, init) {
  const res = await fetch(`${baseURL}/api/auth${path}`, init);
  if (!res.ok) throw new Error(`${init?.method ?? "GET"} ${path} -> ${res.status} ${await res.text()}`);
  return res;
}

try {
  const signUp = await call("/sign-up/email", {
    method: "POST",
    headers: { "content-type": "application/json", origin: baseURL },
    body: JSON.stringify(USER),
  });
  // Keep only "name=value" of each Set-Cookie (session token + any signed data).
  const cookie = signUp.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  const { token } = await (await call("/token", { headers: { cookie } })).json();
  const claims = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());

  process.stdout.write(
    JSON.stringify({
      ready: true,
      base_url: baseURL,
      jwks_url: `${baseURL}/api/auth/jwks`,
      issuer: claims.iss,
      audience: claims.aud,
      token,
      user_id: claims.sub,
      email: USER.email,
      password: USER.password,
    }) + "\n",
  );
} catch (err) {
  fail(err);
}

function shutdown() {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref(); // don't wait long for keep-alive sockets
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
// Die with the parent: if stdin is a pipe (e.g. Popen(stdin=PIPE)), exit when it closes.
// Not done for /dev/null or a TTY, where stdin would be "closed" immediately / never.
if (fs.fstatSync(0).isFIFO()) {
  process.stdin.on("end", shutdown).on("error", shutdown).resume();
}
