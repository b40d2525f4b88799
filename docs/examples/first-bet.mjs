// First BET from Node.js (18+), no dependencies: sign, POST, print the answer.
// Needs HUB_URL, HUB_CLIENT_ID, HUB_CLIENT_SECRET (after `make up`: `set -a; source .hub/env; set +a`).
// Run: node docs/examples/first-bet.mjs [playerId]
import { createHmac, randomUUID } from "node:crypto";

const { HUB_URL, HUB_CLIENT_ID, HUB_CLIENT_SECRET } = process.env;
const player = process.argv[2] ?? "demo-alice";
const refId = `bet-${randomUUID()}`;

// X-Signature = "sha256=" + hex HMAC-SHA256(secret, "{timestamp}.{METHOD}.{path_with_query}.{raw_body}")
function sign(method, path, body) {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const mac = createHmac("sha256", HUB_CLIENT_SECRET).update(`${timestamp}.${method}.${path}.${body}`);
  return { "X-Client-Id": HUB_CLIENT_ID, "X-Timestamp": timestamp, "X-Signature": `sha256=${mac.digest("hex")}` };
}

const path = "/v1/transactions";
const body = JSON.stringify({ refId, type: "BET", playerId: player, amountCents: 100, currency: "EUR" });
// The exact string that was signed is sent; a retry reuses the Idempotency-Key (here: the refId).
const response = await fetch(HUB_URL + path, {
  method: "POST",
  headers: { ...sign("POST", path, body), "Content-Type": "application/json", "Idempotency-Key": refId },
  body,
});
console.log(response.status, JSON.stringify(await response.json()));
process.exit(response.status === 201 || response.status === 202 ? 0 : 1);
