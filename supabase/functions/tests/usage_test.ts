/**
 * Story: a customer's backend meters usage with an API key, no user session. The usage
 * function is called directly (`handler(new Request(...))`) against the test database;
 * users and keys are made with SQL as postgres (the signup trigger gives every new user
 * a personal account with 50 credits; create_api_key trusts a direct connection).
 */
import { closeDb, createDb, type Sql } from "../_shared/db.ts";
import { handler, routeOf } from "../usage/handler.ts";
import { assert, assertEquals, assertMatch } from "./_support/assert.ts";
import { TEST_DB_URL } from "./_support/tokens.ts";

const BASE = "http://127.0.0.1:54321/functions/v1/usage";

interface Fixture {
  sql: Sql;
  accountId: string;
  /** A key with the given scopes (default credits.consume), created in SQL. */
  key(scopes?: string[], expiresAt?: string): Promise<{ id: string; key: string }>;
}

/** A fresh user (personal account, 50 credits) and a way to mint keys for it. */
async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const sql = createDb(TEST_DB_URL, { max: 1 });
  const accountId = crypto.randomUUID();
  try {
    await sql`
      insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                              confirmation_token, recovery_token, email_change_token_new, email_change,
                              raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      values ('00000000-0000-0000-0000-000000000000', ${accountId}, 'authenticated', 'authenticated',
              ${`usage-${accountId}@example.test`}, '', now(), '', '', '', '', '{"provider": "email"}', '{}', now(), now())`;
    const key = async (scopes: string[] = ["credits.consume"], expiresAt?: string) => {
      const [row] = await sql`
        select public.create_api_key(${accountId}::uuid, 'usage test', ${scopes}::text[],
                                     ${expiresAt ?? null}::timestamptz) as created`;
      const created = row.created as { id: string; key: string };
      return { id: created.id, key: created.key };
    };
    await fn({ sql, accountId, key });
  } finally {
    await sql.end();
    await closeDb(); // the handler's shared client
  }
}

function post(key: string | null, body: unknown, headers: Record<string, string> = {}): Request {
  return new Request(BASE, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(key === null ? {} : { authorization: `Bearer ${key}` }),
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

function get(path: string, key: string): Request {
  return new Request(`${BASE}${path}`, { headers: { authorization: `Bearer ${key}` } });
}

interface ErrorBody {
  error: { code: string; message: string; detail?: string; hint?: string };
}

async function balanceOf(sql: Sql, accountId: string): Promise<number> {
  const [row] = await sql`select balance from public.credit_balances where account_id = ${accountId}`;
  return Number(row.balance);
}

Deno.test("a valid key meters usage for its account and the event records the key", async () => {
  await withFixture(async ({ sql, accountId, key }) => {
    const { id, key: secret } = await key();
    const response = await handler(post(secret, { action: "api_call", quantity: 3, metadata: { route: "/v1/chat" } }));
    assertEquals(response.status, 200);
    const body = await response.json();
    assertEquals(
      { charged: body.credits_charged, balance: body.balance, available: body.available, replayed: body.replayed },
      { charged: 3, balance: 47, available: 47, replayed: false },
    );
    const [event] = await sql`
      select account_id, user_id, api_key_id, action, quantity, metadata from public.usage_events where id = ${body.usage_event_id}`;
    assertEquals(
      { ...event },
      {
        account_id: accountId,
        user_id: null,
        api_key_id: id,
        action: "api_call",
        quantity: 3,
        metadata: { route: "/v1/chat" },
      },
    );
    const [used] = await sql`select last_used_at is not null as used from public.api_keys where id = ${id}`;
    assert(used.used, "the key's last use is recorded");
  });
});

Deno.test("an idempotent replay returns the first result and charges once; other parameters conflict", async () => {
  await withFixture(async ({ sql, accountId, key }) => {
    const { key: secret } = await key();
    const request = { action: "api_call", quantity: 2, idempotency_key: "job-42" };
    const first = await (await handler(post(secret, request))).json();
    const again = await handler(post(secret, request));
    assertEquals(again.status, 200);
    const replay = await again.json();
    assertEquals(replay.replayed, true);
    assertEquals(replay.usage_event_id, first.usage_event_id);
    assertEquals(replay.balance, 48);
    assertEquals(await balanceOf(sql, accountId), 48, "charged once");

    const viaHeader = await handler(post(secret, { action: "api_call", quantity: 2 }, { "idempotency-key": "job-42" }));
    assertEquals(
      (await viaHeader.json()).usage_event_id,
      first.usage_event_id,
      "the Idempotency-Key header works the same",
    );

    const conflict = await handler(post(secret, { ...request, quantity: 5 }));
    assertEquals(conflict.status, 409);
    assertEquals(((await conflict.json()) as ErrorBody).error.code, "idempotency_conflict");
    assertEquals(await balanceOf(sql, accountId), 48);
  });
});

Deno.test("revoked, expired, unknown, malformed and missing keys all get the same 401", async () => {
  await withFixture(async ({ sql, accountId, key }) => {
    const revoked = await key();
    await sql`select public.revoke_api_key(${revoked.id}::uuid)`;
    const expired = await key(["credits.consume"], new Date(Date.now() + 3_600_000).toISOString());
    await sql`update public.api_keys set expires_at = now() - interval '1 second' where id = ${expired.id}`;
    const valid = await key();
    const wrongSecret = valid.key.slice(0, 16) + "0".repeat(64);

    const bodies = new Set<string>();
    for (
      const [label, secret] of [
        ["revoked", revoked.key],
        ["expired", expired.key],
        ["unknown", `lb_${"a".repeat(12)}_${"b".repeat(64)}`],
        ["wrong secret", wrongSecret],
        ["malformed", "sk_live_123"],
        ["missing", null],
      ] as const
    ) {
      const response = await handler(post(secret, { action: "api_call" }));
      assertEquals(response.status, 401, `${label} key`);
      assertMatch(response.headers.get("www-authenticate") ?? "", /^Bearer /, `${label}: WWW-Authenticate`);
      const body = (await response.json()) as ErrorBody;
      assertEquals(body.error.code, "invalid_api_key", `${label} key`);
      bodies.add(JSON.stringify({ code: body.error.code, message: body.error.message }));
    }
    assertEquals(bodies.size, 1, "nothing tells the bad keys apart");
    assertEquals(await balanceOf(sql, accountId), 50, "nothing was charged");
    const balance = await handler(get("/balance", revoked.key));
    assertEquals(balance.status, 401, "a revoked key reads nothing either");
    await balance.body?.cancel();
  });
});

Deno.test("a key without the needed scope gets 403 insufficient_scope", async () => {
  await withFixture(async ({ sql, accountId, key }) => {
    const readOnly = await key(["credits.read"]);
    const meter = await handler(post(readOnly.key, { action: "api_call" }));
    assertEquals(meter.status, 403);
    assertEquals(((await meter.json()) as ErrorBody).error.code, "insufficient_scope");
    assertEquals(await balanceOf(sql, accountId), 50);

    const eventsOnly = await key(["usage.read"]);
    const read = await handler(get("/balance", eventsOnly.key));
    assertEquals(read.status, 403, "usage.read alone does not read the balance");
    assertEquals(((await read.json()) as ErrorBody).error.code, "insufficient_scope");

    const consumeOnly = await key(["credits.consume"]);
    const own = await handler(get("/balance", consumeOnly.key));
    assertEquals(own.status, 200, "a metering key (the default scope) reads the balance it draws from");
    assertEquals(((await own.json()) as { available: number }).available, 50);
  });
});

Deno.test("malformed bodies are 400 invalid_input and charge nothing", async () => {
  await withFixture(async ({ sql, accountId, key }) => {
    const { key: secret } = await key();
    const cases: [string, unknown][] = [
      ["not JSON", "{action: api_call"],
      ["an array", "[]"],
      ["no action", { quantity: 1 }],
      ["a bad action key", { action: "Drop Table" }],
      ["quantity 0", { action: "api_call", quantity: 0 }],
      ["a fractional quantity", { action: "api_call", quantity: 1.5 }],
      ["a string quantity", { action: "api_call", quantity: "2" }],
      ["an unknown field", { action: "api_call", account_id: accountId }],
      ["metadata that is not an object", { action: "api_call", metadata: [1, 2] }],
      ["an empty idempotency key", { action: "api_call", idempotency_key: "" }],
    ];
    for (const [label, body] of cases) {
      const response = await handler(post(secret, body));
      assertEquals(response.status, 400, label);
      assertEquals(((await response.json()) as ErrorBody).error.code, "invalid_input", label);
    }
    const tooBig = await handler(post(secret, { action: "api_call", metadata: { blob: "x".repeat(20_000) } }));
    assertEquals(tooBig.status, 400, "metadata over 16 kB is refused by the database");
    assertEquals(((await tooBig.json()) as ErrorBody).error.code, "invalid_input");
    const unknown = await handler(post(secret, { action: "no_such_action" }));
    assertEquals(unknown.status, 404, "an unknown action is not found");
    await unknown.body?.cancel();
    assertEquals(await balanceOf(sql, accountId), 50);
  });
});

Deno.test("more than the available credits is 402 insufficient_credits with what was required", async () => {
  await withFixture(async ({ sql, accountId, key }) => {
    const { key: secret } = await key();
    const response = await handler(post(secret, { action: "api_call", quantity: 51 }));
    assertEquals(response.status, 402);
    const body = (await response.json()) as ErrorBody;
    assertEquals(body.error.code, "insufficient_credits");
    assertEquals(JSON.parse(body.error.detail ?? "{}"), { required: 51, available: 50 });
    assertEquals(await balanceOf(sql, accountId), 50);
  });
});

Deno.test("a rate-limited account gets 429 with Retry-After and is not charged", async () => {
  await withFixture(async ({ sql, accountId, key }) => {
    const { key: secret } = await key();
    // Empty the account's consume_credits bucket (kept on its wallet) for the next hour.
    await sql`
      update public.credit_balances set consume_tat = clock_timestamp() + interval '1 hour'
      where account_id = ${accountId}`;
    const response = await handler(post(secret, { action: "api_call" }));
    assertEquals(response.status, 429);
    assertEquals(((await response.json()) as ErrorBody).error.code, "rate_limited");
    const retryAfter = Number(response.headers.get("retry-after"));
    assert(Number.isInteger(retryAfter) && retryAfter > 3000 && retryAfter <= 3600, `Retry-After ${retryAfter}`);
    assertEquals(await balanceOf(sql, accountId), 50);
  });
});

Deno.test("GET /usage/balance and /usage/events read the key's account", async () => {
  await withFixture(async ({ accountId, key }) => {
    const meter = await key(["credits.consume", "credits.read", "usage.read"]);
    for (const quantity of [1, 2, 3]) {
      await (await handler(post(meter.key, { action: "api_call", quantity, idempotency_key: `e-${quantity}` }))).body
        ?.cancel();
    }
    const balance = await handler(get("/balance", meter.key));
    assertEquals(balance.status, 200);
    assertEquals(await balance.json(), { account_id: accountId, balance: 44, held: 0, available: 44 });

    const events = await handler(get("/events?limit=2", meter.key));
    assertEquals(events.status, 200);
    const listed = await events.json();
    assertEquals(listed.account_id, accountId);
    assertEquals(listed.events.length, 2);
    assertEquals(listed.events[0].api_key_id, meter.id);

    const badLimit = await handler(get("/events?limit=0", meter.key));
    assertEquals(badLimit.status, 400);
    await badLimit.body?.cancel();
  });
});

Deno.test("routes and methods: unknown routes are 404, wrong methods 405 with Allow", async () => {
  assertEquals(routeOf("/usage"), "consume");
  assertEquals(routeOf("/usage/balance"), "balance");
  assertEquals(routeOf("/functions/v1/usage/events/"), "events");
  assertEquals(routeOf("/usage/other"), undefined);
  const wrongMethod = await handler(new Request(BASE, { method: "GET" }));
  assertEquals(wrongMethod.status, 405);
  assertEquals(wrongMethod.headers.get("allow"), "POST, OPTIONS");
  await wrongMethod.body?.cancel();
  const unknown = await handler(new Request(`${BASE}/nope`, { method: "POST" }));
  assertEquals(unknown.status, 404);
  await unknown.body?.cancel();
});
