/**
 * Story: a customer pays with a Stripe coupon or promotion code. The operator created the
 * discount in Stripe, so it is not a mismatch (docs/billing.md#payments): the amount before discounts is what
 * must match the catalog price × quantity, and the customer gets the plan's included credits
 * or the pack's credits in full. A price that is not the catalog's stays flagged, discount or
 * not. The objects carry discounts the way Stripe reports them: an invoice's
 * `total_discount_amounts` (and each line's `discount_amounts`) next to `total_excluding_tax`,
 * which is after discounts; a checkout session's `total_details.amount_discount` next to
 * `amount_subtotal` (before) and `amount_total` (after).
 */
import { assertEquals } from "./_support/assert.ts";
import { balance, paymentsOf } from "./_support/stripe/billing_db.ts";
import { checkoutSession, invoice, stripeEvent, uid } from "./_support/stripe/events.ts";
import { customerFor, packBuyer, subscriber, withWorld } from "./_support/stripe/world.ts";

type Json = Record<string, unknown>;

/**
 * A paid subscription invoice as Stripe sends it when a coupon took `discount` off a line of
 * `listAmount`: the line keeps its amount before discounts and lists the discount; the invoice's
 * subtotal is that amount, total_excluding_tax and amount_paid are after the discount.
 */
function discountedInvoice(o: {
  customer: string;
  subscription: string;
  accountId: string;
  priceId: string;
  listAmount: number;
  discount: number;
  billingReason?: string;
}): Json {
  const net = o.listAmount - o.discount;
  const inv = invoice({
    id: `in_${uid()}`,
    customer: o.customer,
    subscription: o.subscription,
    accountId: o.accountId,
    priceId: o.priceId,
    amountPaid: net,
    subtotal: o.listAmount,
    totalExcludingTax: net,
    billingReason: o.billingReason ?? "subscription_cycle",
  }) as Json & { lines: { data: Json[] } };
  const discount = `di_${uid()}`;
  inv.discounts = [discount];
  inv.total_discount_amounts = [{ amount: o.discount, discount }];
  inv.lines.data[0].discount_amounts = [{ amount: o.discount, discount }];
  inv.lines.data[0].discounts = [discount];
  return inv;
}

Deno.test("a subscription invoice discounted by a coupon earns the plan's credits: the amount before discounts matches the catalog", async () => {
  await withWorld(async (world) => {
    const { account, basic, base, paymentOf } = await subscriber(world);

    // Dana subscribes with a 25%-off promotion code: she pays 750 for the 1000 plan.
    const first = discountedInvoice({
      ...base,
      listAmount: basic.price,
      discount: 250,
      billingReason: "subscription_create",
    });
    assertEquals((await world.deliver(stripeEvent("invoice.paid", first))).body.status, "processed");
    let payment = await paymentOf(first.id);
    assertEquals(
      [
        payment?.status,
        payment?.amount,
        (payment as Json | undefined)?.expected_amount,
        payment?.flagged_reason,
        payment?.credits_granted,
      ],
      ["paid", "750", String(basic.price), null, String(basic.credits)],
      "the amount paid is recorded; the credits are the plan's, in full",
    );
    assertEquals((await balance(world.sql, account)).balance, 50 + basic.credits);

    // A renewal under a 100%-off coupon: nothing is charged, the plan's credits still come.
    const free = discountedInvoice({ ...base, listAmount: basic.price, discount: basic.price });
    await world.deliver(stripeEvent("invoice.paid", free));
    payment = await paymentOf(free.id);
    assertEquals([payment?.amount, payment?.flagged_reason, payment?.credits_granted], [
      "0",
      null,
      String(basic.credits),
    ]);
    assertEquals((await balance(world.sql, account)).balance, 50 + 2 * basic.credits);
  });
});

Deno.test("a discounted invoice for a price that is not the catalog's stays flagged and credits nothing", async () => {
  await withWorld(async (world) => {
    const { account, customer: cus } = await customerFor(world);
    const { basic } = world.catalog;
    const base = { customer: cus, subscription: `sub_${uid()}`, accountId: account, priceId: basic.priceId };

    // 800 before a 300 discount: the list amount itself is not the plan's 1000.
    const odd = discountedInvoice({ ...base, listAmount: 800, discount: 300 });
    await world.deliver(stripeEvent("invoice.paid", odd));
    const payment = (await paymentsOf(world.sql, account)).find((p) => p.stripe_invoice_id === odd.id);
    assertEquals([payment?.credits_granted, payment?.flagged_reason], [
      "0",
      `amount_mismatch: expected ${basic.price} usd, got 800`,
    ]);

    // Without a discount, a short payment is still a mismatch.
    const short = invoice({ ...base, id: `in_${uid()}`, amountPaid: 500, subtotal: 500 });
    await world.deliver(stripeEvent("invoice.paid", short));
    const flagged = (await paymentsOf(world.sql, account)).find((p) => p.stripe_invoice_id === short.id);
    assertEquals([flagged?.credits_granted, flagged?.flagged_reason], [
      "0",
      `amount_mismatch: expected ${basic.price} usd, got 500`,
    ]);
    assertEquals((await balance(world.sql, account)).balance, 50, "neither earned credits");
  });
});

Deno.test("a credit pack bought with a coupon earns the pack's credits; a price that is not the catalog's stays flagged", async () => {
  await withWorld(async (world) => {
    const { account, pack, base, paymentOf } = await packBuyer(world);

    // 40% off: amount_subtotal is the catalog price, amount_total what was paid.
    const discounted = checkoutSession({
      ...base,
      id: `cs_test_${uid()}`,
      paymentStatus: "paid",
      amountSubtotal: pack.price,
      amountTotal: 600,
      amountDiscount: 400,
    });
    assertEquals((await world.deliver(stripeEvent("checkout.session.completed", discounted))).body.status, "processed");
    let payment = await paymentOf(discounted.id);
    assertEquals([payment?.amount, payment?.flagged_reason, payment?.credits_granted], [
      "600",
      null,
      String(pack.credits),
    ]);

    // 100% off: Stripe needs no payment; the pack's credits come all the same.
    const free = checkoutSession({
      ...base,
      id: `cs_test_${uid()}`,
      paymentStatus: "no_payment_required",
      amountSubtotal: pack.price,
      amountTotal: 0,
      amountDiscount: pack.price,
    });
    await world.deliver(stripeEvent("checkout.session.completed", free));
    payment = await paymentOf(free.id);
    assertEquals([payment?.amount, payment?.flagged_reason, payment?.credits_granted], [
      "0",
      null,
      String(pack.credits),
    ]);
    assertEquals((await balance(world.sql, account)).balance, 50 + 2 * pack.credits);

    // Two packs for the price of one before the discount: flagged on the amount before discounts.
    const short = checkoutSession({
      ...base,
      id: `cs_test_${uid()}`,
      paymentStatus: "paid",
      quantity: 2,
      amountSubtotal: pack.price,
      amountTotal: 800,
      amountDiscount: 200,
    });
    await world.deliver(stripeEvent("checkout.session.completed", short));
    payment = await paymentOf(short.id);
    assertEquals([payment?.credits_granted, payment?.flagged_reason], [
      "0",
      `amount_mismatch: expected ${2 * pack.price} usd, got ${pack.price}`,
    ]);

    // no_payment_required without a discount that explains it is still refused.
    const odd = checkoutSession({
      ...base,
      id: `cs_test_${uid()}`,
      paymentStatus: "no_payment_required",
      amountSubtotal: pack.price,
      amountTotal: pack.price,
    });
    await world.deliver(stripeEvent("checkout.session.completed", odd));
    payment = await paymentOf(odd.id);
    assertEquals([payment?.credits_granted, payment?.flagged_reason], [
      "0",
      `no_payment_required: expected ${pack.price} usd`,
    ]);
    assertEquals((await balance(world.sql, account)).balance, 50 + 2 * pack.credits);
  });
});
