/**
 * Story: Stripe delivers events in any order and more than once. One account's life — a
 * customer, a subscription that changes plan, schedules and withdraws its cancellation in the
 * same second, pays two invoices (one after a failure), buys a pack with a delayed payment that
 * is partly refunded twice, has a charge disputed and won, and is finally canceled — is
 * delivered through the webhook in order, reversed, and shuffled with duplicates. Every
 * delivery must end in the same state: subscription, payments, credits.
 */
import fc from "fast-check";
import { createWebhookHandler } from "../stripe-webhook/handler.ts";
import type { Sql } from "../_shared/db.ts";
import { assert, assertEquals } from "./_support/assert.ts";
import {
  balance,
  connect,
  createCatalog,
  createUser,
  recordCheckoutSessions,
  type TestCatalog,
  testEnv,
} from "./_support/stripe/billing_db.ts";
import {
  charge,
  checkoutSession,
  customer,
  dispute,
  invoice,
  invoicePayment,
  paymentIntent,
  stripeEvent,
  type StripeEventJson,
  subscription,
  uid,
  webhookRequest,
} from "./_support/stripe/events.ts";

const DAY = 86_400;

/** The whole life of one account as Stripe would report it; ids are fresh for each account. */
function lifeOf(account: string, catalog: TestCatalog, t0: number): StripeEventJson[] {
  const id = uid();
  const cus = `cus_${id}`;
  const sub = `sub_${id}`;
  const start = t0 - DAY;
  const end = start + 30 * DAY;
  const nextEnd = end + 30 * DAY;
  const first = { inv: `in_${id}a`, pi: `pi_${id}a`, ch: `ch_${id}a`, dp: `dp_${id}a` };
  const second = { inv: `in_${id}b`, pi: `pi_${id}b`, ch: `ch_${id}b` };
  const pack = { cs: `cs_test_${id}`, pi: `pi_${id}p`, ch: `ch_${id}p` };
  const subBase = { id: sub, customer: cus, accountId: account, periodStart: start, periodEnd: end };
  const { basic, pro } = catalog;
  // Event ids sort opposite to their creation here, so the tie-break really is by id, not arrival.
  const ev = (n: number, type: string, object: Record<string, unknown>, created: number) =>
    stripeEvent(type, object, { id: `evt_${id}_${String(99 - n).padStart(2, "0")}`, created });

  return [
    ev(1, "customer.created", customer({ id: cus, accountId: account }), t0),
    ev(
      2,
      "checkout.session.completed",
      checkoutSession({
        id: `cs_test_${id}s`,
        accountId: account,
        customer: cus,
        mode: "subscription",
        paymentStatus: "paid",
        item: basic.key,
        kind: "plan",
        amountTotal: basic.price,
        subscription: sub,
      }),
      t0 + 1,
    ),
    ev(
      3,
      "customer.subscription.created",
      subscription({ ...subBase, priceId: basic.priceId, status: "incomplete" }),
      t0 + 1,
    ),
    ev(
      4,
      "customer.subscription.updated",
      subscription({ ...subBase, priceId: basic.priceId, status: "active" }),
      t0 + 2,
    ),
    ev(
      5,
      "invoice.paid",
      invoice({
        id: first.inv,
        customer: cus,
        subscription: sub,
        accountId: account,
        priceId: basic.priceId,
        amountPaid: basic.price,
        billingReason: "subscription_create",
        periodStart: start,
        periodEnd: end,
      }),
      t0 + 2,
    ),
    ev(
      6,
      "invoice_payment.paid",
      invoicePayment({ invoice: first.inv, paymentIntent: first.pi, charge: first.ch }),
      t0 + 2,
    ),
    // Upgrade, then in the same second a cancellation scheduled and withdrawn: a three-way tie.
    ev(
      7,
      "customer.subscription.updated",
      subscription({ ...subBase, priceId: pro.priceId, status: "active" }),
      t0 + 10,
    ),
    ev(
      8,
      "customer.subscription.updated",
      subscription({ ...subBase, priceId: pro.priceId, status: "active", cancelAtPeriodEnd: true }),
      t0 + 10,
    ),
    ev(
      9,
      "customer.subscription.trial_will_end",
      subscription({ ...subBase, priceId: pro.priceId, status: "active", cancelAtPeriodEnd: false }),
      t0 + 10,
    ),
    // A pack bought by bank debit: completed unpaid, then paid, then refunded 30 % and 50 %.
    ev(
      10,
      "checkout.session.completed",
      checkoutSession({
        id: pack.cs,
        accountId: account,
        customer: cus,
        mode: "payment",
        paymentStatus: "unpaid",
        item: catalog.pack.key,
        amountTotal: catalog.pack.price,
        paymentIntent: pack.pi,
      }),
      t0 + 20,
    ),
    ev(
      11,
      "checkout.session.async_payment_succeeded",
      checkoutSession({
        id: pack.cs,
        accountId: account,
        customer: cus,
        mode: "payment",
        paymentStatus: "paid",
        item: catalog.pack.key,
        amountTotal: catalog.pack.price,
        paymentIntent: pack.pi,
      }),
      t0 + 30,
    ),
    ev(
      12,
      "payment_intent.succeeded",
      paymentIntent({ id: pack.pi, latestCharge: pack.ch, amount: catalog.pack.price }),
      t0 + 30,
    ),
    ev(
      13,
      "charge.refunded",
      charge({ id: pack.ch, paymentIntent: pack.pi, amount: catalog.pack.price, amountRefunded: 300 }),
      t0 + 40,
    ),
    ev(
      14,
      "charge.refunded",
      charge({ id: pack.ch, paymentIntent: pack.pi, amount: catalog.pack.price, amountRefunded: 500 }),
      t0 + 41,
    ),
    // The first invoice's charge is disputed, then the dispute is won.
    ev(
      15,
      "charge.dispute.created",
      dispute({
        id: first.dp,
        charge: first.ch,
        paymentIntent: first.pi,
        amount: basic.price,
        status: "needs_response",
      }),
      t0 + 50,
    ),
    ev(
      16,
      "charge.dispute.closed",
      dispute({ id: first.dp, charge: first.ch, paymentIntent: first.pi, amount: basic.price, status: "won" }),
      t0 + 60,
    ),
    // Renewal: the first attempt fails, the retry succeeds.
    ev(
      17,
      "customer.subscription.updated",
      subscription({ ...subBase, priceId: pro.priceId, status: "past_due", periodStart: end, periodEnd: nextEnd }),
      t0 + 70,
    ),
    ev(
      18,
      "invoice.payment_failed",
      invoice({
        id: second.inv,
        customer: cus,
        subscription: sub,
        accountId: account,
        priceId: pro.priceId,
        amountPaid: 0,
        amountDue: pro.price,
        status: "open",
        periodStart: end,
        periodEnd: nextEnd,
      }),
      t0 + 70,
    ),
    ev(
      19,
      "invoice.paid",
      invoice({
        id: second.inv,
        customer: cus,
        subscription: sub,
        accountId: account,
        priceId: pro.priceId,
        amountPaid: pro.price,
        periodStart: end,
        periodEnd: nextEnd,
        paymentIntent: second.pi,
        charge: second.ch,
      }),
      t0 + 80,
    ),
    ev(
      20,
      "customer.subscription.updated",
      subscription({ ...subBase, priceId: pro.priceId, status: "active", periodStart: end, periodEnd: nextEnd }),
      t0 + 80,
    ),
    ev(
      21,
      "customer.subscription.deleted",
      subscription({ ...subBase, priceId: pro.priceId, status: "canceled", periodStart: end, periodEnd: nextEnd }),
      t0 + 90,
    ),
  ];
}

/** Everything the events decide, with the ids that differ between accounts left out. */
async function stateOf(sql: Sql, account: string) {
  const subs = await sql`select plan_key, status, quantity, cancel_at_period_end,
                                extract(epoch from current_period_start)::bigint as period_start,
                                extract(epoch from current_period_end)::bigint as period_end
                         from public.subscriptions where account_id = ${account}`;
  const payments =
    await sql`select kind, item_key, status, settlement, amount, amount_refunded, credits_due, credits_granted,
                                    credits_clawed_back, dispute_status, flagged_reason, stripe_charge_id is not null as has_charge
                             from public.payments where account_id = ${account} order by kind, amount, credits_due`;
  const [customerRow] = await sql`select status from public.billing_customers where account_id = ${account}`;
  const [plan] = await sql`select plan_key from private.account_plan(${account})`;
  return {
    subscriptions: subs.map((s) => ({ ...s })),
    payments: payments.map((p) => ({ ...p })),
    customer: customerRow?.status,
    plan: plan.plan_key,
    wallet: await balance(sql, account),
  };
}

async function deliverAll(sql: Sql, events: StripeEventJson[]): Promise<string[]> {
  const handler = createWebhookHandler({ env: testEnv(), sql, log: () => {} });
  // Our checkout function recorded its sessions when it created them, before any event.
  await recordCheckoutSessions(sql, events);
  const statuses: string[] = [];
  for (const event of events) {
    const response = await handler(await webhookRequest(event));
    const body = await response.json();
    assertEquals(response.status, 200, `${event.type}: ${JSON.stringify(body)}`);
    statuses.push(body.status);
  }
  return statuses;
}

Deno.test("the same event stream in order, reversed, and shuffled with duplicates ends in the same state", async () => {
  const sql = connect();
  try {
    const catalog = await createCatalog(sql);
    const t0 = Math.floor(Date.now() / 1000) - 3600;

    // In order: the reference.
    const ordered = await createUser(sql);
    await deliverAll(sql, lifeOf(ordered, catalog, t0));
    const expected = await stateOf(sql, ordered);
    assertEquals(expected.subscriptions[0]?.status, "canceled");
    assertEquals(expected.plan, "free", "canceled: back on free");
    assertEquals(
      expected.wallet,
      { balance: 50 + 250 - 125 + 100 + 1000, available: 50 + 250 - 125 + 100 + 1000 },
      "signup + pack - half the pack refunded + both invoices (the won dispute gave its credits back)",
    );
    const byKind = Object.fromEntries(expected.payments.map((p) => [`${p.kind}:${p.amount}`, p]));
    assertEquals(byKind["credit_pack:1000"].status, "partially_refunded");
    assertEquals(byKind["subscription_invoice:1000"].dispute_status, "won");
    assertEquals(byKind["subscription_invoice:2900"].status, "paid");

    // Reversed.
    const reversed = await createUser(sql);
    await deliverAll(sql, lifeOf(reversed, catalog, t0).reverse());
    assertEquals(await stateOf(sql, reversed), expected, "reversed");

    // Shuffled with duplicates (fast-check: reproducible from its seed on failure).
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat(), { minLength: 21, maxLength: 21 }),
        fc.array(fc.nat({ max: 20 }), { minLength: 1, maxLength: 8 }),
        async (keys, duplicated) => {
          const account = await createUser(sql);
          const events = lifeOf(account, catalog, t0);
          const stream = [...events, ...duplicated.map((i) => events[i])]
            .map((event, i) => ({ event, key: keys[i % keys.length] * 31 + i }))
            .sort((a, b) => a.key - b.key)
            .map((x) => x.event);
          const statuses = await deliverAll(sql, stream);
          assert(
            statuses.filter((s) => s === "duplicate").length === duplicated.length,
            "every redelivery is a duplicate",
          );
          assertEquals(await stateOf(sql, account), expected);
        },
      ),
      { numRuns: 6 },
    );
  } finally {
    await sql.end();
  }
});

Deno.test("same-second ties are broken the same way whatever the arrival order", async () => {
  const sql = connect();
  try {
    const catalog = await createCatalog(sql);
    const t = Math.floor(Date.now() / 1000) - 100;
    const outcome = async (order: number[]) => {
      const account = await createUser(sql);
      const sub = `sub_${uid()}`;
      const base = { id: sub, customer: `cus_${uid()}`, accountId: account, priceId: catalog.basic.priceId };
      // Stripe sends trial_will_end and updated in the same second (stripe-sync-engine #268), and
      // two updates in one second whose only difference is the cancellation flag.
      const events = [
        stripeEvent(
          "customer.subscription.trial_will_end",
          subscription({ ...base, status: "trialing", trialEnd: t + 3 * DAY }),
          { id: "evt_tie_a", created: t },
        ),
        stripeEvent("customer.subscription.updated", subscription({ ...base, status: "active" }), {
          id: "evt_tie_b",
          created: t,
        }),
        stripeEvent(
          "customer.subscription.updated",
          subscription({ ...base, status: "active", cancelAtPeriodEnd: true }),
          { id: `evt_tie_c`, created: t },
        ),
      ];
      // Event ids are global: make them unique per account but keep their order.
      for (const e of events) e.id = `${e.id}_${sub}`;
      await deliverAll(sql, order.map((i) => events[i]));
      const [row] =
        await sql`select status, cancel_at_period_end, last_event_id from public.subscriptions where stripe_subscription_id = ${sub}`;
      return {
        status: row.status,
        cancel: row.cancel_at_period_end,
        last: (row.last_event_id as string).split("_")[2],
      };
    };
    const expected = { status: "active", cancel: true, last: "c" };
    for (const order of [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]]) {
      assertEquals(
        await outcome(order),
        expected,
        `order ${order.join(",")}: the further status wins, then the greater event id`,
      );
    }
  } finally {
    await sql.end();
  }
});
