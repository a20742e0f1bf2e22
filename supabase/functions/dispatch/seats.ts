/**
 * The runner of `seats.sync` jobs: sets a per-seat subscription's item quantity in Stripe to
 * the account's billable seats, read now (private.seat_sync_request), so a job queued by the
 * first of a burst of membership changes sends the count after the last one.
 *
 * The idempotency key is the job's plus the quantity: a retry of the same count is replayed by
 * Stripe, a retry after the count changed sends the new count. The quantity Stripe keeps comes
 * back with customer.subscription.updated, which records it (and queues another sync if it
 * still differs).
 */
import type Stripe from "stripe";
import { z } from "zod";
import type { ClaimedJob, RunnerContext, RunOutcome } from "./jobs.ts";

const request = z.object({
  stripe_subscription_id: z.string(),
  stripe_price_id: z.string().nullable(),
  stripe_subscription_item_id: z.string().nullable(),
  quantity: z.number().int().nonnegative(),
  recorded_quantity: z.number().int().nonnegative(),
  proration_behavior: z.enum(["create_prorations", "none", "always_invoice"]),
});

/** The subscription item that carries the plan: the one with the plan's price, else the only one. */
async function planItem(stripe: Stripe, subscriptionId: string, priceId: string | null): Promise<string | null> {
  const subscription = await stripe.subscriptions.retrieve(subscriptionId);
  const items = subscription.items.data;
  const item = items.find((i) => i.price?.id === priceId) ?? (items.length === 1 ? items[0] : undefined);
  return item?.id ?? null;
}

export async function syncSeats(job: ClaimedJob, context: RunnerContext): Promise<RunOutcome> {
  const subscriptionId = z.uuid().safeParse(job.payload.subscription_id);
  if (!subscriptionId.success) return { ok: false, error: "the job has no subscription_id" };
  const [row] = await context.sql`select private.seat_sync_request(${subscriptionId.data}::uuid) as request`;
  if (row.request === null) return { ok: true, result: { skipped: "the subscription is no longer live or per seat" } };
  const r = request.parse(row.request);
  if (r.quantity === r.recorded_quantity) {
    return { ok: true, result: { skipped: "the quantity is already right", quantity: r.quantity } };
  }

  const stripe = context.stripe();
  const itemId = r.stripe_subscription_item_id ?? await planItem(stripe, r.stripe_subscription_id, r.stripe_price_id);
  if (itemId === null) {
    return { ok: false, error: `subscription ${r.stripe_subscription_id} has no item with price ${r.stripe_price_id}` };
  }
  await stripe.subscriptionItems.update(itemId, {
    quantity: r.quantity,
    proration_behavior: r.proration_behavior,
  }, { idempotencyKey: `${job.idempotency_key}:${r.quantity}` });
  await context.sql`select private.seat_sync_done(${subscriptionId.data}::uuid, ${r.quantity}::integer, ${itemId})`;
  return { ok: true, result: { quantity: r.quantity, stripe_subscription_item_id: itemId } };
}
