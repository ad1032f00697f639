// Runs client.ts's `undoAndFollow` against a live server on a fresh account:
//   npm run sync-check -- http://127.0.0.1:8000
// (client.ts is compiled to generated/js first; the Python test only type-checks it.)
import createClient from "openapi-fetch";

import { undoAndFollow } from "./generated/js/client.js";

const baseUrl = process.argv[2] ?? "http://127.0.0.1:8000";
const signup = await fetch(`${baseUrl}/api/auth/signup`, {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ email: `sync-${crypto.randomUUID()}@example.com`, password: "correct horse battery staple" }),
});
if (signup.status !== 201) throw new Error(`signup answered ${signup.status}: ${await signup.text()}`);
const { access_token: token } = await signup.json();
const client = createClient({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
for (const event of await undoAndFollow(client)) console.log(event.position, event.type, event.subject);
console.log("sync-check: ok");
