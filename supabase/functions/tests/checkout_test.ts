/**
 * Story: a signed-in user buys a plan or a credit pack. POST /functions/v1/checkout checks the
 * JWT, the body and the redirect URLs, asks the database (as the user) whether they may and
 * what it costs, makes sure the account has exactly one Stripe customer, and creates the
 * Checkout Session — against a local fake of the Stripe API that records what it was sent.
 */
import { createCheckoutHandler } from "../checkout/handler.ts";
import type { Sql } from "../_shared/db.ts";
import { STRIPE_API_VERSION } from "../_shared/stripe.ts";
import { assert, assertEquals } from "./_support/assert.ts";
import { nowSeconds, signHs256, userClaims } from "./_support/tokens.ts";
import {
  connect,
  createCatalog,
  createTeam,
  createUser,
  type TestCatalog,
  testEnv,
} from "./_support/stripe/billing_db.ts";
import { type FakeStripe, nested, startFakeStripe } from "./_support/stripe/fake_stripe.ts";
import { uid } from "./_support/stripe/events.ts";

interface World {
  sql: Sql;
  fake: FakeStripe;
  catalog: TestCatalog;
  checkout: (
    token: string | null,
    body: unknown,
  ) => Promise<{ status: number; body: Record<string, unknown> & { error?: { code: string } } }>;
}

async function withWorld(fn: (world: World) => Promise<void>): Promise<void> {
  const sql = connect(10);
  const fake = await startFakeStripe();
  const handler = createCheckoutHandler({ env: testEnv({ STRIPE_API_BASE: fake.url }), sql, log: () => {} });
  try {
    await fn({
      sql,
      fake,
      catalog: await createCatalog(sql),
      checkout: async (token, body) => {
        const headers: Record<string, string> = { "content-type": "application/json", origin: "http://localhost:3000" };
        if (token !== null) headers.authorization = `Bearer ${token}`;
        const response = await handler(
          new Request("http://127.0.0.1:54321/checkout", {
            method: "POST",
            headers,
            body: typeof body === "string" ? body : JSON.stringify(body),
          }),
        );
        return { status: response.status, body: await response.json() };
      },
    });
  } finally {
    await fake.close();
    await sql.end();
  }
}

const tokenFor = (userId: string) => signHs256(userClaims(userId));
const urls = { success_url: "http://localhost:3000/billing/success", cancel_url: "http://localhost:3000/billing" };

Deno.test("a plan checkout creates the customer once and a subscription session that names the account", async () => {
  await withWorld(async (world) => {
    const user = await createUser(world.sql);
    const token = await tokenFor(user);
    const { basic } = world.catalog;

    const first = await world.checkout(token, { plan: basic.key, ...urls });
    assertEquals(first.status, 200, JSON.stringify(first.body));
    assert(typeof first.body.id === "string" && (first.body.id as string).startsWith("cs_test_"));
    assertEquals(first.body.url, `https://checkout.stripe.com/c/pay/${first.body.id}`);

    const [created] = world.fake.requestsTo("/v1/customers");
    assertEquals(
      created.idempotencyKey,
      `customer-create:${user}`,
      "the Stripe idempotency key is derived from the account",
    );
    assertEquals(nested(created.params, "metadata"), { account_id: user });
    assertEquals(created.stripeVersion, STRIPE_API_VERSION, "every request pins the API version");

    const [session] = world.fake.requestsTo("/v1/checkout/sessions");
    const p = session.params;
    assertEquals([p.mode, p.customer, p.client_reference_id], ["subscription", world.fake.customers[0], user]);
    assertEquals([p["line_items[0][price]"], p["line_items[0][quantity]"]], [basic.priceId, "1"]);
    assertEquals(nested(p, "metadata"), { account_id: user, kind: "plan", item: basic.key, quantity: "1" });
    assertEquals([p["subscription_data[metadata][account_id]"], p["subscription_data[trial_period_days]"]], [
      user,
      "7",
    ]);
    assertEquals([p.success_url, p.cancel_url], [urls.success_url, urls.cancel_url]);

    const [row] = await world
      .sql`select status, stripe_customer_id from public.billing_customers where account_id = ${user}`;
    assertEquals([row.status, row.stripe_customer_id], ["active", world.fake.customers[0]]);

    // A second checkout (a pack this time) reuses the customer.
    const pack = await world.checkout(token, { credit_pack: world.catalog.pack.key, quantity: 3, ...urls });
    assertEquals(pack.status, 200);
    assertEquals(world.fake.customers.length, 1);
    const packSession = world.fake.requestsTo("/v1/checkout/sessions")[1].params;
    assertEquals([packSession.mode, packSession.customer, packSession["line_items[0][quantity]"]], [
      "payment",
      world.fake.customers[0],
      "3",
    ]);
    assertEquals(nested(packSession, "metadata"), {
      account_id: user,
      kind: "credit_pack",
      item: world.catalog.pack.key,
      quantity: "3",
    });
    assertEquals(packSession["payment_intent_data[metadata][account_id]"], user);
  });
});

Deno.test("concurrent checkouts for one account create one Stripe customer and one customer row", async () => {
  await withWorld(async (world) => {
    const user = await createUser(world.sql);
    const token = await tokenFor(user);
    const results = await Promise.all(
      Array.from({ length: 6 }, () => world.checkout(token, { credit_pack: world.catalog.pack.key, ...urls })),
    );
    assertEquals(results.map((r) => r.status), [200, 200, 200, 200, 200, 200]);
    assertEquals(world.fake.customers.length, 1, "Stripe created one customer");
    const customersUsed = new Set(world.fake.requestsTo("/v1/checkout/sessions").map((r) => r.params.customer));
    assertEquals([...customersUsed], world.fake.customers, "every session is for that customer");
    const rows = await world.sql`select stripe_customer_id from public.billing_customers where account_id = ${user}`;
    assertEquals(rows.map((r) => r.stripe_customer_id), world.fake.customers);
    assert(world.fake.requestsTo("/v1/customers").every((r) => r.idempotencyKey === `customer-create:${user}`));
  });
});

Deno.test("an account that already has a subscription is sent to the portal (409)", async () => {
  await withWorld(async (world) => {
    const user = await createUser(world.sql);
    await world
      .sql`insert into public.subscriptions (account_id, stripe_subscription_id, plan_key, status, last_event_id, last_event_type, last_event_created)
                    values (${user}, ${`sub_${uid()}`}, ${world.catalog.basic.key}, 'active', 'evt_x', 'customer.subscription.created', now())`;
    const response = await world.checkout(await tokenFor(user), { plan: world.catalog.pro.key, ...urls });
    assertEquals([response.status, response.body.error?.code], [409, "already_subscribed"]);
    // Packs remain for sale to subscribers.
    assertEquals(
      (await world.checkout(await tokenFor(user), { credit_pack: world.catalog.pack.key, ...urls })).status,
      200,
    );
  });
});

Deno.test("a plan's trial is offered once per account: after a canceled trial, resubscribing has none", async () => {
  await withWorld(async (world) => {
    const user = await createUser(world.sql);
    const token = await tokenFor(user);
    const { basic } = world.catalog;
    const trialDays = () =>
      world.fake.requestsTo("/v1/checkout/sessions").at(-1)?.params["subscription_data[trial_period_days]"];

    // An earlier subscription without a trial (e.g. of a plan that has none) does not use it up.
    await world
      .sql`insert into public.subscriptions (account_id, stripe_subscription_id, plan_key, status, last_event_id, last_event_type, last_event_created)
                    values (${user}, ${`sub_${uid()}`}, ${world.catalog.pro.key}, 'canceled', 'evt_x', 'customer.subscription.deleted', now())`;
    assertEquals((await world.checkout(token, { plan: basic.key, ...urls })).status, 200);
    assertEquals(trialDays(), "7");

    // Cancel during the trial, then subscribe again: no second trial.
    await world
      .sql`insert into public.subscriptions (account_id, stripe_subscription_id, plan_key, status, trial_start, trial_end,
                                                      last_event_id, last_event_type, last_event_created)
                    values (${user}, ${`sub_${uid()}`}, ${basic.key}, 'canceled', now() - interval '3 days', now() + interval '4 days',
                            'evt_y', 'customer.subscription.deleted', now())`;
    assertEquals((await world.checkout(token, { plan: basic.key, ...urls })).status, 200);
    assertEquals(trialDays(), undefined, "no trial_period_days sent to Stripe");
  });
});

Deno.test("checkout refuses what it must: bad items, other people's accounts, open redirects, missing or expired JWTs", async () => {
  await withWorld(async (world) => {
    const user = await createUser(world.sql);
    const stranger = await createUser(world.sql);
    const viewer = await createUser(world.sql);
    const team = await createTeam(world.sql, stranger, [[viewer, "viewer"]]);
    const token = await tokenFor(user);
    const cases: [string, string | null, unknown, number, string][] = [
      ["unknown plan", token, { plan: "no_such_plan", ...urls }, 404, "not_found"],
      ["retired pack", token, { credit_pack: world.catalog.retiredPack.key, ...urls }, 404, "not_found"],
      ["the free plan is not sold", token, { plan: "free", ...urls }, 404, "not_found"],
      [
        "someone else's account",
        token,
        { account_id: team, plan: world.catalog.basic.key, ...urls },
        403,
        "permission_denied",
      ],
      [
        "a viewer cannot buy for the team",
        await tokenFor(viewer),
        { account_id: team, credit_pack: world.catalog.pack.key, ...urls },
        403,
        "permission_denied",
      ],
      [
        "open redirect",
        token,
        { plan: world.catalog.basic.key, success_url: "https://evil.example.com/", cancel_url: urls.cancel_url },
        400,
        "invalid_redirect",
      ],
      [
        "look-alike host",
        token,
        {
          plan: world.catalog.basic.key,
          success_url: "http://localhost.evil.example.com:3000/",
          cancel_url: urls.cancel_url,
        },
        400,
        "invalid_redirect",
      ],
      [
        "credentials trick",
        token,
        {
          plan: world.catalog.basic.key,
          success_url: "http://localhost:3000@evil.example.com/",
          cancel_url: urls.cancel_url,
        },
        400,
        "invalid_redirect",
      ],
      [
        "open cancel_url",
        token,
        { plan: world.catalog.basic.key, success_url: urls.success_url, cancel_url: "https://evil.example.com/" },
        400,
        "invalid_redirect",
      ],
      [
        "outside the allowed path",
        token,
        {
          plan: world.catalog.basic.key,
          success_url: "https://app.example.com/billing-evil",
          cancel_url: urls.cancel_url,
        },
        400,
        "invalid_redirect",
      ],
      [
        "javascript: URL",
        token,
        { plan: world.catalog.basic.key, success_url: "javascript:alert(1)", cancel_url: urls.cancel_url },
        400,
        "invalid_redirect",
      ],
      [
        "both plan and pack",
        token,
        { plan: world.catalog.basic.key, credit_pack: world.catalog.pack.key, ...urls },
        400,
        "invalid_input",
      ],
      ["neither plan nor pack", token, { ...urls }, 400, "invalid_input"],
      [
        "quantity out of range",
        token,
        { credit_pack: world.catalog.pack.key, quantity: 0, ...urls },
        400,
        "invalid_input",
      ],
      ["unknown field", token, { credit_pack: world.catalog.pack.key, price: 1, ...urls }, 400, "invalid_input"],
      ["not JSON", token, "{", 400, "invalid_input"],
      ["no JWT", null, { plan: world.catalog.basic.key, ...urls }, 401, "missing_jwt"],
      [
        "expired JWT",
        await signHs256(userClaims(user, { exp: nowSeconds() - 10 })),
        { plan: world.catalog.basic.key, ...urls },
        401,
        "expired_jwt",
      ],
      [
        "forged JWT",
        await signHs256(userClaims(user), "another-secret-that-is-at-least-32-chars"),
        { plan: world.catalog.basic.key, ...urls },
        401,
        "invalid_jwt",
      ],
    ];
    for (const [name, jwt, body, status, code] of cases) {
      const response = await world.checkout(jwt, body);
      assertEquals([response.status, response.body.error?.code], [status, code], name);
    }
    assertEquals(world.fake.requests.length, 0, "nothing reached Stripe");
    // An allowed redirect elsewhere than SITE_URL works.
    const ok = await world.checkout(token, {
      credit_pack: world.catalog.pack.key,
      success_url: "https://app.example.com/billing/done",
      cancel_url: urls.cancel_url,
    });
    assertEquals(ok.status, 200);
  });
});

Deno.test("a Stripe failure is a 502, and a retry succeeds with the same customer", async () => {
  await withWorld(async (world) => {
    const user = await createUser(world.sql);
    const token = await tokenFor(user);
    world.fake.failNext(1, 400, { type: "invalid_request_error", code: "resource_missing", message: "No such price" });
    const failed = await world.checkout(token, { credit_pack: world.catalog.pack.key, ...urls });
    assertEquals([failed.status, failed.body.error?.code], [502, "stripe_error"]);
    const retried = await world.checkout(token, { credit_pack: world.catalog.pack.key, ...urls });
    assertEquals(retried.status, 200);
    assertEquals(world.fake.customers.length, 1);
  });
});

Deno.test("checkouts are rate limited per user (429 after the burst)", async () => {
  await withWorld(async (world) => {
    const user = await createUser(world.sql);
    const token = await tokenFor(user);
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      statuses.push((await world.checkout(token, { credit_pack: world.catalog.pack.key, ...urls })).status);
    }
    assertEquals(statuses.slice(0, 10).every((s) => s === 200), true, statuses.join(","));
    assertEquals(statuses[10], 429);
  });
});

Deno.test("the checkout records the session it created, so the webhook trusts it (and no session it did not create)", async () => {
  await withWorld(async (world) => {
    const user = await createUser(world.sql);
    const response = await world.checkout(await tokenFor(user), {
      credit_pack: world.catalog.pack.key,
      quantity: 2,
      ...urls,
    });
    assertEquals(response.status, 200, JSON.stringify(response.body));
    const rows = await world.sql`
      select account_id, stripe_customer_id, kind, item, quantity from private.checkout_sessions where session_id = ${response
      .body.id as string}`;
    assertEquals(rows.map((r) => [r.account_id, r.stripe_customer_id, r.kind, r.item, r.quantity]), [[
      user,
      world.fake.customers[0],
      "credit_pack",
      world.catalog.pack.key,
      2,
    ]], "the session is recorded for the account");
  });
});
