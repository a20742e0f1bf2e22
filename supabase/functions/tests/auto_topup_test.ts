/**
 * Story: Maya runs a personal account on credits and turns auto top-up on (threshold 40,
 * the 250-credit pack). Her customers' calls eat the balance; when it falls below the
 * low-balance line, one charge is queued, the dispatcher charges her default card
 * off-session through the fake Stripe, and the credits arrive with Stripe's
 * payment_intent.succeeded, once. Declines and cards that need authentication count as
 * failures, notify her, and three in a row turn auto top-up off with the reason. Proved:
 * exactly one charge under 32 concurrent consumers; a grant once whatever the order or
 * repetition of webhook and job; the monthly limit; who may read and change the settings.
 */
import { createWebhookHandler } from "../stripe-webhook/handler.ts";
import { dispatch } from "../dispatch/handler.ts";
import { createStripe } from "../_shared/stripe.ts";
import { assert, assertEquals } from "./_support/assert.ts";
import { asUserTx, attempt, closeAll, ensureAction, openClients, raiseRateLimits } from "./_support/wallet.ts";
import {
  balance,
  connect,
  createCatalog,
  createTeam,
  createUser,
  type TestCatalog,
  testEnv,
} from "./_support/stripe/billing_db.ts";
import { type Json, stripeEvent, uid, webhookRequest } from "./_support/stripe/events.ts";
import { type FakeStripe, startFakeStripe } from "./_support/stripe/fake_stripe.ts";
import type { Sql } from "../_shared/db.ts";

const silent = () => {};
const ACTION = "auto_topup_test_call";

interface World {
  sql: Sql;
  fake: FakeStripe;
  catalog: TestCatalog;
  /** Runs the due auto top-up jobs against the fake Stripe. */
  runJobs: () => Promise<void>;
  /** Posts a signed Stripe event to the webhook handler; returns its status word. */
  deliver: (type: string, object: Json) => Promise<string>;
}

async function withWorld(fn: (world: World) => Promise<void>): Promise<void> {
  const sql = connect(8);
  const fake = await startFakeStripe();
  const stripe = createStripe("sk_test_ledgerbase_fake", new URL(fake.url));
  const webhook = createWebhookHandler({ env: testEnv(), sql, log: silent });
  try {
    const catalog = await createCatalog(sql);
    await ensureAction(sql, ACTION, 1);
    await fn({
      sql,
      fake,
      catalog,
      runJobs: async () => {
        await dispatch(sql, { kinds: ["credits.auto_topup"], stripe, log: silent });
      },
      deliver: async (type, object) => {
        const event = stripeEvent(type, object);
        const response = await webhook(await webhookRequest(event));
        const body = await response.json();
        if (response.status !== 200) {
          const [row] =
            await sql`select error from public.webhook_events where provider = 'stripe' and event_id = ${event.id}`;
          throw new Error(`${type}: ${JSON.stringify(body)} ${row?.error ?? ""}`);
        }
        return body.status as string;
      },
    });
  } finally {
    fake.onAnswer = null;
    await fake.close();
    await sql.end();
  }
}

/** Maya: a user whose personal account is a Stripe customer with a default card, 50 credits. */
async function maya(world: World, card = "pm_card_visa"): Promise<{ account: string; customer: string }> {
  const account = await createUser(world.sql);
  const customer = `cus_${uid()}`;
  await world
    .sql`insert into public.billing_customers (account_id, stripe_customer_id, status) values (${account}, ${customer}, 'active')`;
  world.fake.setPaymentMethod(customer, card);
  return { account, customer };
}

async function setAutoTopup(
  world: World,
  user: string,
  account: string,
  o: { enabled?: boolean; threshold?: number; monthlyLimit?: number } = {},
) {
  return await asUserTx(
    world.sql,
    user,
    (tx) =>
      tx`select * from public.set_auto_topup(${account}::uuid, ${o.enabled ?? true}, ${o.threshold ?? 40}::bigint,
                                           ${world.catalog.pack.key}, ${o.monthlyLimit ?? 4})`,
  );
}

/** An outgoing webhook endpoint of the account for the auto top-up events. */
async function subscribeEndpoint(sql: Sql, account: string): Promise<void> {
  await sql`insert into public.webhook_endpoints (account_id, url, event_types)
            values (${account}, 'https://hooks.example.com/ledgerbase', '{credits.auto_topup.succeeded,credits.auto_topup.failed}')`;
}

async function eventsSent(sql: Sql, account: string): Promise<string[]> {
  const rows = await sql<
    { type: string }[]
  >`select type from public.webhook_deliveries where account_id = ${account} order by created_at, id`;
  return rows.map((r) => r.type);
}

async function attempts(sql: Sql, account: string) {
  return await sql<
    { id: string; status: string; failure_code: string | null; stripe_payment_intent_id: string | null }[]
  >`
    select id, status, failure_code, stripe_payment_intent_id from public.auto_topup_attempts
    where account_id = ${account} order by created_at, id`;
}

async function settings(sql: Sql, account: string) {
  const [row] = await sql<{ enabled: boolean; consecutive_failures: number; disabled_reason: string | null }[]>`
    select enabled, consecutive_failures, disabled_reason from public.auto_topup_settings where account_id = ${account}`;
  return row;
}

/** Starts a top-up as the low-balance seam would (available below every threshold). */
async function crossThreshold(sql: Sql, account: string): Promise<string | null> {
  const [row] = await sql<{ id: string | null }[]>`select private.start_auto_topup(${account}::uuid, 5) as id`;
  return row.id;
}

/** The PaymentIntent the fake created for an attempt, as Stripe sends it in events. */
function intentOf(fake: FakeStripe, attemptId: string): Json {
  const pi = [...fake.paymentIntents.values()].find((p) => (p.metadata as Json).attempt_id === attemptId);
  assert(pi !== undefined, `a PaymentIntent for attempt ${attemptId}`);
  return pi;
}

Deno.test("32 concurrent consumers crossing the threshold make exactly one charge, granted once on payment_intent.succeeded", async () => {
  await withWorld(async (world) => {
    const restore = await raiseRateLimits(world.sql);
    const clients = await openClients(32);
    try {
      const { account, customer } = await maya(world);
      await subscribeEndpoint(world.sql, account);
      await setAutoTopup(world, account, account);
      // 50 credits, 32 calls of one credit each: available falls through 20 (the low-balance line) once.
      await Promise.all(
        clients.map((c, i) =>
          c`select public.consume_credits(account_id => ${account}::uuid, action => ${ACTION}, quantity => 1,
                                        idempotency_key => ${`topup-${account}-${i}`})`
        ),
      );
      assertEquals((await balance(world.sql, account)).available, 18);
      const queued = await attempts(world.sql, account);
      assertEquals(queued.length, 1, "one attempt for one crossing");
      const [{ jobs }] = await world.sql`select count(*)::int as jobs from private.jobs
                                         where kind = 'credits.auto_topup' and payload ->> 'attempt_id' = ${
        queued[0].id
      }`;
      assertEquals(jobs, 1);

      await world.runJobs();
      const charges = world.fake.requestsTo("/v1/payment_intents");
      assertEquals(charges.length, 1, "one PaymentIntent");
      const p = charges[0].params;
      assertEquals([p.amount, p.currency, p.customer, p.payment_method, p.confirm, p.off_session], [
        String(world.catalog.pack.price),
        "usd",
        customer,
        "pm_card_visa",
        "true",
        "true",
      ]);
      assertEquals([p["metadata[account_id]"], p["metadata[kind]"], p["metadata[item]"]], [
        account,
        "auto_topup",
        world.catalog.pack.key,
      ]);
      assertEquals(charges[0].idempotencyKey, `auto_topup:${queued[0].id}`, "the attempt's idempotency key");
      // The API said succeeded, but only Stripe's event grants.
      assertEquals((await balance(world.sql, account)).available, 18, "nothing granted on the API response");

      const pi = intentOf(world.fake, queued[0].id);
      assertEquals(await world.deliver("payment_intent.succeeded", pi), "processed");
      assertEquals(await world.deliver("payment_intent.succeeded", pi), "processed");
      assertEquals((await balance(world.sql, account)).available, 18 + world.catalog.pack.credits, "granted once");
      assertEquals((await attempts(world.sql, account)).map((a) => a.status), ["succeeded"]);
      assertEquals(await eventsSent(world.sql, account), ["credits.auto_topup.succeeded"], "one outgoing webhook");
    } finally {
      await closeAll(clients);
      await restore();
    }
  });
});

Deno.test("a webhook that arrives before the job finishes grants once, and the job's answer changes nothing", async () => {
  await withWorld(async (world) => {
    const { account } = await maya(world);
    await setAutoTopup(world, account, account);
    const attemptId = await crossThreshold(world.sql, account);
    assert(attemptId !== null);
    // Stripe's event overtakes the API response: delivered while the runner waits for it.
    world.fake.onAnswer = async (request, status, body) => {
      if (request.path === "/v1/payment_intents" && status === 200) {
        assertEquals(await world.deliver("payment_intent.succeeded", body), "processed");
      }
    };
    const before = (await balance(world.sql, account)).available;
    await world.runJobs();
    assertEquals((await balance(world.sql, account)).available, before + world.catalog.pack.credits);
    const [a] = await attempts(world.sql, account);
    assertEquals(a.status, "succeeded");
    assert(a.stripe_payment_intent_id?.startsWith("pi_"));
    // A late second delivery: still once.
    world.fake.onAnswer = null;
    await world.deliver("payment_intent.succeeded", intentOf(world.fake, attemptId));
    assertEquals((await balance(world.sql, account)).available, before + world.catalog.pack.credits);
  });
});

Deno.test("declines and authentication count as failures, notify billing managers, and three in a row turn auto top-up off", async () => {
  await withWorld(async (world) => {
    const { account, customer } = await maya(world, "pm_card_chargeDeclined");
    await subscribeEndpoint(world.sql, account);
    await setAutoTopup(world, account, account);
    const start = (await balance(world.sql, account)).available;

    assert(await crossThreshold(world.sql, account));
    await world.runJobs();
    assertEquals(await settings(world.sql, account), { enabled: true, consecutive_failures: 1, disabled_reason: null });

    // An off-session charge the bank wants authenticated, then one left in requires_action.
    world.fake.setPaymentMethod(customer, "pm_card_authenticationRequired");
    assert(await crossThreshold(world.sql, account));
    await world.runJobs();
    world.fake.setPaymentMethod(customer, "pm_card_threeDSecureRequired");
    assert(await crossThreshold(world.sql, account));
    await world.runJobs();

    assertEquals((await attempts(world.sql, account)).map((a) => [a.status, a.failure_code]), [
      ["failed", "generic_decline"],
      ["failed", "authentication_required"],
      ["failed", "requires_action"],
    ]);
    const s = await settings(world.sql, account);
    assertEquals([s.enabled, s.consecutive_failures], [false, 3]);
    assert(s.disabled_reason?.includes("3 failed charges in a row"), s.disabled_reason ?? "no reason");
    assertEquals((await balance(world.sql, account)).available, start, "nothing granted");
    const notes = await world.sql`select title, data ->> 'code' as code from public.notifications
                                  where user_id = ${account} and data ->> 'kind' = 'auto_topup_failed' order by created_at, id`;
    assertEquals(notes.length, 3, "Maya was told each time");
    assertEquals(notes[2].title, "Automatic top-up failed and was turned off");
    assertEquals(await eventsSent(world.sql, account), Array(3).fill("credits.auto_topup.failed"));
    // Off: a new crossing charges nothing.
    assertEquals(await crossThreshold(world.sql, account), null);

    // She fixes her card and turns it on again: the count starts over.
    world.fake.setPaymentMethod(customer, "pm_card_visa");
    await setAutoTopup(world, account, account, { threshold: 1 });
    assertEquals(await settings(world.sql, account), { enabled: true, consecutive_failures: 0, disabled_reason: null });
  });
});

Deno.test("a success resets the failure count; a decline reported by payment_intent.payment_failed counts once", async () => {
  await withWorld(async (world) => {
    const { account } = await maya(world);
    await setAutoTopup(world, account, account);
    await world.sql`update public.auto_topup_settings set consecutive_failures = 2 where account_id = ${account}`;
    const id = await crossThreshold(world.sql, account);
    await world.runJobs();
    await world.deliver("payment_intent.succeeded", intentOf(world.fake, id!));
    assertEquals((await settings(world.sql, account)).consecutive_failures, 0);

    // A charge that Stripe later reports failed (e.g. an asynchronous decline), twice.
    const id2 = await crossThreshold(world.sql, account);
    await world.runJobs();
    const failed = {
      ...intentOf(world.fake, id2!),
      status: "requires_payment_method",
      last_payment_error: {
        code: "card_declined",
        decline_code: "insufficient_funds",
        message: "Your card has insufficient funds.",
      },
    };
    await world.deliver("payment_intent.payment_failed", failed);
    await world.deliver("payment_intent.payment_failed", failed);
    assertEquals((await settings(world.sql, account)).consecutive_failures, 1);
    assertEquals((await attempts(world.sql, account)).map((a) => a.failure_code), [null, "insufficient_funds"]);
  });
});

Deno.test("at most monthly_limit charges a calendar month, and never two in flight", async () => {
  await withWorld(async (world) => {
    const { account } = await maya(world);
    await setAutoTopup(world, account, account, { monthlyLimit: 2 });
    const first = await crossThreshold(world.sql, account);
    assert(first !== null);
    assertEquals(await crossThreshold(world.sql, account), null, "one is in flight");
    await world.runJobs();
    await world.deliver("payment_intent.succeeded", intentOf(world.fake, first));
    const second = await crossThreshold(world.sql, account);
    assert(second !== null);
    await world.runJobs();
    await world.deliver("payment_intent.succeeded", intentOf(world.fake, second));
    assertEquals(await crossThreshold(world.sql, account), null, "the month's two are used");
    assertEquals(world.fake.requestsTo("/v1/payment_intents").length, 2);

    // Next calendar month (UTC): allowed again.
    const [{ next }] = await world
      .sql`select (date_trunc('month', now() at time zone 'UTC') + interval '1 month' + interval '1 hour') at time zone 'UTC' as next`;
    const third = await world.sql.begin(async (tx) => {
      await tx`select set_config('ledgerbase.now', ${(next as Date).toISOString()}, true)`;
      const [row] = await tx`select private.start_auto_topup(${account}::uuid, 5) as id`;
      return row.id as string | null;
    });
    assert(third !== null, "a new month, a new allowance");
  });
});

Deno.test("settings: billing.manage changes them, billing.read reads them, others see nothing", async () => {
  await withWorld(async (world) => {
    const owner = await createUser(world.sql);
    const viewer = await createUser(world.sql);
    const stranger = await createUser(world.sql);
    const team = await createTeam(world.sql, owner, [[viewer, "viewer"]]);
    await setAutoTopup(world, owner, team);

    const read = (user: string) =>
      asUserTx(
        world.sql,
        user,
        (tx) => tx`select account_id from public.auto_topup_settings where account_id = ${team}`,
      );
    assertEquals((await read(owner)).length, 1);
    assertEquals((await read(viewer)).length, 1, "billing.read reads");
    assertEquals((await read(stranger)).length, 0, "not a member: nothing");
    assertEquals(
      (await asUserTx(
        world.sql,
        stranger,
        (tx) => tx`select id from public.auto_topup_attempts where account_id = ${team}`,
      )).length,
      0,
    );

    const refused = await attempt(() => setAutoTopup(world, viewer, team, { enabled: false }));
    assertEquals(refused.ok ? "ok" : refused.code, "42501", "billing.read cannot change them");
    const written = await attempt(() =>
      asUserTx(
        world.sql,
        owner,
        (tx) => tx`update public.auto_topup_settings set threshold = 1 where account_id = ${team}`,
      )
    );
    assert(!written.ok || (written.value as unknown as unknown[]).length === 0, "no direct writes");
    assertEquals((await settings(world.sql, team)).enabled, true);

    const bad = await attempt(() =>
      asUserTx(
        world.sql,
        owner,
        (tx) => tx`select public.set_auto_topup(${team}::uuid, true, 0, ${world.catalog.pack.key})`,
      )
    );
    assertEquals(bad.ok ? "ok" : [bad.code, bad.message], ["22023", "invalid_input"]);
    const retired = await attempt(() =>
      asUserTx(
        world.sql,
        owner,
        (tx) => tx`select public.set_auto_topup(${team}::uuid, true, 10, ${world.catalog.retiredPack.key})`,
      )
    );
    assertEquals(retired.ok ? "ok" : [retired.code, retired.message], ["22023", "invalid_input"]);
  });
});

/** The charge of a PaymentIntent as Stripe sends it in charge.* events, refunded by `refunded`. */
function chargeOf(pi: Json, refunded: number): Json {
  return {
    id: pi.latest_charge,
    object: "charge",
    payment_intent: pi.id,
    customer: pi.customer,
    amount: pi.amount,
    amount_refunded: refunded,
    currency: pi.currency,
    refunded: refunded >= (pi.amount as number),
    status: "succeeded",
  };
}

function disputeOf(pi: Json, status: string): Json {
  return {
    id: `dp_${pi.id}`,
    object: "dispute",
    charge: pi.latest_charge,
    payment_intent: pi.id,
    amount: pi.amount,
    currency: pi.currency,
    reason: "fraudulent",
    status,
  };
}

async function topUpPayment(sql: Sql, account: string) {
  const rows = await sql<
    {
      kind: string;
      item_key: string;
      amount: string;
      currency: string;
      status: string;
      credits_granted: string;
      credits_clawed_back: string;
      stripe_payment_intent_id: string;
      stripe_charge_id: string;
      grant_id: string | null;
    }[]
  >`
    select kind, item_key, amount::text, currency, status, credits_granted::text, credits_clawed_back::text,
           stripe_payment_intent_id, stripe_charge_id, grant_id from public.payments where account_id = ${account}`;
  return rows;
}

Deno.test("an auto top-up is a payment: a half refund takes back half its credits, a full refund all, a dispute holds them until won", async () => {
  await withWorld(async (world) => {
    const pack = world.catalog.pack;
    // Maya's first top-up goes through and is refunded, half and then in full.
    const { account } = await maya(world);
    await setAutoTopup(world, account, account);
    const first = await crossThreshold(world.sql, account);
    await world.runJobs();
    const pi = intentOf(world.fake, first!);
    const before = (await balance(world.sql, account)).available;
    await world.deliver("payment_intent.succeeded", pi);
    await world.deliver("payment_intent.succeeded", pi);
    // Recorded once, as a credit-pack payment of the PaymentIntent and its charge, linked to its grant.
    const [payment, ...more] = await topUpPayment(world.sql, account);
    assertEquals(more.length, 0, "one payment for a twice-delivered event");
    assertEquals([
      payment.kind,
      payment.item_key,
      payment.amount,
      payment.currency,
      payment.status,
      payment.credits_granted,
      payment.stripe_payment_intent_id,
      payment.stripe_charge_id,
    ], ["credit_pack", pack.key, String(pack.price), "usd", "paid", String(pack.credits), pi.id, pi.latest_charge]);
    const [{ grant_id }] = await world.sql`select grant_id from public.auto_topup_attempts where id = ${first}`;
    assertEquals(payment.grant_id, grant_id, "the payment names the attempt's grant");
    assertEquals((await balance(world.sql, account)).available, before + pack.credits);

    const half = Math.floor((pi.amount as number) / 2);
    await world.deliver("charge.refunded", chargeOf(pi, half));
    assertEquals(
      (await balance(world.sql, account)).available,
      before + pack.credits - Math.floor(pack.credits * half / (pi.amount as number)),
      "half the amount refunded: half the credits taken back",
    );
    await world.deliver("charge.refunded", chargeOf(pi, pi.amount as number));
    await world.deliver("charge.refunded", chargeOf(pi, pi.amount as number));
    assertEquals((await balance(world.sql, account)).available, before, "a full refund takes them all, once");
    assertEquals((await topUpPayment(world.sql, account))[0].status, "refunded");

    // Her second top-up is disputed: the credits are held while it is open and come back when she wins.
    const second = await crossThreshold(world.sql, account);
    await world.runJobs();
    const pi2 = intentOf(world.fake, second!);
    await world.deliver("payment_intent.succeeded", pi2);
    const topped = (await balance(world.sql, account)).available;
    await world.deliver("charge.dispute.created", disputeOf(pi2, "needs_response"));
    assertEquals(
      (await balance(world.sql, account)).available,
      topped - pack.credits,
      "an open dispute holds the pack's credits",
    );
    await world.deliver("charge.dispute.closed", disputeOf(pi2, "won"));
    assertEquals((await balance(world.sql, account)).available, topped, "a won dispute gives them back");
  });
});
