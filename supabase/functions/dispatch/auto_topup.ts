/**
 * The runner of `credits.auto_topup` jobs: charges the pack of one pending auto top-up
 * attempt off-session to the customer's default payment method.
 *
 * - The PaymentIntent is created with `confirm: true, off_session: true` and the job's
 *   idempotency key (one per attempt), so a retried job never charges twice.
 * - Nothing is granted here: the credits come with `payment_intent.succeeded` through the
 *   Stripe webhook (private.auto_topup_payment_event), whichever arrives first.
 * - A decline, `authentication_required` or a PaymentIntent left in `requires_action` settle
 *   the attempt as failed (private.auto_topup_failed: counted, billing managers notified);
 *   Stripe being unreachable is retried with the same key.
 */
import Stripe from "stripe";
import { z } from "zod";
import type { ClaimedJob, RunnerContext, RunOutcome } from "./jobs.ts";

const request = z.object({
  attempt_id: z.uuid(),
  account_id: z.uuid(),
  credit_pack: z.string(),
  credits: z.coerce.number().int().positive(),
  amount: z.coerce.number().int().nonnegative(),
  currency: z.string(),
  customer_id: z.string().nullable(),
});

async function fail(
  context: RunnerContext,
  attemptId: string,
  code: string,
  message: string,
  paymentIntentId: string | null = null,
) {
  await context.sql`select private.auto_topup_failed(${attemptId}::uuid, ${code}, ${message}, ${paymentIntentId})`;
}

/** The id of the customer's default payment method, or null. */
async function defaultPaymentMethod(stripe: Stripe, customerId: string): Promise<string | null> {
  const customer = await stripe.customers.retrieve(customerId);
  if ("deleted" in customer && customer.deleted) return null;
  const pm = (customer as Stripe.Customer).invoice_settings?.default_payment_method ?? null;
  return typeof pm === "string" ? pm : pm?.id ?? null;
}

export async function chargeAutoTopup(job: ClaimedJob, context: RunnerContext): Promise<RunOutcome> {
  const attemptId = z.uuid().safeParse(job.payload.attempt_id);
  if (!attemptId.success) return { ok: false, error: "the job has no attempt_id" };
  const [row] = await context.sql`select private.auto_topup_request(${attemptId.data}::uuid) as request`;
  if (row.request === null) return { ok: true, result: { skipped: "the attempt is settled already" } };
  const r = request.parse(row.request);

  if (r.customer_id === null) {
    await fail(
      context,
      r.attempt_id,
      "no_customer",
      "The account has no Stripe customer yet: buy once through Checkout first.",
    );
    return { ok: true, result: { failed: "no_customer" } };
  }
  const stripe = context.stripe();
  const paymentMethod = await defaultPaymentMethod(stripe, r.customer_id);
  if (paymentMethod === null) {
    await fail(context, r.attempt_id, "no_payment_method", "The customer has no default payment method.");
    return { ok: true, result: { failed: "no_payment_method" } };
  }

  let intent: Stripe.PaymentIntent;
  try {
    intent = await stripe.paymentIntents.create({
      amount: r.amount,
      currency: r.currency,
      customer: r.customer_id,
      payment_method: paymentMethod,
      confirm: true,
      off_session: true,
      description: `Automatic top-up: ${r.credits} credits`,
      metadata: { account_id: r.account_id, kind: "auto_topup", item: r.credit_pack, attempt_id: r.attempt_id },
    }, { idempotencyKey: job.idempotency_key });
  } catch (e) {
    if (e instanceof Stripe.errors.StripeCardError) {
      // A decline or authentication_required: the payment did not go through.
      const pi = (e.raw as { payment_intent?: { id?: string } } | undefined)?.payment_intent?.id ?? null;
      const code = e.decline_code ?? e.code ?? "card_declined";
      await fail(context, r.attempt_id, code, e.message, pi);
      return { ok: true, result: { failed: code, payment_intent: pi } };
    }
    throw e; // unreachable or a server error: retried with the same idempotency key
  }

  await context.sql`select private.auto_topup_submitted(${r.attempt_id}::uuid, ${intent.id})`;
  if (
    intent.status === "requires_action" || intent.status === "requires_payment_method" || intent.status === "canceled"
  ) {
    const code = intent.status === "requires_action" ? "requires_action" : intent.last_payment_error?.decline_code ??
      intent.last_payment_error?.code ?? intent.status;
    await fail(
      context,
      r.attempt_id,
      code,
      intent.last_payment_error?.message ?? `The payment needs the customer (${intent.status}).`,
      intent.id,
    );
    return { ok: true, result: { failed: code, payment_intent: intent.id } };
  }
  return { ok: true, result: { payment_intent: intent.id, status: intent.status } };
}
