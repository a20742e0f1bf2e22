/**
 * Story: an account's own backend receives our webhooks. A local receiver (a Deno HTTP
 * server on 127.0.0.1, allowed by webhook_allow_loopback as in local development) stands
 * for it; the dispatcher runs `webhook.deliver` jobs against it. Time is frozen on the
 * dispatcher's connection (ledgerbase.now) to walk through backoff and the 3-day window.
 *
 * The verifier below is written from the Standard Webhooks specification, not from our
 * signer: signed content `${webhook-id}.${webhook-timestamp}.${body}`, HMAC-SHA256 keyed
 * with the base64-decoded part of the secret after `whsec_`, compared against each
 * space-separated `v1,<base64>` of webhook-signature; timestamps older or newer than 5
 * minutes are refused.
 */
import { createDb, type Sql } from "../_shared/db.ts";
import { dispatch } from "../dispatch/handler.ts";
import type { PinnedRequest } from "../dispatch/pinned_request.ts";
import { assert, assertEquals, assertMatch } from "./_support/assert.ts";
import { TEST_DB_URL } from "./_support/tokens.ts";

// ---------------------------------------------------------------------------
// The receiver's verifier (Standard Webhooks, independently written)
// ---------------------------------------------------------------------------
function base64ToBytes(b64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

async function verifyStandardWebhook(
  secret: string,
  headers: Headers,
  body: string,
  nowSeconds: number,
): Promise<boolean> {
  const id = headers.get("webhook-id");
  const timestamp = headers.get("webhook-timestamp");
  const signatures = headers.get("webhook-signature");
  if (!id || !timestamp || !signatures) return false;
  if (Math.abs(nowSeconds - Number(timestamp)) > 5 * 60) return false;
  const key = await crypto.subtle.importKey(
    "raw",
    base64ToBytes(secret.replace(/^whsec_/, "")),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  const signed = new TextEncoder().encode(`${id}.${timestamp}.${body}`);
  for (const entry of signatures.split(" ")) {
    const [version, signature] = entry.split(",");
    if (version !== "v1" || !signature) continue;
    if (await crypto.subtle.verify("HMAC", key, base64ToBytes(signature), signed)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// The receiver and the fixture
// ---------------------------------------------------------------------------
interface Received {
  headers: Headers;
  body: string;
}
type Behaviour = "ok" | "fail" | "hang";

interface Fixture {
  sql: Sql;
  accountId: string;
  url: string;
  received: Received[];
  /** What the receiver does with the next requests (then "ok"). */
  behave(...next: Behaviour[]): void;
  /** Freezes private.now() on the fixture's connection (the dispatcher uses it too). */
  freeze(at: Date): Promise<void>;
  deliver(): Promise<void>;
}

async function withReceiver(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const received: Received[] = [];
  let queue: Behaviour[] = [];
  const hung: Array<() => void> = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    received.push({ headers: request.headers, body: await request.text() });
    const behaviour = queue.shift() ?? "ok";
    if (behaviour === "fail") return new Response("boom", { status: 500 });
    if (behaviour === "hang") {
      await new Promise<void>((resolve) => hung.push(resolve));
      return new Response("too late");
    }
    return new Response("thanks");
  });
  const sql = createDb(TEST_DB_URL, { max: 1 });
  const accountId = crypto.randomUUID();
  try {
    await sql`update private.settings set value = 'true' where key = 'webhook_allow_loopback'`;
    await sql`update private.settings set value = '0.5' where key = 'webhook_timeout_seconds'`;
    await sql`
      insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                              raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      values ('00000000-0000-0000-0000-000000000000', ${accountId}, 'authenticated', 'authenticated',
              ${`hooks-${accountId}@example.test`}, '', now(), '{"provider": "email"}', '{}', now(), now())`;
    await fn({
      sql,
      accountId,
      url: `http://127.0.0.1:${server.addr.port}/hooks`,
      received,
      behave: (...next) => void (queue = next),
      freeze: async (at) => void (await sql`select set_config('ledgerbase.now', ${at.toISOString()}, false)`),
      deliver: async () => void (await dispatch(sql, { kinds: ["webhook.deliver"] })),
    });
  } finally {
    for (const resolve of hung) resolve();
    await sql`select set_config('ledgerbase.now', '', false)`;
    await sql`update private.settings set value = 'false' where key = 'webhook_allow_loopback'`;
    await sql`update private.settings set value = '10' where key = 'webhook_timeout_seconds'`;
    await sql`delete from private.jobs where kind = 'webhook.deliver'`;
    await sql`delete from auth.users where id = ${accountId}`;
    await sql.end();
    await server.shutdown();
  }
}

async function createEndpoint(f: Fixture, url = f.url): Promise<{ id: string; secret: string }> {
  const [row] = await f.sql`select public.create_webhook_endpoint(${f.accountId}::uuid, ${url}, '{*}') as e`;
  return { id: row.e.id, secret: row.e.secret };
}

/** Emits one event the natural way: an API key is created (api_key.created). */
async function createApiKey(f: Fixture): Promise<string> {
  const [row] = await f.sql`select public.create_api_key(${f.accountId}::uuid, 'webhook test') as k`;
  return row.k.id;
}

async function deliveries(f: Fixture) {
  return await f.sql`
    select status, attempt, response_status, last_error, event_id
    from public.webhook_deliveries where account_id = ${f.accountId} order by created_at, id`;
}

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

// ---------------------------------------------------------------------------
// Stories
// ---------------------------------------------------------------------------
Deno.test("a delivery is signed per Standard Webhooks and verifies", async () => {
  await withReceiver(async (f) => {
    const { secret } = await createEndpoint(f);
    const keyId = await createApiKey(f);
    await f.deliver();
    assertEquals(f.received.length, 1);
    const [hit] = f.received;
    assert(await verifyStandardWebhook(secret, hit.headers, hit.body, seconds(new Date())), "the signature verifies");
    assert(
      !(await verifyStandardWebhook(
        secret,
        hit.headers,
        hit.body.replace("webhook test", "webhook tesT"),
        seconds(new Date()),
      )),
      "a changed body does not verify",
    );
    assertMatch(hit.headers.get("webhook-id")!, /^evt_[0-9a-f]{32}$/);
    const body = JSON.parse(hit.body);
    assertEquals([body.type, body.data.api_key_id, body.data.account_id], ["api_key.created", keyId, f.accountId]);
    assertMatch(body.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    const [d] = await deliveries(f);
    assertEquals([d.status, d.attempt, d.response_status, d.event_id], [
      "delivered",
      1,
      200,
      hit.headers.get("webhook-id"),
    ]);
  });
});

Deno.test("a delivery is retried after a 500 and a timeout, with backoff, under one webhook-id", async () => {
  await withReceiver(async (f) => {
    const t0 = new Date();
    await f.freeze(t0);
    const { secret } = await createEndpoint(f);
    await createApiKey(f);
    f.behave("fail", "hang");
    await f.deliver();
    assertEquals(f.received.length, 1, "first attempt: HTTP 500");
    let [d] = await deliveries(f);
    assertEquals([d.status, d.response_status, d.last_error], ["pending", 500, "the endpoint answered HTTP 500"]);
    await f.deliver();
    assertEquals(f.received.length, 1, "nothing is retried before its backoff");

    await f.freeze(new Date(t0.getTime() + 60 * 60_000));
    await f.deliver();
    assertEquals(f.received.length, 2, "second attempt: no answer");
    [d] = await deliveries(f);
    assertEquals([d.status, d.last_error], ["pending", "no answer within 500 ms"]);

    const t2 = new Date(t0.getTime() + 2 * 60 * 60_000);
    await f.freeze(t2);
    await f.deliver();
    assertEquals(f.received.length, 3, "third attempt: delivered");
    [d] = await deliveries(f);
    assertEquals([d.status, d.attempt, d.response_status], ["delivered", 3, 200]);
    assertEquals(
      new Set(f.received.map((r) => r.headers.get("webhook-id"))).size,
      1,
      "one webhook-id on every attempt",
    );
    assert(
      await verifyStandardWebhook(secret, f.received[2].headers, f.received[2].body, seconds(t2)),
      "the retry is signed with its own fresh timestamp",
    );
  });
});

Deno.test("an endpoint failing for 3 days is disabled and its billing managers notified", async () => {
  await withReceiver(async (f) => {
    const t0 = new Date();
    await f.freeze(t0);
    const { id } = await createEndpoint(f);
    await createApiKey(f);
    f.behave("fail", "fail", "fail");
    await f.deliver();
    await f.freeze(new Date(t0.getTime() + 2 * 86_400_000));
    await f.deliver();
    let [endpoint] = await f.sql`select active from public.webhook_endpoints where id = ${id}`;
    assertEquals(endpoint.active, true, "still active within the 3 days");

    await f.freeze(new Date(t0.getTime() + 3 * 86_400_000 + 60_000));
    await f.deliver();
    const [d] = await deliveries(f);
    assertEquals([d.status, d.last_error], ["failed", "the endpoint answered HTTP 500"]);
    [endpoint] = await f.sql`select active, disabled_reason from public.webhook_endpoints where id = ${id}`;
    assertEquals(endpoint.active, false, "disabled after the window");
    assertMatch(endpoint.disabled_reason, /deliveries failed since .*HTTP 500/);
    const notes = await f.sql`select data ->> 'kind' as kind from public.notifications where user_id = ${f.accountId}`;
    assert(notes.some((n) => n.kind === "webhook_endpoint_disabled"), "the owner (billing.manage) was notified");
    const [queued] = await f.sql`select private.emit_event(${f.accountId}::uuid, 'credits.low', '{}') as n`;
    assertEquals(queued.n, 0, "a disabled endpoint gets no new deliveries");
  });
});

Deno.test("after a rotation both secrets sign for 24 hours, then only the new one", async () => {
  await withReceiver(async (f) => {
    const t0 = new Date();
    await f.freeze(t0);
    const { id, secret: oldSecret } = await createEndpoint(f);
    const [rotated] = await f.sql`select public.rotate_webhook_secret(${id}::uuid) as r`;
    const newSecret: string = rotated.r.secret;
    await createApiKey(f);
    await f.deliver();
    const first = f.received[0];
    assertEquals(first.headers.get("webhook-signature")!.split(" ").length, 2, "two v1 signatures during the overlap");
    assert(await verifyStandardWebhook(oldSecret, first.headers, first.body, seconds(t0)), "the old secret verifies");
    assert(await verifyStandardWebhook(newSecret, first.headers, first.body, seconds(t0)), "the new secret verifies");

    const later = new Date(t0.getTime() + 25 * 60 * 60_000);
    await f.freeze(later);
    await createApiKey(f);
    await f.deliver();
    const second = f.received[1];
    assertEquals(second.headers.get("webhook-signature")!.split(" ").length, 1);
    assert(
      !(await verifyStandardWebhook(oldSecret, second.headers, second.body, seconds(later))),
      "the old secret no longer verifies",
    );
    assert(await verifyStandardWebhook(newSecret, second.headers, second.body, seconds(later)), "the new one does");
  });
});

Deno.test("SSRF: deliveries never go to loopback, private, link-local or mapped addresses", async () => {
  await withReceiver(async (f) => {
    const { id } = await createEndpoint(f, "https://hooks.example.com/in");
    const called: string[] = [];
    // Records each request and the checked address its connection is pinned to.
    const pinnedRequest: PinnedRequest = (url, address) => {
      called.push(`${url.href} via ${address}`);
      return Promise.resolve({ status: 200, body: "ok" });
    };
    // DNS answers for names; IP literals and localhost never reach it.
    const resolveDns = (host: string, type: "A" | "AAAA") =>
      Promise.resolve(
        host === "internal.example.com" && type === "A"
          ? ["10.0.0.7"]
          : host === "hooks.example.com" && type === "A"
          ? ["93.184.215.14"]
          : [],
      );
    const attempt = async (url: string) => {
      // As if the URL changed after creation (or DNS did): the check happens at delivery.
      await f.sql`update public.webhook_endpoints set url = ${url} where id = ${id}`;
      await f.sql`select private.emit_event(${f.accountId}::uuid, 'credits.low', '{}')`;
      await dispatch(f.sql, { kinds: ["webhook.deliver"], pinnedRequest, resolveDns });
      const [d] = await f.sql`
        select last_error from public.webhook_deliveries where endpoint_id = ${id} order by created_at desc, attempt desc limit 1`;
      return d.last_error as string | null;
    };

    await f.sql`update private.settings set value = 'false' where key = 'webhook_allow_loopback'`;
    for (
      const [url, reason] of [
        ["https://127.0.0.1:8443/in", "loopback"],
        ["https://localhost/in", "loopback"],
        ["https://[::1]/in", "loopback"],
        ["https://[::ffff:127.0.0.1]/in", "loopback"],
        ["https://10.1.2.3/in", "private"],
        ["https://169.254.169.254/latest/meta-data", "link-local"],
        ["https://100.64.1.1/in", "carrier-grade NAT"],
        ["https://internal.example.com/in", "private"],
        ["https://0x7f.1/in", "loopback"],
      ]
    ) {
      const error = await attempt(url);
      assert(error?.startsWith("refused: ") && error.includes(reason), `${url} is refused as ${reason}, got ${error}`);
    }
    assertEquals(called, [], "no request left for any of them");

    await f.sql`update private.settings set value = 'true' where key = 'webhook_allow_loopback'`;
    assertEquals(await attempt("http://127.0.0.1:9/in"), null, "with webhook_allow_loopback, loopback is called");
    assertEquals(await attempt("http://localhost:9/in"), null, "localhost too");
    assert((await attempt("https://10.1.2.3/in"))?.includes("private"), "private addresses stay refused");
    assertEquals(await attempt("https://hooks.example.com/in"), null, "a public host is called");
    assertEquals(called, [
      "http://127.0.0.1:9/in via 127.0.0.1",
      "http://localhost:9/in via 127.0.0.1",
      "https://hooks.example.com/in via 93.184.215.14",
    ]);
  });
});
