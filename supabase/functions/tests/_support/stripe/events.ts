/**
 * Stripe events for tests, built from Stripe's own fixture objects (fixtures/, see SOURCE.md):
 * each builder starts from the fixture and overrides the fields the story relies on (the
 * fixtures are samples that do not link to each other). Envelopes come from event.json with
 * the API version pinned to ours, and deliveries are signed with the stripe library's
 * test-header helper, as Stripe signs them.
 */
import Stripe from "stripe";
import { STRIPE_API_VERSION } from "../../../_shared/stripe.ts";
import eventFixture from "./fixtures/event.json" with { type: "json" };
import checkoutSessionFixture from "./fixtures/checkout.session.json" with { type: "json" };
import customerFixture from "./fixtures/customer.json" with { type: "json" };
import subscriptionFixture from "./fixtures/subscription.json" with { type: "json" };
import invoiceFixture from "./fixtures/invoice.json" with { type: "json" };
import chargeFixture from "./fixtures/charge.json" with { type: "json" };
import disputeFixture from "./fixtures/dispute.json" with { type: "json" };
import paymentIntentFixture from "./fixtures/payment_intent.json" with { type: "json" };
import priceFixture from "./fixtures/price.json" with { type: "json" };
import productFixture from "./fixtures/product.json" with { type: "json" };

export type Json = Record<string, unknown>;

export interface StripeEventJson extends Json {
  id: string;
  object: "event";
  type: string;
  created: number;
  api_version: string;
  data: { object: Json; previous_attributes?: Json };
}

export const WEBHOOK_SECRET = "whsec_test_ledgerbase_webhook_secret";

const clone = <T>(value: T): T => structuredClone(value);
const nowSeconds = () => Math.floor(Date.now() / 1000);
const DAY = 86_400;

/** A unique suffix for ids (Stripe ids are [A-Za-z0-9]). */
export function uid(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 16);
}

/** A Stripe event envelope around `object`. */
export function stripeEvent(
  type: string,
  object: Json,
  options: { id?: string; created?: number; previous?: Json } = {},
): StripeEventJson {
  const envelope = clone(eventFixture) as unknown as StripeEventJson;
  envelope.id = options.id ?? `evt_${uid()}`;
  envelope.type = type;
  envelope.created = options.created ?? nowSeconds();
  envelope.api_version = STRIPE_API_VERSION;
  envelope.data = { object, ...(options.previous ? { previous_attributes: options.previous } : {}) };
  return envelope;
}

export function customer(o: { id: string; accountId?: string; email?: string }): Json {
  const c = clone(customerFixture) as Json;
  c.id = o.id;
  c.email = o.email ?? null;
  c.metadata = o.accountId ? { account_id: o.accountId } : {};
  return c;
}

export function checkoutSession(o: {
  id: string;
  accountId: string | null;
  customer: string | null;
  mode: "payment" | "subscription";
  paymentStatus: "paid" | "unpaid" | "no_payment_required";
  item?: string;
  kind?: "plan" | "credit_pack";
  quantity?: number;
  amountSubtotal?: number;
  amountTotal?: number;
  /** Tax included in amount_total (total_details.amount_tax). */
  amountTax?: number;
  /** Discounts already taken off amount_total (total_details.amount_discount). */
  amountDiscount?: number;
  currency?: string;
  paymentIntent?: string | null;
  subscription?: string | null;
  status?: "complete" | "open" | "expired";
}): Json {
  const s = clone(checkoutSessionFixture) as Json;
  s.id = o.id;
  s.created = Math.floor(Date.now() / 1000);
  s.client_reference_id = o.accountId;
  s.customer = o.customer;
  s.mode = o.mode;
  s.payment_status = o.paymentStatus;
  s.status = o.status ?? "complete";
  s.metadata = o.accountId === null ? {} : {
    account_id: o.accountId,
    kind: o.kind ?? (o.mode === "payment" ? "credit_pack" : "plan"),
    item: o.item ?? "",
    quantity: String(o.quantity ?? 1),
  };
  s.amount_subtotal = o.amountSubtotal ?? o.amountTotal ?? 0;
  s.amount_total = o.amountTotal ?? o.amountSubtotal ?? 0;
  s.currency = o.currency ?? "usd";
  s.payment_intent = o.paymentIntent ?? null;
  s.subscription = o.subscription ?? null;
  s.currency_conversion = null;
  s.shipping_cost = null;
  s.total_details = { amount_discount: o.amountDiscount ?? 0, amount_shipping: 0, amount_tax: o.amountTax ?? 0 };
  return s;
}

/** A subscription with its period on the item (API basil and later), or on the subscription (older). */
export function subscription(o: {
  id: string;
  customer: string;
  accountId?: string;
  priceId: string;
  status: string;
  periodStart?: number;
  periodEnd?: number;
  periodOnSubscription?: boolean;
  cancelAtPeriodEnd?: boolean;
  trialEnd?: number | null;
  quantity?: number;
}): Json {
  const s = clone(subscriptionFixture) as Json & { items: { data: Json[] } };
  const start = o.periodStart ?? nowSeconds() - DAY;
  const end = o.periodEnd ?? start + 30 * DAY;
  s.id = o.id;
  s.customer = o.customer;
  s.status = o.status;
  s.metadata = o.accountId ? { account_id: o.accountId } : {};
  s.cancel_at_period_end = o.cancelAtPeriodEnd ?? false;
  s.cancel_at = o.cancelAtPeriodEnd ? end : null;
  s.canceled_at = o.status === "canceled" ? nowSeconds() : null;
  s.ended_at = o.status === "canceled" ? nowSeconds() : null;
  s.trial_start = o.trialEnd ? start : null;
  s.trial_end = o.trialEnd ?? null;
  s.pending_update = null;
  const item = s.items.data[0] as Json & { price: Json };
  item.id = `si_${uid()}`;
  item.subscription = o.id;
  item.price.id = o.priceId;
  item.quantity = o.quantity ?? 1;
  if (o.periodOnSubscription) {
    delete item.current_period_start;
    delete item.current_period_end;
    s.current_period_start = start;
    s.current_period_end = end;
  } else {
    item.current_period_start = start;
    item.current_period_end = end;
  }
  return s;
}

/** A subscription invoice, shaped as API basil+ sends it (parent.subscription_details, pricing on lines). */
export function invoice(o: {
  id: string;
  customer: string;
  subscription: string;
  accountId?: string;
  priceId: string;
  amountPaid: number;
  amountDue?: number;
  subtotal?: number;
  /** The total after discounts, before tax (default: the subtotal, no discount). */
  totalExcludingTax?: number;
  /** Tax on top of total_excluding_tax (default 0). */
  tax?: number;
  currency?: string;
  billingReason?: string;
  status?: "paid" | "open";
  periodStart?: number;
  periodEnd?: number;
  quantity?: number;
  paymentIntent?: string;
  charge?: string;
}): Json {
  const inv = clone(invoiceFixture) as Json & { lines: { data: Json[] } };
  const start = o.periodStart ?? nowSeconds() - DAY;
  const end = o.periodEnd ?? start + 30 * DAY;
  inv.id = o.id;
  inv.customer = o.customer;
  inv.status = o.status ?? "paid";
  inv.amount_paid = o.amountPaid;
  inv.amount_due = o.amountDue ?? o.amountPaid;
  inv.amount_remaining = inv.status === "paid" ? 0 : inv.amount_due;
  inv.subtotal = o.subtotal ?? o.amountDue ?? o.amountPaid;
  inv.subtotal_excluding_tax = inv.subtotal;
  inv.total_excluding_tax = o.totalExcludingTax ?? inv.subtotal;
  inv.total = (inv.total_excluding_tax as number) + (o.tax ?? 0);
  inv.total_discount_amounts = [];
  inv.currency = o.currency ?? "usd";
  inv.billing_reason = o.billingReason ?? "subscription_cycle";
  inv.hosted_invoice_url = `https://invoice.stripe.com/i/${o.id}`;
  inv.invoice_pdf = `https://pay.stripe.com/invoice/${o.id}/pdf`;
  inv.subscription = null;
  inv.parent = {
    quote_details: null,
    subscription_details: { metadata: o.accountId ? { account_id: o.accountId } : {}, subscription: o.subscription },
    type: "subscription_details",
  };
  inv.period_start = start;
  inv.period_end = start;
  inv.status_transitions = {
    finalized_at: start,
    marked_uncollectible_at: null,
    paid_at: inv.status === "paid" ? start : null,
    voided_at: null,
  };
  if (o.paymentIntent) {
    inv.payments = {
      object: "list",
      has_more: false,
      data: [{
        object: "invoice_payment",
        invoice: o.id,
        payment: { type: "payment_intent", payment_intent: o.paymentIntent, ...(o.charge ? { charge: o.charge } : {}) },
      }],
    };
  }
  const line = inv.lines.data[0] as Json;
  line.id = `il_${uid()}`;
  line.invoice = o.id;
  line.amount = inv.subtotal;
  line.quantity = o.quantity ?? 1;
  line.period = { start, end };
  line.parent = {
    type: "subscription_item_details",
    subscription_item_details: {
      subscription: o.subscription,
      subscription_item: `si_${uid()}`,
      proration: false,
      invoice_item: null,
      proration_details: null,
    },
    invoice_item_details: null,
  };
  line.pricing = {
    type: "price_details",
    price_details: { price: o.priceId, product: "prod_test" },
    unit_amount_decimal: null,
  };
  return inv;
}

export function invoicePayment(o: { invoice: string; paymentIntent: string; charge?: string }): Json {
  return {
    id: `inpay_${uid()}`,
    object: "invoice_payment",
    invoice: o.invoice,
    is_default: true,
    status: "paid",
    payment: { type: "payment_intent", payment_intent: o.paymentIntent, ...(o.charge ? { charge: o.charge } : {}) },
  };
}

export function charge(
  o: {
    id: string;
    paymentIntent: string | null;
    amount: number;
    amountRefunded?: number;
    customer?: string | null;
    currency?: string;
  },
): Json {
  const c = clone(chargeFixture) as Json;
  c.id = o.id;
  c.payment_intent = o.paymentIntent;
  c.amount = o.amount;
  c.amount_captured = o.amount;
  c.captured = true;
  c.amount_refunded = o.amountRefunded ?? 0;
  c.refunded = (o.amountRefunded ?? 0) >= o.amount;
  c.customer = o.customer ?? null;
  c.currency = o.currency ?? "usd";
  return c;
}

export function dispute(
  o: { id: string; charge: string; paymentIntent?: string | null; amount: number; status: string },
): Json {
  const d = clone(disputeFixture) as Json;
  d.id = o.id;
  d.charge = o.charge;
  d.payment_intent = o.paymentIntent ?? null;
  d.amount = o.amount;
  d.status = o.status;
  return d;
}

export function paymentIntent(
  o: { id: string; latestCharge: string | null; amount: number; status?: string; customer?: string | null },
): Json {
  const pi = clone(paymentIntentFixture) as Json;
  pi.id = o.id;
  pi.latest_charge = o.latestCharge;
  pi.amount = o.amount;
  pi.amount_received = o.status === "succeeded" || o.status === undefined ? o.amount : 0;
  pi.status = o.status ?? "succeeded";
  pi.customer = o.customer ?? null;
  return pi;
}

export function product(o: { id: string; active: boolean }): Json {
  const p = clone(productFixture) as Json;
  p.id = o.id;
  p.active = o.active;
  return p;
}

export function price(
  o: { id: string; product: string; active: boolean; unitAmount: number; interval?: "month" | "year" | null },
): Json {
  const p = clone(priceFixture) as Json;
  p.id = o.id;
  p.product = o.product;
  p.active = o.active;
  p.unit_amount = o.unitAmount;
  p.unit_amount_decimal = String(o.unitAmount);
  p.transform_quantity = null;
  if (o.interval === null) {
    p.recurring = null;
    p.type = "one_time";
  } else {
    p.recurring = {
      interval: o.interval ?? "month",
      interval_count: 1,
      meter: null,
      usage_type: "licensed",
      trial_period_days: null,
    };
  }
  return p;
}

/** The Stripe-Signature header for `payload`, from the stripe library's test helper. */
export async function signature(
  payload: string,
  options: { secret?: string; timestamp?: number } = {},
): Promise<string> {
  return await Stripe.webhooks.generateTestHeaderStringAsync({
    payload,
    secret: options.secret ?? WEBHOOK_SECRET,
    timestamp: options.timestamp ?? nowSeconds(),
    cryptoProvider: Stripe.createSubtleCryptoProvider(),
  });
}

/** A delivery of `event` (or of a raw body) as Stripe posts it. */
export async function webhookRequest(
  body: StripeEventJson | string,
  options: { secret?: string; timestamp?: number; signature?: string | null } = {},
): Promise<Request> {
  const payload = typeof body === "string" ? body : JSON.stringify(body, null, 2);
  const header = options.signature === undefined ? await signature(payload, options) : options.signature;
  const headers: Record<string, string> = {
    "content-type": "application/json; charset=utf-8",
    "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
  };
  if (header !== null) headers["stripe-signature"] = header;
  return new Request("http://127.0.0.1:54321/stripe-webhook", { method: "POST", headers, body: payload });
}
