/**
 * Story: Stripe posts events to /functions/v1/stripe-webhook. Each is signed (the stripe
 * library's test-header helper signs them here), built from Stripe's fixture objects, and
 * handled by private.handle_stripe_event in one transaction: payments and credits, the
 * subscription and the account's plan, refunds and disputes, the catalog, notifications and
 * the audit log. Bad signatures, stale timestamps and malformed bodies are refused with 400
 * and nothing written; a database failure is a 500 with nothing written, so Stripe retries.
 */
import { createWebhookHandler } from "../stripe-webhook/handler.ts";
import { createDb, type Sql } from "../_shared/db.ts";
import { assert, assertEquals } from "./_support/assert.ts";
import { atTime } from "./_support/wallet.ts";
import {
  accountPlan,
  auditActions,
  balance,
  createUser,
  notificationsOf,
  paymentsOf,
  subscriptionOf,
  testEnv,
  webhookEvent,
} from "./_support/stripe/billing_db.ts";
import {
  charge,
  checkoutSession,
  customer,
  dispute,
  invoice,
  invoicePayment,
  paymentIntent,
  price,
  product,
  stripeEvent,
  subscription,
  uid,
  webhookRequest,
} from "./_support/stripe/events.ts";
import { customerFor, packBuyer, subscriber, withWorld, type World } from "./_support/stripe/world.ts";

const DAY = 86_400;
const now = () => Math.floor(Date.now() / 1000);
const silent = () => {};

// ---------------------------------------------------------------------------
// Credit packs
// ---------------------------------------------------------------------------

Deno.test("a paid credit-pack checkout grants the pack's credits once, never expiring; a redelivery is a duplicate", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const { pack } = world.catalog;
    const session = checkoutSession({
      id: `cs_test_${uid()}`,
      accountId: account,
      customer: cus,
      mode: "payment",
      paymentStatus: "paid",
      item: pack.key,
      quantity: 2,
      amountSubtotal: pack.price * 2,
      amountTotal: pack.price * 2,
      paymentIntent: `pi_${uid()}`,
    });
    const event = stripeEvent("checkout.session.completed", session);

    const first = await world.deliver(event);
    assertEquals(first, { status: 200, body: { received: true, status: "processed" } });
    const [payment] = await paymentsOf(world.sql, account);
    assertEquals([payment.kind, payment.status, payment.item_key, payment.credits_granted], [
      "credit_pack",
      "paid",
      pack.key,
      "500",
    ]);
    assertEquals(await balance(world.sql, account), { balance: 550, available: 550 }, "50 signup + 2 x 250");
    const [grant] = await world.sql`select expires_at, source from public.credit_grants where id = ${payment.grant_id}`;
    assertEquals([grant.expires_at, grant.source], [null, "purchase"], "purchased credits never expire");

    // Stripe delivers again: answered 200 duplicate, nothing granted twice.
    const again = await world.deliver(event);
    assertEquals(again, { status: 200, body: { received: true, status: "duplicate" } });
    assertEquals((await balance(world.sql, account)).balance, 550);
    assertEquals((await webhookEvent(world.sql, event.id)).attempts, 2);
    const [audited] = await world
      .sql`select action, after from public.audit_log where entity = 'payment' and entity_id = ${payment.id}`;
    assertEquals(
      [audited.action, audited.after.credits_granted, audited.after.amount],
      ["payment.paid", 500, 2000],
      "the payment and its credits are audited",
    );
  });
});

Deno.test("a delayed payment stays pending until async_payment_succeeded; a failed one is marked failed and credits nothing", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const { pack } = world.catalog;
    const base = {
      accountId: account,
      customer: cus,
      mode: "payment" as const,
      item: pack.key,
      amountTotal: pack.price,
    };

    const delayed = checkoutSession({ ...base, id: `cs_test_${uid()}`, paymentStatus: "unpaid" });
    await world.deliver(stripeEvent("checkout.session.completed", delayed, { created: now() - 60 }));
    assertEquals((await paymentsOf(world.sql, account))[0].status, "pending");
    assertEquals((await balance(world.sql, account)).balance, 50, "nothing granted while the bank debit is pending");
    await world.deliver(
      stripeEvent("checkout.session.async_payment_succeeded", { ...delayed, payment_status: "paid" }),
    );
    assertEquals((await paymentsOf(world.sql, account))[0].status, "paid");
    assertEquals((await balance(world.sql, account)).balance, 300);

    const failing = checkoutSession({ ...base, id: `cs_test_${uid()}`, paymentStatus: "unpaid" });
    await world.deliver(stripeEvent("checkout.session.completed", failing));
    await world.deliver(stripeEvent("checkout.session.async_payment_failed", failing));
    const failed = (await paymentsOf(world.sql, account)).find((p) => p.stripe_checkout_session_id === failing.id);
    assertEquals([failed?.status, failed?.credits_granted], ["failed", "0"]);
    assertEquals((await balance(world.sql, account)).balance, 300);

    // An expired session bought nothing.
    const expired = await world.deliver(
      stripeEvent(
        "checkout.session.expired",
        checkoutSession({ ...base, id: `cs_test_${uid()}`, paymentStatus: "unpaid", status: "expired" }),
      ),
    );
    assertEquals(expired.body.status, "ignored");
  });
});

Deno.test("a checkout whose amount does not match the catalog is recorded and flagged, never credited", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const { pack } = world.catalog;
    const cheap = checkoutSession({
      id: `cs_test_${uid()}`,
      accountId: account,
      customer: cus,
      mode: "payment",
      paymentStatus: "paid",
      item: pack.key,
      quantity: 4,
      amountSubtotal: pack.price,
      amountTotal: pack.price,
    });
    assertEquals((await world.deliver(stripeEvent("checkout.session.completed", cheap))).body.status, "processed");
    const [payment] = await paymentsOf(world.sql, account);
    assertEquals(payment.status, "paid");
    assertEquals(payment.credits_granted, "0");
    assertEquals(payment.flagged_reason, `amount_mismatch: expected 4000 usd, got 1000`);
    assertEquals((await balance(world.sql, account)).balance, 50);

    const euros = checkoutSession({
      id: `cs_test_${uid()}`,
      accountId: account,
      customer: cus,
      mode: "payment",
      paymentStatus: "paid",
      item: pack.key,
      amountTotal: pack.price,
      currency: "eur",
    });
    await world.deliver(stripeEvent("checkout.session.completed", euros));
    const flagged = (await paymentsOf(world.sql, account)).find((p) => p.stripe_checkout_session_id === euros.id);
    assertEquals(flagged?.flagged_reason, "currency_mismatch: expected usd, got eur");
  });
});

Deno.test("a checkout is checked on its amount before discounts, net of tax: a coupon earns the credits, tax is not the price", async () => {
  await withWorld(async (world) => {
    const { account, pack, base, paymentOf } = await packBuyer(world);

    // A 100%-off coupon: the subtotal matches the price, nothing was paid (docs/billing.md#payments: discounts are not mismatches).
    const free = checkoutSession({
      ...base,
      id: `cs_test_${uid()}`,
      paymentStatus: "no_payment_required",
      amountSubtotal: pack.price,
      amountTotal: 0,
      amountDiscount: pack.price,
    });
    assertEquals((await world.deliver(stripeEvent("checkout.session.completed", free))).body.status, "processed");
    let payment = await paymentOf(free.id);
    assertEquals([payment?.credits_granted, payment?.flagged_reason], ["250", null]);

    // A 40%-off coupon.
    const discounted = checkoutSession({
      ...base,
      id: `cs_test_${uid()}`,
      paymentStatus: "paid",
      amountSubtotal: pack.price,
      amountTotal: 600,
      amountDiscount: 400,
    });
    await world.deliver(stripeEvent("checkout.session.completed", discounted));
    payment = await paymentOf(discounted.id);
    assertEquals([payment?.status, payment?.credits_granted, payment?.flagged_reason, payment?.amount], [
      "paid",
      "250",
      null,
      "600",
    ]);
    assertEquals((await balance(world.sql, account)).balance, 550, "both earned the pack's credits");

    // Tax on top of the price is paid, not discounted: credited.
    const taxed = checkoutSession({
      ...base,
      id: `cs_test_${uid()}`,
      paymentStatus: "paid",
      amountSubtotal: pack.price,
      amountTotal: pack.price + 200,
      amountTax: 200,
    });
    await world.deliver(stripeEvent("checkout.session.completed", taxed));
    payment = await paymentOf(taxed.id);
    assertEquals([payment?.credits_granted, payment?.flagged_reason, payment?.amount], [
      "250",
      null,
      String(pack.price + 200),
    ]);
    assertEquals((await balance(world.sql, account)).balance, 800);

    // no_payment_required never earns the credits of a pack that costs something unless a discount explains it.
    const odd = checkoutSession({
      ...base,
      id: `cs_test_${uid()}`,
      paymentStatus: "no_payment_required",
      amountTotal: pack.price,
    });
    await world.deliver(stripeEvent("checkout.session.completed", odd));
    payment = await paymentOf(odd.id);
    assertEquals([payment?.credits_granted, payment?.flagged_reason], [
      "0",
      `no_payment_required: expected ${pack.price} usd`,
    ]);
    assertEquals((await balance(world.sql, account)).balance, 800);
  });
});

// ---------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------

Deno.test("a subscription invoice is checked on its amount before discounts, net of tax: a shortfall no discount explains is flagged, tax is not", async () => {
  await withWorld(async (world) => {
    const { account, basic, base, paymentOf } = await subscriber(world);

    // 500 paid for the 1000 plan, and no discount on the invoice (discounted invoices: stripe_discounts_test.ts).
    const coupon = invoice({
      ...base,
      id: `in_${uid()}`,
      amountPaid: 500,
      subtotal: basic.price,
      totalExcludingTax: 500,
      billingReason: "subscription_create",
    });
    await world.deliver(stripeEvent("invoice.paid", coupon));
    let payment = await paymentOf(coupon.id);
    assertEquals([payment?.status, payment?.credits_granted, payment?.flagged_reason], [
      "paid",
      "0",
      `amount_mismatch: expected ${basic.price} usd, got 500`,
    ]);

    const free = invoice({ ...base, id: `in_${uid()}`, amountPaid: 0, subtotal: basic.price, totalExcludingTax: 0 });
    await world.deliver(stripeEvent("invoice.paid", free));
    payment = await paymentOf(free.id);
    assertEquals([payment?.credits_granted, payment?.flagged_reason], [
      "0",
      `amount_mismatch: expected ${basic.price} usd, got 0`,
    ], "nothing paid and no discount reported is flagged");
    assertEquals((await balance(world.sql, account)).balance, 50);

    const taxed = invoice({
      ...base,
      id: `in_${uid()}`,
      amountPaid: basic.price + 190,
      subtotal: basic.price,
      tax: 190,
    });
    await world.deliver(stripeEvent("invoice.paid", taxed));
    payment = await paymentOf(taxed.id);
    assertEquals([payment?.credits_granted, payment?.flagged_reason], ["100", null]);
    assertEquals((await balance(world.sql, account)).balance, 150);
  });
});

Deno.test("a subscription's life: created, upgraded, paused, resumed, canceled — the account's plan and quotas follow it", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const { basic, pro } = world.catalog;
    const sub = `sub_${uid()}`;
    const start = now() - DAY;
    const end = start + 30 * DAY;
    const t = now() - 600;
    const base = { id: sub, customer: cus, accountId: account, periodStart: start, periodEnd: end };

    assertEquals((await accountPlan(world.sql, account)).plan_key, "free");
    await world.deliver(
      stripeEvent(
        "customer.subscription.created",
        subscription({ ...base, priceId: basic.priceId, status: "active" }),
        { created: t },
      ),
    );
    const created = await subscriptionOf(world.sql, sub);
    assertEquals([created.plan_key, created.status, created.account_id], [basic.key, "active", account]);
    assertEquals(created.current_period_end?.getTime(), end * 1000, "unix seconds x 1000: not 1970");
    const plan = await accountPlan(world.sql, account);
    assertEquals(
      [plan.plan_key, plan.period_end.getTime()],
      [basic.key, end * 1000],
      "quotas and rate limits follow the subscription",
    );
    assertEquals(plan.limits, {
      quotas: { api_call: 5000 },
      rate_limits: { consume_credits: { capacity: 300, refill_per_second: 30 } },
    });

    await world.deliver(
      stripeEvent("customer.subscription.updated", subscription({ ...base, priceId: pro.priceId, status: "active" }), {
        created: t + 10,
      }),
    );
    assertEquals((await subscriptionOf(world.sql, sub)).plan_key, pro.key);
    await world.deliver(
      stripeEvent("customer.subscription.paused", subscription({ ...base, priceId: pro.priceId, status: "paused" }), {
        created: t + 20,
      }),
    );
    assertEquals((await accountPlan(world.sql, account)).plan_key, "free", "a paused subscription entitles to nothing");
    await world.deliver(
      stripeEvent("customer.subscription.resumed", subscription({ ...base, priceId: pro.priceId, status: "active" }), {
        created: t + 30,
      }),
    );
    assertEquals((await accountPlan(world.sql, account)).plan_key, pro.key);
    const [entitled] = await world
      .sql`select plan_key, tier, status, current_period_end from public.account_entitlements where account_id = ${account}`;
    assertEquals([entitled.plan_key, entitled.tier, entitled.status], [pro.key, 2, "active"]);

    await world.deliver(
      stripeEvent(
        "customer.subscription.deleted",
        subscription({ ...base, priceId: pro.priceId, status: "canceled" }),
        { created: t + 40 },
      ),
    );
    assertEquals((await subscriptionOf(world.sql, sub)).status, "canceled");
    assertEquals((await accountPlan(world.sql, account)).plan_key, "free");

    const history = await world
      .sql`select reason, old_plan_key, new_plan_key, new_status from public.subscription_history
                                      where stripe_subscription_id = ${sub} order by id`;
    assertEquals(history.map((h) => h.reason), ["created", "upgraded", "status_changed", "status_changed", "canceled"]);
    assert((await auditActions(world.sql, account)).includes("subscription.upgraded"));

    // A late, older update never resurrects a canceled subscription.
    const late = await world.deliver(
      stripeEvent("customer.subscription.updated", subscription({ ...base, priceId: pro.priceId, status: "active" }), {
        created: t + 35,
      }),
    );
    assertEquals(late.body.status, "processed");
    assertEquals((await subscriptionOf(world.sql, sub)).status, "canceled");
  });
});

Deno.test("period fields come from the subscription item (API basil+) and, on older API versions, from the subscription", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const start = now() - 3 * DAY;
    const end = start + 30 * DAY;
    const onItem = `sub_${uid()}`;
    await world.deliver(stripeEvent(
      "customer.subscription.created",
      subscription({
        id: onItem,
        customer: cus,
        accountId: account,
        priceId: world.catalog.basic.priceId,
        status: "active",
        periodStart: start,
        periodEnd: end,
      }),
    ));
    const fromItem = await subscriptionOf(world.sql, onItem);
    assertEquals([fromItem.current_period_start?.getTime(), fromItem.current_period_end?.getTime()], [
      start * 1000,
      end * 1000,
    ]);

    const legacy = `sub_${uid()}`;
    const old = subscription({
      id: legacy,
      customer: cus,
      accountId: account,
      priceId: world.catalog.basic.priceId,
      status: "trialing",
      periodStart: start + 60,
      periodEnd: end + 60,
      periodOnSubscription: true,
      trialEnd: end + 60,
    });
    const event = stripeEvent("customer.subscription.created", old);
    event.api_version = "2024-06-20";
    await world.deliver(event);
    const fromSubscription = await subscriptionOf(world.sql, legacy);
    assertEquals([
      fromSubscription.current_period_start?.getTime(),
      fromSubscription.current_period_end?.getTime(),
      fromSubscription.status,
    ], [(start + 60) * 1000, (end + 60) * 1000, "trialing"]);
  });
});

Deno.test("trial_will_end notifies the account's billing managers", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const trialEnd = now() + 3 * DAY;
    const event = stripeEvent(
      "customer.subscription.trial_will_end",
      subscription({
        id: `sub_${uid()}`,
        customer: cus,
        accountId: account,
        priceId: world.catalog.basic.priceId,
        status: "trialing",
        trialEnd,
      }),
    );
    assertEquals((await world.deliver(event)).body.status, "processed");
    const [note] = await notificationsOf(world.sql, account);
    assertEquals([note?.type, note?.title], ["warning", "Your trial ends soon"]);
    await world.deliver(event);
    assertEquals((await notificationsOf(world.sql, account)).length, 1, "a redelivery notifies nobody again");
  });
});

// ---------------------------------------------------------------------------
// Invoices
// ---------------------------------------------------------------------------

Deno.test("a paid subscription invoice grants the plan's credits expiring at the period end, once per invoice", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const { pro } = world.catalog;
    const sub = `sub_${uid()}`;
    const periodEnd = now() + 29 * DAY;
    const inv = invoice({
      id: `in_${uid()}`,
      customer: cus,
      subscription: sub,
      accountId: account,
      priceId: pro.priceId,
      amountPaid: pro.price,
      billingReason: "subscription_create",
      periodStart: now() - DAY,
      periodEnd,
    });
    // invoice.paid may arrive before the subscription itself: the account comes from the invoice.
    assertEquals((await world.deliver(stripeEvent("invoice.paid", inv))).body.status, "processed");
    assertEquals((await world.deliver(stripeEvent("invoice.payment_succeeded", inv))).body.status, "processed");
    const [payment] = await paymentsOf(world.sql, account);
    assertEquals([payment.kind, payment.status, payment.item_key, payment.credits_granted], [
      "subscription_invoice",
      "paid",
      pro.key,
      "1000",
    ]);
    const [grant] = await world.sql`select expires_at, source from public.credit_grants where id = ${payment.grant_id}`;
    assertEquals([grant.source, (grant.expires_at as Date).getTime()], ["subscription", periodEnd * 1000]);
    assertEquals((await balance(world.sql, account)).balance, 1050, "granted once although two events said paid");
    const [ledger] = await world
      .sql`select idempotency_key from public.credit_ledger where grant_id = ${payment.grant_id}`;
    assertEquals(ledger.idempotency_key, `invoice:${inv.id}`);

    // A $0 trial invoice and a proration are recorded but grant nothing.
    const trial = invoice({
      id: `in_${uid()}`,
      customer: cus,
      subscription: sub,
      accountId: account,
      priceId: pro.priceId,
      amountPaid: 0,
      billingReason: "subscription_create",
    });
    await world.deliver(stripeEvent("invoice.paid", trial));
    assertEquals((await balance(world.sql, account)).balance, 1050);

    // An invoice without a subscription (a one-off) is not ours to credit.
    const oneOff = invoice({
      id: `in_${uid()}`,
      customer: cus,
      subscription: "x",
      priceId: pro.priceId,
      amountPaid: 500,
    });
    (oneOff.parent as Record<string, unknown>).subscription_details = null;
    assertEquals((await world.deliver(stripeEvent("invoice.paid", oneOff))).body.status, "ignored");
  });
});

Deno.test("a failed invoice payment is recorded and the billing managers notified; a later success wins", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const { basic } = world.catalog;
    const inv = invoice({
      id: `in_${uid()}`,
      customer: cus,
      subscription: `sub_${uid()}`,
      accountId: account,
      priceId: basic.priceId,
      amountPaid: 0,
      amountDue: basic.price,
      status: "open",
      billingReason: "subscription_cycle",
    });
    await world.deliver(stripeEvent("invoice.payment_failed", inv, { created: now() - 100 }));
    assertEquals((await paymentsOf(world.sql, account))[0].status, "failed");
    const [note] = await notificationsOf(world.sql, account);
    assertEquals([note.type, note.title], ["error", "Payment failed"]);
    assertEquals(note.data.stripe_invoice_id, inv.id);

    await world.deliver(
      stripeEvent("invoice.paid", { ...inv, status: "paid", amount_paid: basic.price }, { created: now() - 50 }),
    );
    const [paid] = await paymentsOf(world.sql, account);
    assertEquals([paid.status, paid.credits_granted], ["paid", "100"]);
    // The failure arriving again late (a retry of an old delivery) changes nothing.
    await world.deliver(stripeEvent("invoice.payment_failed", inv, { created: now() - 90 }));
    assertEquals((await paymentsOf(world.sql, account))[0].status, "paid");
  });
});

// ---------------------------------------------------------------------------
// Refunds and disputes
// ---------------------------------------------------------------------------

Deno.test("refunds claw back credits in proportion, cumulatively; a full refund takes them all", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const { pack } = world.catalog;
    const pi = `pi_${uid()}`;
    const ch = `ch_${uid()}`;
    await world.deliver(stripeEvent(
      "checkout.session.completed",
      checkoutSession({
        id: `cs_test_${uid()}`,
        accountId: account,
        customer: cus,
        mode: "payment",
        paymentStatus: "paid",
        item: pack.key,
        amountTotal: pack.price,
        paymentIntent: pi,
      }),
    ));
    await world.deliver(
      stripeEvent("payment_intent.succeeded", paymentIntent({ id: pi, latestCharge: ch, amount: pack.price })),
    );
    assertEquals((await balance(world.sql, account)).balance, 300);

    await world.deliver(
      stripeEvent("charge.refunded", charge({ id: ch, paymentIntent: pi, amount: pack.price, amountRefunded: 300 }), {
        created: now() - 20,
      }),
    );
    let [payment] = await paymentsOf(world.sql, account);
    assertEquals([payment.status, payment.amount_refunded, payment.credits_clawed_back], [
      "partially_refunded",
      "300",
      "75",
    ]);
    assertEquals((await balance(world.sql, account)).balance, 225, "250 x 300 / 1000 = 75 back");

    await world.deliver(
      stripeEvent("charge.refunded", charge({ id: ch, paymentIntent: pi, amount: pack.price, amountRefunded: 500 }), {
        created: now() - 10,
      }),
    );
    [payment] = await paymentsOf(world.sql, account);
    assertEquals([payment.amount_refunded, payment.credits_clawed_back], ["500", "125"]);
    assertEquals((await balance(world.sql, account)).balance, 175, "only the increment is taken back");

    await world.deliver(
      stripeEvent(
        "charge.refunded",
        charge({ id: ch, paymentIntent: pi, amount: pack.price, amountRefunded: pack.price }),
      ),
    );
    [payment] = await paymentsOf(world.sql, account);
    assertEquals([payment.status, payment.credits_clawed_back], ["refunded", "250"]);
    assertEquals((await balance(world.sql, account)).balance, 50);
    const audit = await auditActions(world.sql, account);
    assert(audit.includes("payment.partially_refunded") && audit.includes("payment.refunded"), "refunds are audited");
  });
});

Deno.test("a dispute claws the credits back, even into debt; a won dispute gives them back, a lost one keeps them", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const { pro } = world.catalog;
    const sub = `sub_${uid()}`;
    const won = { inv: `in_${uid()}`, pi: `pi_${uid()}`, ch: `ch_${uid()}`, dp: `dp_${uid()}` };
    await world.deliver(stripeEvent(
      "invoice.paid",
      invoice({
        id: won.inv,
        customer: cus,
        subscription: sub,
        accountId: account,
        priceId: pro.priceId,
        amountPaid: pro.price,
        billingReason: "subscription_create",
      }),
    ));
    // basil+: the invoice names its PaymentIntent only through invoice_payment.paid.
    await world.deliver(
      stripeEvent("invoice_payment.paid", invoicePayment({ invoice: won.inv, paymentIntent: won.pi, charge: won.ch })),
    );
    await world.sql`select public.admin_adjust_credits(${account}::uuid, -900, 'spent for the test', ${uid()})`;
    assertEquals((await balance(world.sql, account)).balance, 150);

    await world.deliver(
      stripeEvent(
        "charge.dispute.created",
        dispute({ id: won.dp, charge: won.ch, paymentIntent: won.pi, amount: pro.price, status: "needs_response" }),
        { created: now() - 100 },
      ),
    );
    let [payment] = await paymentsOf(world.sql, account);
    assertEquals([payment.status, payment.credits_clawed_back], ["disputed", "1000"]);
    assertEquals(await balance(world.sql, account), { balance: -850, available: -850 }, "what was spent is owed");

    await world.deliver(
      stripeEvent(
        "charge.dispute.closed",
        dispute({ id: won.dp, charge: won.ch, paymentIntent: won.pi, amount: pro.price, status: "won" }),
      ),
    );
    [payment] = await paymentsOf(world.sql, account);
    assertEquals([payment.status, payment.credits_clawed_back, payment.dispute_status], ["paid", "0", "won"]);
    assertEquals((await balance(world.sql, account)).balance, 150);

    const lost = { inv: `in_${uid()}`, pi: `pi_${uid()}`, ch: `ch_${uid()}`, dp: `dp_${uid()}` };
    await world.deliver(stripeEvent(
      "invoice.paid",
      invoice({
        id: lost.inv,
        customer: cus,
        subscription: sub,
        accountId: account,
        priceId: pro.priceId,
        amountPaid: pro.price,
        paymentIntent: lost.pi,
        charge: lost.ch,
      }),
    ));
    assertEquals((await balance(world.sql, account)).balance, 1150);
    await world.deliver(
      stripeEvent(
        "charge.dispute.created",
        dispute({ id: lost.dp, charge: lost.ch, amount: pro.price, status: "warning_needs_response" }),
        { created: now() - 100 },
      ),
    );
    await world.deliver(
      stripeEvent(
        "charge.dispute.closed",
        dispute({ id: lost.dp, charge: lost.ch, amount: pro.price, status: "lost" }),
      ),
    );
    const lostPayment = (await paymentsOf(world.sql, account)).find((p) => p.stripe_invoice_id === lost.inv);
    assertEquals([lostPayment?.status, lostPayment?.credits_clawed_back], ["disputed", "1000"]);
    assertEquals((await balance(world.sql, account)).balance, 150);
    assert((await auditActions(world.sql, account)).includes("payment.disputed"));
  });
});

/** Business time moves to `at` and the account's lots due by then expire (an `expire` ledger row each). */
async function expireAt(sql: Sql, account: string, at: number): Promise<void> {
  await atTime(sql, new Date(at * 1000).toISOString(), async (tx) => {
    await tx`select 1 from public.credit_balances where account_id = ${account} for update`;
    await tx`select private.expire_account_grants(${account}::uuid)`;
  });
}

/** A paid first invoice of `plan` whose period ends in an hour, with its PaymentIntent and charge. */
async function shortPeriodInvoice(
  world: World,
  account: string,
  cus: string,
  plan: { priceId: string; price: number },
) {
  const ids = { inv: `in_${uid()}`, pi: `pi_${uid()}`, ch: `ch_${uid()}`, dp: `dp_${uid()}` };
  const periodEnd = now() + 3600;
  await world.deliver(stripeEvent(
    "invoice.paid",
    invoice({
      id: ids.inv,
      customer: cus,
      subscription: `sub_${uid()}`,
      accountId: account,
      priceId: plan.priceId,
      amountPaid: plan.price,
      billingReason: "subscription_create",
      periodStart: periodEnd - 30 * DAY,
      periodEnd,
      paymentIntent: ids.pi,
      charge: ids.ch,
    }),
  ));
  return { ...ids, periodEnd };
}

Deno.test("a refund after the plan credits expired takes back nothing more: no other credits, no debt", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const { basic } = world.catalog;
    const paid = await shortPeriodInvoice(world, account, cus, basic);
    assertEquals((await balance(world.sql, account)).balance, 150, "50 signup + 100 plan credits");
    await expireAt(world.sql, account, paid.periodEnd + 3600);
    assertEquals((await balance(world.sql, account)).balance, 50, "the plan credits expired");

    await world.deliver(
      stripeEvent(
        "charge.refunded",
        charge({ id: paid.ch, paymentIntent: paid.pi, amount: basic.price, amountRefunded: basic.price }),
      ),
    );
    const [payment] = await paymentsOf(world.sql, account);
    assertEquals([payment.status, payment.credits_clawed_back], ["refunded", "0"]);
    assertEquals(await balance(world.sql, account), { balance: 50, available: 50 }, "the signup bonus stays, no debt");
  });
});

Deno.test("a partial refund, then expiry, then a full refund: only the unexpired share is ever taken back", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const { basic } = world.catalog;
    const paid = await shortPeriodInvoice(world, account, cus, basic);
    await world.deliver(
      stripeEvent(
        "charge.refunded",
        charge({ id: paid.ch, paymentIntent: paid.pi, amount: basic.price, amountRefunded: 400 }),
        { created: now() - 10 },
      ),
    );
    assertEquals((await balance(world.sql, account)).balance, 110, "40% of 100 taken back");
    await expireAt(world.sql, account, paid.periodEnd + 3600);
    assertEquals((await balance(world.sql, account)).balance, 50, "the other 60 expired");

    await world.deliver(
      stripeEvent(
        "charge.refunded",
        charge({ id: paid.ch, paymentIntent: paid.pi, amount: basic.price, amountRefunded: basic.price }),
      ),
    );
    const [payment] = await paymentsOf(world.sql, account);
    assertEquals(
      [payment.status, payment.credits_clawed_back],
      ["refunded", "40"],
      "what the first refund took stays taken, nothing more",
    );
    assertEquals((await balance(world.sql, account)).balance, 50);
  });
});

Deno.test("a dispute after the plan credits expired holds nothing; won or lost, the balance is untouched", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const { basic } = world.catalog;
    const paid = await shortPeriodInvoice(world, account, cus, basic);
    await expireAt(world.sql, account, paid.periodEnd + 3600);

    await world.deliver(
      stripeEvent(
        "charge.dispute.created",
        dispute({
          id: paid.dp,
          charge: paid.ch,
          paymentIntent: paid.pi,
          amount: basic.price,
          status: "needs_response",
        }),
        { created: now() - 100 },
      ),
    );
    let [payment] = await paymentsOf(world.sql, account);
    assertEquals([payment.status, payment.credits_clawed_back], ["disputed", "0"]);
    assertEquals(await balance(world.sql, account), { balance: 50, available: 50 }, "no other credits taken, no debt");

    await world.deliver(
      stripeEvent(
        "charge.dispute.closed",
        dispute({ id: paid.dp, charge: paid.ch, paymentIntent: paid.pi, amount: basic.price, status: "won" }),
      ),
    );
    [payment] = await paymentsOf(world.sql, account);
    assertEquals([payment.status, payment.credits_clawed_back], ["paid", "0"]);
    assertEquals((await balance(world.sql, account)).balance, 50, "a won dispute gives back nothing it did not take");

    const lost = await shortPeriodInvoice(world, account, cus, basic);
    await expireAt(world.sql, account, lost.periodEnd + 3600);
    await world.deliver(
      stripeEvent(
        "charge.dispute.closed",
        dispute({ id: lost.dp, charge: lost.ch, amount: basic.price, status: "lost" }),
      ),
    );
    assertEquals((await balance(world.sql, account)).balance, 50);
  });
});

Deno.test("refund, expiry, dispute, won: the dispute takes only what is still delivered and gives back exactly that", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const { basic } = world.catalog;
    const paid = await shortPeriodInvoice(world, account, cus, basic);
    // 30 plan credits are spent (the soonest-expiring lot goes first); the refund takes 40 back; the last 30 expire.
    await world.sql`select public.admin_adjust_credits(${account}::uuid, -30, 'spent for the test', ${uid()})`;
    await world.deliver(
      stripeEvent(
        "charge.refunded",
        charge({ id: paid.ch, paymentIntent: paid.pi, amount: basic.price, amountRefunded: 400 }),
        { created: now() - 200 },
      ),
    );
    assertEquals((await balance(world.sql, account)).balance, 80);
    await expireAt(world.sql, account, paid.periodEnd + 3600);
    assertEquals((await balance(world.sql, account)).balance, 50, "the last 30 plan credits expired");
    const [expired] = await world.sql<{ n: string }[]>`
      select coalesce(sum(-delta), 0)::text as n from public.credit_ledger
      where reason = 'expire' and grant_id = (select grant_id from public.payments where stripe_invoice_id = ${paid.inv})`;
    assertEquals(expired.n, "30");

    // Still delivered: 100 - 30 expired = 70, of which the refund took 40: the dispute holds the 30 spent.
    await world.deliver(
      stripeEvent(
        "charge.dispute.created",
        dispute({
          id: paid.dp,
          charge: paid.ch,
          paymentIntent: paid.pi,
          amount: basic.price,
          status: "needs_response",
        }),
        { created: now() - 100 },
      ),
    );
    let [payment] = await paymentsOf(world.sql, account);
    assertEquals([payment.status, payment.credits_clawed_back], ["disputed", "70"]);
    assertEquals(
      await balance(world.sql, account),
      { balance: 20, available: 20 },
      "no more than the 30 spent is taken, no debt",
    );

    await world.deliver(
      stripeEvent(
        "charge.dispute.closed",
        dispute({ id: paid.dp, charge: paid.ch, paymentIntent: paid.pi, amount: basic.price, status: "won" }),
      ),
    );
    [payment] = await paymentsOf(world.sql, account);
    assertEquals(
      [payment.status, payment.credits_clawed_back],
      ["partially_refunded", "40"],
      "the refund's share stays taken",
    );
    assertEquals((await balance(world.sql, account)).balance, 50, "exactly the 30 the dispute took are given back");
  });
});

// ---------------------------------------------------------------------------
// Customers, catalog, referrals, unknown events
// ---------------------------------------------------------------------------

Deno.test("customer.deleted unlinks the customer, and an old update never links it again", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const [linked] = await world
      .sql`select status, stripe_customer_id, generation from public.billing_customers where account_id = ${account}`;
    assertEquals([linked.status, linked.stripe_customer_id, linked.generation], ["active", cus, 1]);

    await world.deliver(stripeEvent("customer.deleted", customer({ id: cus, accountId: account })));
    const [unlinked] = await world
      .sql`select status, stripe_customer_id, generation from public.billing_customers where account_id = ${account}`;
    assertEquals([unlinked.status, unlinked.stripe_customer_id, unlinked.generation], ["deleted", null, 2]);

    await world.deliver(
      stripeEvent("customer.updated", customer({ id: cus, accountId: account }), { created: now() - 3600 }),
    );
    const [still] = await world.sql`select status from public.billing_customers where account_id = ${account}`;
    assertEquals(still.status, "deleted");
    // A customer that is not ours is recorded and ignored.
    assertEquals(
      (await world.deliver(stripeEvent("customer.created", customer({ id: `cus_${uid()}` })))).body.status,
      "ignored",
    );
  });
});

Deno.test("product and price events update the matching catalog rows; objects not in the catalog are ignored", async () => {
  await withWorld(async (world) => {
    const { pack, basic } = world.catalog;
    const t = now() - 100;
    await world.deliver(
      stripeEvent(
        "price.updated",
        price({ id: basic.priceId, product: basic.productId, active: true, unitAmount: 1200, interval: "year" }),
        { created: t },
      ),
    );
    const [plan] = await world
      .sql`select price_cents, billing_interval, active from public.plans where key = ${basic.key}`;
    assertEquals([plan.price_cents, plan.billing_interval, plan.active], ["1200", "year", true]);

    await world.deliver(
      stripeEvent("product.updated", product({ id: pack.productId, active: false }), { created: t + 10 }),
    );
    assertEquals((await world.sql`select active from public.credit_packs where key = ${pack.key}`)[0].active, false);
    // An older product event arriving late does not reactivate it.
    await world.deliver(
      stripeEvent("product.updated", product({ id: pack.productId, active: true }), { created: t + 5 }),
    );
    assertEquals((await world.sql`select active from public.credit_packs where key = ${pack.key}`)[0].active, false);
    await world.deliver(
      stripeEvent(
        "price.deleted",
        price({ id: basic.priceId, product: basic.productId, active: false, unitAmount: 1200 }),
        { created: t + 20 },
      ),
    );
    assertEquals((await world.sql`select active from public.plans where key = ${basic.key}`)[0].active, false);

    const foreign = await world.deliver(stripeEvent("product.created", product({ id: `prod_${uid()}`, active: true })));
    assertEquals(foreign.body.status, "ignored");
  });
});

Deno.test("with rewards on first payment, the referral is rewarded when the referee's first payment succeeds", async () => {
  await withWorld(async (world) => {
    const [previous] = await world.sql`select value from private.settings where key = 'referral_reward_on'`;
    await world.sql`update private.settings set value = '"first_payment"' where key = 'referral_reward_on'`;
    try {
      const referrer = await createUser(world.sql);
      const [{ referral_code: code }] = await world
        .sql`select referral_code from public.profiles where id = ${referrer}`;
      const referee = await createUser(world.sql, { referral_code: code });
      const [pending] = await world.sql`select status from public.referrals where referee_id = ${referee}`;
      assertEquals(pending.status, "pending");

      const { pack } = world.catalog;
      await world.deliver(stripeEvent(
        "checkout.session.completed",
        checkoutSession({
          id: `cs_test_${uid()}`,
          accountId: referee,
          customer: `cus_${uid()}`,
          mode: "payment",
          paymentStatus: "paid",
          item: pack.key,
          amountTotal: pack.price,
        }),
      ));
      const [rewarded] = await world
        .sql`select status, referrer_reward from public.referrals where referee_id = ${referee}`;
      assertEquals(rewarded.status, "rewarded");
      assertEquals((await balance(world.sql, referrer)).balance, 50 + Number(rewarded.referrer_reward));
    } finally {
      await world.sql`update private.settings set value = ${previous.value} where key = 'referral_reward_on'`;
    }
  });
});

Deno.test("an event type we do not handle is recorded as ignored and answered 200", async () => {
  await withWorld(async (world) => {
    const event = stripeEvent("plan.created", { id: `plan_${uid()}`, object: "plan" });
    assertEquals(await world.deliver(event), { status: 200, body: { received: true, status: "ignored" } });
    assertEquals((await webhookEvent(world.sql, event.id)).status, "ignored");
  });
});

// ---------------------------------------------------------------------------
// What is refused
// ---------------------------------------------------------------------------

Deno.test("bad signatures, stale timestamps, unsigned and malformed bodies get 400 and write nothing", async () => {
  await withWorld(async (world) => {
    const handler = createWebhookHandler({ env: testEnv(), sql: world.sql, log: silent });
    const event = stripeEvent(
      "checkout.session.completed",
      checkoutSession({
        id: `cs_test_${uid()}`,
        accountId: await createUser(world.sql),
        customer: null,
        mode: "payment",
        paymentStatus: "paid",
        item: world.catalog.pack.key,
        amountTotal: world.catalog.pack.price,
      }),
    );
    const cases: [string, Request, string][] = [
      ["wrong secret", await webhookRequest(event, { secret: "whsec_someone_else" }), "invalid_signature"],
      [
        "stale timestamp (10 minutes old)",
        await webhookRequest(event, { timestamp: now() - 600 }),
        "invalid_signature",
      ],
      ["no signature header", await webhookRequest(event, { signature: null }), "invalid_signature"],
      ["garbage signature", await webhookRequest(event, { signature: "t=1,v1=deadbeef" }), "invalid_signature"],
      ["signed body that is not JSON", await webhookRequest("this is not json"), "malformed_event"],
      [
        "signed JSON that is not an event",
        await webhookRequest(JSON.stringify({ id: event.id, hello: "world" })),
        "malformed_event",
      ],
    ];
    for (const [name, request, code] of cases) {
      const response = await handler(request);
      assertEquals([response.status, (await response.json()).error.code], [400, code], name);
    }
    // Tampering after signing: the signature no longer matches.
    const signed = await webhookRequest(event);
    const tampered = new Request(signed.url, {
      method: "POST",
      headers: signed.headers,
      body: JSON.stringify({ ...event, type: "invoice.paid" }),
    });
    assertEquals((await handler(tampered)).status, 400, "a body changed after signing");
    assertEquals(await webhookEvent(world.sql, event.id), undefined, "nothing was recorded");
    assertEquals(
      (await world.sql`select count(*)::int as n from public.payments where stripe_checkout_session_id = ${
        (event.data.object as { id: string }).id
      }`)[0].n,
      0,
    );
  });
});

Deno.test("a signed body with a \\u0000 escape is stored and processed (as U+FFFD), not failed forever", async () => {
  await withWorld(async (world) => {
    const account = await createUser(world.sql);
    const cus = `cus_${uid()}`;
    const c = customer({ id: cus, accountId: account, email: "nul@test.ledgerbase.dev" });
    c.name = "Null\u0000Byte";
    c.description = "a literal backslash-u0000: \\u0000";
    const event = stripeEvent("customer.created", c);
    const body = JSON.stringify(event);
    assert(body.includes("Null\\u0000Byte"), "JSON.stringify escapes the NUL as \\u0000");
    const handler = createWebhookHandler({ env: testEnv(), sql: world.sql, log: silent });
    const response = await handler(await webhookRequest(body));
    assertEquals([response.status, await response.json()], [200, { received: true, status: "processed" }]);
    const [row] = await world.sql<{ status: string; name: string; description: string }[]>`
      select status, payload -> 'data' -> 'object' ->> 'name' as name, payload -> 'data' -> 'object' ->> 'description' as description
      from public.webhook_events where provider = 'stripe' and event_id = ${event.id}`;
    assertEquals([row.status, row.name, row.description], [
      "processed",
      "Null\uFFFDByte",
      "a literal backslash-u0000: \\u0000",
    ]);
    const [linked] = await world
      .sql`select stripe_customer_id from public.billing_customers where account_id = ${account}`;
    assertEquals(linked.stripe_customer_id, cus);
  });
});

Deno.test("when the database is down the webhook answers 500 and nothing is written", async () => {
  await withWorld(async (world) => {
    const down = createDb("postgresql://postgres:postgres@127.0.0.1:1/postgres", { max: 1 });
    try {
      const handler = createWebhookHandler({ env: testEnv(), sql: down, log: silent });
      const account = await createUser(world.sql);
      const event = stripeEvent(
        "checkout.session.completed",
        checkoutSession({
          id: `cs_test_${uid()}`,
          accountId: account,
          customer: null,
          mode: "payment",
          paymentStatus: "paid",
          item: world.catalog.pack.key,
          amountTotal: world.catalog.pack.price,
        }),
      );
      const response = await handler(await webhookRequest(event));
      assertEquals([response.status, (await response.json()).error.code], [500, "internal_error"]);
      assertEquals(await webhookEvent(world.sql, event.id), undefined);
      assertEquals((await paymentsOf(world.sql, account)).length, 0);
      assertEquals((await balance(world.sql, account)).balance, 50);
    } finally {
      await down.end();
    }
  });
});

Deno.test("an event that fails to process answers 500, keeps none of its work, and is processed on the retry", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const sub = `sub_${uid()}`;
    // A subscription whose status we do not know: processing raises half way.
    const broken = subscription({
      id: sub,
      customer: cus,
      accountId: account,
      priceId: world.catalog.basic.priceId,
      status: "active",
    });
    broken.status = "bogus_status";
    const event = stripeEvent("customer.subscription.created", broken);
    const failed = await world.deliver(event);
    assertEquals([failed.status, failed.body.error?.code], [500, "processing_failed"]);
    const recorded = await webhookEvent(world.sql, event.id);
    assertEquals([recorded.status, recorded.attempts], ["failed", 1]);
    assert(recorded.error?.includes("invalid_input"), "the error is kept for the operator");
    assertEquals(await subscriptionOf(world.sql, sub), undefined, "nothing half-written");

    // After a fix (here: the same event id with a sane body), Stripe's retry is processed.
    const fixed = { ...event, data: { object: { ...broken, status: "active" } } };
    const retried = await world.deliver(fixed);
    assertEquals(retried.body.status, "processed");
    assertEquals(
      [(await webhookEvent(world.sql, event.id)).status, (await webhookEvent(world.sql, event.id)).attempts],
      ["processed", 2],
    );
    assertEquals((await subscriptionOf(world.sql, sub)).status, "active");
  });
});

Deno.test("a subscription of an account we do not know is recorded as ignored with the reason", async () => {
  await withWorld(async (world) => {
    const event = stripeEvent(
      "customer.subscription.created",
      subscription({
        id: `sub_${uid()}`,
        customer: `cus_${uid()}`,
        priceId: world.catalog.basic.priceId,
        status: "active",
      }),
    );
    assertEquals((await world.deliver(event)).body.status, "ignored");
    const recorded = await webhookEvent(world.sql, event.id);
    assert(recorded.error?.includes("no account"), recorded.error ?? "no error");
  });
});
