/**
 * Story: an attacker posts an endless, unsigned, chunked body to the Stripe webhook (and an
 * oversized one to the metering endpoint), hoping the function buffers it all before it looks
 * at it. Bodies are counted while they stream: a declared Content-Length above the cap is
 * refused before a byte is read, a chunked body is cut at the cap, and the answer is 413
 * payload_too_large (1 MB for stripe-webhook, 64 kB for usage).
 */
import { createWebhookHandler } from "../stripe-webhook/handler.ts";
import { parseUsageRequest } from "../usage/handler.ts";
import { assert, assertEquals, errorOf } from "./_support/assert.ts";
import { testEnv } from "./_support/stripe/billing_db.ts";

const MB = 1024 * 1024;
const CHUNK = 64 * 1024;
/** Where the test gives up on a handler that keeps reading (it would otherwise read forever). */
const SAFETY_STOP = 64 * MB;

/** A body that yields 64 kB chunks for as long as someone reads, and records what was read. */
function endlessBody() {
  const seen = { bytes: 0, cancelled: false };
  const chunk = new Uint8Array(CHUNK).fill(0x7b); // "{{{{..."
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (seen.bytes >= SAFETY_STOP) {
        controller.close();
        return;
      }
      seen.bytes += CHUNK;
      controller.enqueue(chunk);
    },
    cancel() {
      seen.cancelled = true;
    },
  }, { highWaterMark: 0 }); // nothing is produced until the handler reads
  return { stream, seen };
}

const webhook = createWebhookHandler({ env: testEnv(), log: () => {} });

function webhookPost(body: BodyInit, headers: Record<string, string> = {}): Request {
  return new Request("http://127.0.0.1:54321/functions/v1/stripe-webhook", {
    method: "POST",
    headers: { "stripe-signature": "t=1,v1=00", "content-type": "application/json", ...headers },
    body,
  });
}

Deno.test("an endless chunked unsigned POST to stripe-webhook is cut at 1 MB and answered 413", async () => {
  const { stream, seen } = endlessBody();
  const response = await webhook(webhookPost(stream));
  const body = await response.json();
  assertEquals(response.status, 413, JSON.stringify(body));
  assertEquals(body.error.code, "payload_too_large");
  assert(seen.bytes <= MB + CHUNK, `read ${seen.bytes} bytes: no more than the cap and one chunk`);
  assert(seen.cancelled, "the rest of the stream is cancelled, not drained");
});

Deno.test("a Content-Length above 1 MB is refused before the body is read", async () => {
  const { stream, seen } = endlessBody();
  const response = await webhook(webhookPost(stream, { "content-length": String(300 * MB) }));
  assertEquals(response.status, 413);
  assertEquals((await response.json()).error.code, "payload_too_large");
  assertEquals(seen.bytes, 0, "not one chunk was pulled");
});

Deno.test("a body of exactly 1 MB is still read and judged by its signature", async () => {
  const response = await webhook(webhookPost(new Uint8Array(MB).fill(0x20)));
  assertEquals(response.status, 400);
  assertEquals((await response.json()).error.code, "invalid_signature");
});

Deno.test("the usage function cuts an endless chunked body at 64 kB the same way", async () => {
  const { stream, seen } = endlessBody();
  const request = new Request("http://127.0.0.1:54321/functions/v1/usage", { method: "POST", body: stream });
  const error = errorOf(await parseUsageRequest(request));
  assertEquals([error.code, error.status], ["payload_too_large", 413]);
  assert(seen.bytes <= 64 * 1024 + CHUNK, `read ${seen.bytes} bytes`);
  assert(seen.cancelled, "the rest of the stream is cancelled");
});
